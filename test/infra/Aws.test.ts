/**
 * Synthesises the CDK stack (no AWS account, no network) and checks what the instances depend on: the topic,
 * queue + DLQ with redrive, the queue policy pinned to the topic by aws:SourceArn, the raw-delivery subscription
 * with the same filter policy a self-created queue gets, the instance IAM statements and the sweeper schedule.
 */
import * as cdk from "aws-cdk-lib"
import { Match, Template } from "aws-cdk-lib/assertions"
import { describe, expect, it } from "vitest"
import { CacheStack } from "../../infra/aws/CacheStack.ts"
import * as SqsQueue from "../../layers/bus/SqsQueue.ts"

const synth = (props: ConstructorParameters<typeof CacheStack>[2]) => {
  const app = new cdk.App()
  const stack = new CacheStack(app, "Test", props)
  return { stack, template: Template.fromStack(stack) }
}

/** The logical id of the only resource of `type` matching `props`. */
const logicalId = (template: Template, type: string, props: object = {}): string => {
  const found = Object.keys(template.findResources(type, { Properties: props }))
  expect(found).toHaveLength(1)
  return found[0] as string
}

/** IAM statements (across all policies of `type`) as plain objects. */
const statements = (template: Template, type: string): Array<Record<string, unknown>> =>
  Object.values(template.findResources(type)).flatMap(
    (r) =>
      (r as { Properties: { PolicyDocument: { Statement: Array<Record<string, unknown>> } } }).Properties.PolicyDocument
        .Statement
  )
const bySid = (all: Array<Record<string, unknown>>, sid: string) => {
  const found = all.filter((s) => s["Sid"] === sid)
  expect(found, sid).toHaveLength(1)
  return found[0] as Record<string, unknown>
}

describe("CDK stack, pre-provisioned queues", () => {
  const { template } = synth({
    queues: "pre-provisioned",
    instanceIds: ["app-0", "app-1"],
    sweeperImage: "embedded-cache:test"
  })
  const topicId = logicalId(template, "AWS::SNS::Topic", { TopicName: "embedded-cache-invalidation" })

  it("has one queue + DLQ per instance, named as the bus names them, with a redrive policy of 5", () => {
    template.resourceCountIs("AWS::SQS::Queue", 4)
    for (const instance of ["app-0", "app-1"]) {
      const name = SqsQueue.queueName("embedded-cache", instance)
      const dlqId = logicalId(template, "AWS::SQS::Queue", { QueueName: SqsQueue.dlqName(name) })
      template.hasResourceProperties("AWS::SQS::Queue", {
        QueueName: name,
        VisibilityTimeout: 30,
        RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: 5 },
        Tags: Match.arrayWith([
          { Key: "embedded-cache:for-instance", Value: instance },
          { Key: "embedded-cache:provisioned", Value: "cdk" }
        ])
      })
    }
  })

  it("never tags pre-provisioned queues as self-created (the sweeper would delete them)", () => {
    for (const queue of Object.values(template.findResources("AWS::SQS::Queue"))) {
      const tags = ((queue as { Properties: { Tags?: Array<{ Key: string }> } }).Properties.Tags ?? []).map(
        (t) => t.Key
      )
      expect(tags).not.toContain(SqsQueue.tagKeys.instance)
      expect(tags).not.toContain(SqsQueue.tagKeys.heartbeat)
    }
  })

  it("lets only the topic send to each queue (aws:SourceArn)", () => {
    template.resourceCountIs("AWS::SQS::QueuePolicy", 2)
    for (const policy of Object.values(template.findResources("AWS::SQS::QueuePolicy"))) {
      const statement = (policy as { Properties: { PolicyDocument: { Statement: Array<Record<string, unknown>> } } })
        .Properties.PolicyDocument.Statement
      expect(statement).toHaveLength(1)
      expect(statement[0]).toMatchObject({
        Effect: "Allow",
        Action: "sqs:SendMessage",
        Principal: { Service: "sns.amazonaws.com" },
        Condition: { ArnEquals: { "aws:SourceArn": { Ref: topicId } } }
      })
    }
  })

  it("subscribes each queue with raw delivery and the bus's own filter policy", () => {
    template.resourceCountIs("AWS::SNS::Subscription", 2)
    for (const instance of ["app-0", "app-1"]) {
      const queueId = logicalId(template, "AWS::SQS::Queue", {
        QueueName: SqsQueue.queueName("embedded-cache", instance)
      })
      template.hasResourceProperties("AWS::SNS::Subscription", {
        Protocol: "sqs",
        TopicArn: { Ref: topicId },
        Endpoint: { "Fn::GetAtt": [queueId, "Arn"] },
        RawMessageDelivery: true,
        FilterPolicy: JSON.parse(SqsQueue.filterPolicy(instance)) as unknown
      })
    }
    // the subscription waits for the queue policy
    for (const sub of Object.values(template.findResources("AWS::SNS::Subscription"))) {
      expect((sub as { DependsOn?: Array<string> }).DependsOn?.some((d) => d.includes("Policy"))).toBe(true)
    }
  })

  it("gives instances publish on the topic and consume on their queues only", () => {
    const all = statements(template, "AWS::IAM::ManagedPolicy")
    expect(bySid(all, "PublishInvalidations")).toMatchObject({ Action: "sns:Publish", Resource: { Ref: topicId } })
    const consume = bySid(all, "ConsumeOwnQueue")
    expect(consume["Action"]).toEqual(
      expect.arrayContaining(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"])
    )
    expect(consume["Resource"]).toHaveLength(2)
    expect(all.some((s) => s["Sid"] === "ManageOwnQueue")).toBe(false)
  })
})

const prefixed = (resource: unknown) => JSON.stringify(resource).includes(":shop-cache-*")

describe("CDK stack, self-created queues", () => {
  const { template } = synth({ queuePrefix: "shop-cache" })
  const topicId = logicalId(template, "AWS::SNS::Topic")
  const all = statements(template, "AWS::IAM::ManagedPolicy")

  it("creates no queue of its own", () => {
    template.resourceCountIs("AWS::SQS::Queue", 0)
    template.resourceCountIs("AWS::SNS::Subscription", 0)
  })

  it("lets instances create, tag and delete queues named <prefix>-* and (un)subscribe them", () => {
    const manage = bySid(all, "ManageOwnQueue")
    expect(manage["Action"]).toEqual(
      expect.arrayContaining(["sqs:CreateQueue", "sqs:TagQueue", "sqs:SetQueueAttributes", "sqs:DeleteQueue"])
    )
    expect(prefixed(manage["Resource"])).toBe(true)
    expect(prefixed(bySid(all, "ConsumeOwnQueue")["Resource"])).toBe(true)
    expect(bySid(all, "SubscribeOwnQueue")).toMatchObject({
      Action: expect.arrayContaining(["sns:Subscribe", "sns:Unsubscribe"]) as unknown,
      Resource: { Ref: topicId }
    })
    expect(bySid(all, "PublishInvalidations")).toMatchObject({ Action: "sns:Publish", Resource: { Ref: topicId } })
  })

  it("runs `embedded-cache sweep-queues` on an ECS task every 15 minutes", () => {
    const taskId = logicalId(template, "AWS::ECS::TaskDefinition")
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(15 minutes)",
      State: "ENABLED",
      Targets: Match.arrayWith([
        Match.objectLike({
          EcsParameters: Match.objectLike({ TaskDefinitionArn: { Ref: taskId }, LaunchType: "FARGATE" })
        })
      ])
    })
    template.hasResourceProperties("AWS::ECS::TaskDefinition", {
      ContainerDefinitions: [
        Match.objectLike({
          Command: [
            "embedded-cache",
            "sweep-queues",
            "--prefix",
            "shop-cache",
            "--older-than-minutes",
            "30",
            "--topic-arn",
            { Ref: topicId }
          ]
        })
      ]
    })
    const sweeper = statements(template, "AWS::IAM::Policy")
    expect(bySid(sweeper, "SweepOrphanQueues")["Action"]).toEqual(
      expect.arrayContaining(["sqs:ListQueueTags", "sqs:DeleteQueue"])
    )
    expect(bySid(sweeper, "UnsubscribeOrphans")).toMatchObject({ Resource: { Ref: topicId } })
    // the image comes from a stack parameter when not given
    template.hasParameter("SweeperImage", { Type: "String" })
  })
})
