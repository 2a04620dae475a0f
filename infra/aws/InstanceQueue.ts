/**
 * One instance's pre-provisioned invalidation queue (for deployments that give instances a fixed
 * `CACHE_SQS_QUEUE_URL` instead of letting them create `<prefix>-<instance>` at startup): the queue, its
 * dead-letter queue with a redrive policy, a queue policy that lets only the topic send (`aws:SourceArn`), and a
 * raw-delivery subscription whose filter policy keeps the instance's own events out. Names and the filter policy
 * come from layers/bus/SqsQueue.ts, so they are exactly what a self-created queue would get.
 *
 * Tags: deliberately NOT `embedded-cache:instance` / `embedded-cache:heartbeat` — those mark queues that an
 * instance created itself, and `embedded-cache sweep-queues` deletes such queues once their heartbeat is stale.
 * A pre-provisioned queue is never heartbeated, so it carries `embedded-cache:provisioned` instead and the sweeper
 * leaves it alone.
 */
import * as cdk from "aws-cdk-lib"
import * as iam from "aws-cdk-lib/aws-iam"
import * as sns from "aws-cdk-lib/aws-sns"
import * as sqs from "aws-cdk-lib/aws-sqs"
import { Construct } from "constructs"
import * as SqsQueue from "../../layers/bus/SqsQueue.ts"

export interface InstanceQueueProps {
  readonly topic: sns.ITopic
  /** The instance's `CACHE_INSTANCE_ID`; the filter policy drops its own events. */
  readonly instanceId: string
  /** `CACHE_SQS_QUEUE_PREFIX`; default `embedded-cache`. */
  readonly prefix?: string | undefined
  /** Receives before a message moves to the DLQ; default 5 (as a self-created queue). */
  readonly maxReceiveCount?: number | undefined
  /** Default 30 s (as a self-created queue); the consumer's duplicate window is sized from it. */
  readonly visibilityTimeout?: cdk.Duration | undefined
}

/** Tag keys of pre-provisioned queues (never the self-created ones' keys; see the module comment). */
export const provisionedTags = {
  provisioned: "embedded-cache:provisioned",
  forInstance: "embedded-cache:for-instance",
  role: "embedded-cache:role"
} as const

export class InstanceQueue extends Construct {
  readonly queue: sqs.Queue
  readonly deadLetterQueue: sqs.Queue
  readonly subscription: sns.Subscription

  constructor(scope: Construct, id: string, props: InstanceQueueProps) {
    super(scope, id)
    const name = SqsQueue.queueName(props.prefix ?? SqsQueue.defaultQueuePrefix, props.instanceId)
    this.deadLetterQueue = new sqs.Queue(this, "DeadLetterQueue", {
      queueName: SqsQueue.dlqName(name),
      retentionPeriod: cdk.Duration.days(14)
    })
    this.queue = new sqs.Queue(this, "Queue", {
      queueName: name,
      visibilityTimeout: props.visibilityTimeout ?? cdk.Duration.seconds(30),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 }
    })
    const policy = this.queue.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: "AllowInvalidationTopic",
        effect: iam.Effect.ALLOW,
        principals: [new iam.ServicePrincipal("sns.amazonaws.com")],
        actions: ["sqs:SendMessage"],
        resources: [this.queue.queueArn],
        conditions: { ArnEquals: { "aws:SourceArn": props.topic.topicArn } }
      })
    )
    const own = JSON.parse(SqsQueue.filterPolicy(props.instanceId)) as {
      source_instance: [{ "anything-but": Array<string> }]
    }
    this.subscription = new sns.Subscription(this, "Subscription", {
      topic: props.topic,
      protocol: sns.SubscriptionProtocol.SQS,
      endpoint: this.queue.queueArn,
      rawMessageDelivery: true,
      filterPolicy: {
        source_instance: sns.SubscriptionFilter.stringFilter({ denylist: own.source_instance[0]["anything-but"] })
      }
    })
    // the queue policy must exist before SNS delivers the subscription confirmation's first messages
    if (policy.policyDependable !== undefined) this.subscription.node.addDependency(policy.policyDependable)
    for (const [queue, role] of [
      [this.queue, "queue"],
      [this.deadLetterQueue, "dlq"]
    ] as const) {
      cdk.Tags.of(queue).add(provisionedTags.provisioned, "cdk")
      cdk.Tags.of(queue).add(
        provisionedTags.forInstance,
        props.instanceId.replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, "_")
      )
      cdk.Tags.of(queue).add(provisionedTags.role, role)
    }
  }
}
