/**
 * The AWS side of embedded-cache: the invalidation topic, the IAM policy an instance runs with, optionally
 * pre-provisioned per-instance queues (`InstanceQueue`), and the orphan-queue sweeper on a 15-minute schedule.
 *
 * Two deployment modes (`queues`):
 * - `self-created` (default): instances create `<prefix>-<instance>` (+ `-dlq`) at startup and delete it at
 *   shutdown; the instance policy may create/tag/delete queues named `<prefix>-*` and (un)subscribe them. Queues of
 *   instances that died are removed by the sweeper (`embedded-cache sweep-queues`).
 * - `pre-provisioned`: one `InstanceQueue` per id in `instanceIds`; instances get `CACHE_SQS_QUEUE_URL` and only
 *   consume (no create/delete rights, no sweeper needed for them).
 *
 * The sweeper is an ECS Fargate task of the application image (which has the `embedded-cache` CLI), run by an
 * EventBridge rule every 15 minutes. It needs no inbound network, only egress to the SQS/SNS APIs: by default a
 * small VPC with public subnets only (no NAT gateway) and a public IP on the task; pass `vpc` to use your own.
 */
import * as cdk from "aws-cdk-lib"
import * as ec2 from "aws-cdk-lib/aws-ec2"
import * as ecs from "aws-cdk-lib/aws-ecs"
import * as events from "aws-cdk-lib/aws-events"
import * as targets from "aws-cdk-lib/aws-events-targets"
import * as iam from "aws-cdk-lib/aws-iam"
import * as logs from "aws-cdk-lib/aws-logs"
import * as sns from "aws-cdk-lib/aws-sns"
import type { Construct } from "constructs"
import * as SqsQueue from "../../layers/bus/SqsQueue.ts"
import { InstanceQueue } from "./InstanceQueue.ts"

/**
 * aws-cdk-lib's classes declare optional properties without `| undefined`, so under this project's
 * `exactOptionalPropertyTypes` a class instance does not type-check as its own interface (`Vpc` as `IVpc`). The
 * object is that interface at run time; this states it once instead of loosening the project's tsconfig.
 */
const asInterface = <I>(construct: object): I => construct as I

export interface CacheStackProps extends cdk.StackProps {
  /** The SNS topic's name; default `embedded-cache-invalidation`. */
  readonly topicName?: string | undefined
  /** `CACHE_SQS_QUEUE_PREFIX`; default `embedded-cache`. */
  readonly queuePrefix?: string | undefined
  /** Whether instances create their queues (default) or get pre-provisioned ones. */
  readonly queues?: "self-created" | "pre-provisioned" | undefined
  /** For `pre-provisioned`: the instance ids to provision a queue for. */
  readonly instanceIds?: ReadonlyArray<string> | undefined
  /** The image with the `embedded-cache` CLI for the sweeper; default: the `SweeperImage` stack parameter. */
  readonly sweeperImage?: string | undefined
  /** A queue whose heartbeat is older than this many minutes is an orphan; default 30. */
  readonly sweepOlderThanMinutes?: number | undefined
  /** The VPC the sweeper task runs in; default a new public-subnets-only VPC. */
  readonly vpc?: ec2.IVpc | undefined
}

export class CacheStack extends cdk.Stack {
  readonly topic: sns.Topic
  readonly instancePolicy: iam.ManagedPolicy
  readonly instanceQueues: ReadonlyArray<InstanceQueue>
  readonly sweepRule: events.Rule
  readonly sweeperTask: ecs.FargateTaskDefinition
  /** `TopicArn`, `InstancePolicyArn` and, pre-provisioned, one `QueueUrl<n>` per instance. */
  readonly outputs: ReadonlyArray<cdk.CfnOutput>

  constructor(scope: Construct, id: string, props: CacheStackProps = {}) {
    super(scope, id, props)
    const prefix = props.queuePrefix ?? SqsQueue.defaultQueuePrefix
    const mode = props.queues ?? "self-created"
    const prefixedQueues = `arn:${this.partition}:sqs:${this.region}:${this.account}:${prefix}-*`

    this.topic = new sns.Topic(this, "InvalidationTopic", {
      topicName: props.topicName ?? "embedded-cache-invalidation"
    })

    this.instanceQueues =
      mode === "pre-provisioned"
        ? (props.instanceIds ?? []).map(
            (instanceId, i) => new InstanceQueue(this, `InstanceQueue${i}`, { topic: this.topic, instanceId, prefix })
          )
        : []

    const consume = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl"
    ]
    const statements = [
      new iam.PolicyStatement({
        sid: "PublishInvalidations",
        actions: ["sns:Publish"],
        resources: [this.topic.topicArn]
      }),
      new iam.PolicyStatement({
        sid: "ConsumeOwnQueue",
        actions: consume,
        resources: mode === "pre-provisioned" ? this.instanceQueues.map((q) => q.queue.queueArn) : [prefixedQueues]
      })
    ]
    if (mode === "self-created") {
      statements.push(
        new iam.PolicyStatement({
          sid: "ManageOwnQueue",
          actions: [
            "sqs:CreateQueue",
            "sqs:TagQueue",
            "sqs:ListQueueTags",
            "sqs:SetQueueAttributes",
            "sqs:DeleteQueue"
          ],
          resources: [prefixedQueues]
        }),
        new iam.PolicyStatement({
          sid: "SubscribeOwnQueue",
          actions: [
            "sns:Subscribe",
            "sns:Unsubscribe",
            "sns:ListSubscriptionsByTopic",
            "sns:GetSubscriptionAttributes",
            "sns:SetSubscriptionAttributes"
          ],
          resources: [this.topic.topicArn]
        })
      )
    }
    this.instancePolicy = new iam.ManagedPolicy(this, "InstancePolicy", {
      description: `embedded-cache instance (${mode} queues)`,
      statements
    })

    // the orphan sweeper: `embedded-cache sweep-queues` every 15 minutes
    const vpc =
      props.vpc ??
      new ec2.Vpc(this, "SweeperVpc", {
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [{ name: "public", subnetType: ec2.SubnetType.PUBLIC }]
      })
    const cluster = new ecs.Cluster(this, "SweeperCluster", { vpc: asInterface<ec2.IVpc>(vpc) })
    const image =
      props.sweeperImage ??
      new cdk.CfnParameter(this, "SweeperImage", {
        description: "container image with the embedded-cache CLI (the application image)"
      }).valueAsString
    this.sweeperTask = new ecs.FargateTaskDefinition(this, "SweeperTask", { cpu: 256, memoryLimitMiB: 512 })
    this.sweeperTask.addContainer("sweeper", {
      image: ecs.ContainerImage.fromRegistry(image),
      command: [
        "embedded-cache",
        "sweep-queues",
        "--prefix",
        prefix,
        "--older-than-minutes",
        String(props.sweepOlderThanMinutes ?? 30),
        "--topic-arn",
        this.topic.topicArn
      ],
      environment: { AWS_REGION: this.region },
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: "embedded-cache-sweeper",
        logRetention: logs.RetentionDays.TWO_WEEKS
      })
    })
    this.sweeperTask.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: "ListQueues", actions: ["sqs:ListQueues"], resources: ["*"] })
    )
    this.sweeperTask.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "SweepOrphanQueues",
        actions: ["sqs:ListQueueTags", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:DeleteQueue"],
        resources: [prefixedQueues]
      })
    )
    this.sweeperTask.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: "UnsubscribeOrphans",
        actions: ["sns:ListSubscriptionsByTopic", "sns:Unsubscribe"],
        resources: [this.topic.topicArn]
      })
    )
    this.sweepRule = new events.Rule(this, "SweepSchedule", {
      description: "embedded-cache sweep-queues: delete the queues of instances that died",
      schedule: events.Schedule.rate(cdk.Duration.minutes(15))
    })
    this.sweepRule.addTarget(
      new targets.EcsTask({
        cluster: asInterface<ecs.ICluster>(cluster),
        taskDefinition: asInterface<ecs.ITaskDefinition>(this.sweeperTask),
        subnetSelection: { subnetType: ec2.SubnetType.PUBLIC },
        assignPublicIp: true
      })
    )

    this.outputs = [
      new cdk.CfnOutput(this, "TopicArn", { value: this.topic.topicArn, description: "CACHE_SNS_TOPIC_ARN" }),
      new cdk.CfnOutput(this, "InstancePolicyArn", { value: this.instancePolicy.managedPolicyArn }),
      ...this.instanceQueues.map(
        (q, i) =>
          new cdk.CfnOutput(this, `QueueUrl${i}`, { value: q.queue.queueUrl, description: "CACHE_SQS_QUEUE_URL" })
      )
    ]
  }
}
