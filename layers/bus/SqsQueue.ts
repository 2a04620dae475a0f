/**
 * One instance's SQS queue on the bus: its name, tags and policies, how it is found or created with its dead-letter
 * queue and subscribed to the topic, and its heartbeat. Distinct instance ids never share a queue name; a queue
 * this start created is unsubscribed and deleted with its DLQ when its scope closes, while an adopted one (left by an
 * earlier run of the same instance) is kept; a running instance refreshes its queue's heartbeat tag.
 */
import type { SNSClient } from "@aws-sdk/client-sns"
import type { SQSClient } from "@aws-sdk/client-sqs"
import { Clock, Duration, Effect } from "effect"
import { createHash } from "node:crypto"
import type { BusError } from "../../src/InvalidationBus.ts"
import * as AwsCalls from "./AwsCalls.ts"

/** The default prefix of created queue names. */
export const defaultQueuePrefix = "embedded-cache"

/** The tags this adapter puts on the queues it creates; the sweeper reads them. */
export const tagKeys = {
  /** The owning instance's id. */
  instance: "embedded-cache:instance",
  /** `queue` or `dlq`. */
  role: "embedded-cache:role",
  /** Creation time, epoch milliseconds. */
  created: "embedded-cache:created",
  /** Last heartbeat of the owning instance, epoch milliseconds; refreshed every `heartbeatInterval`. */
  heartbeat: "embedded-cache:heartbeat"
} as const

/** The suffix of a dead-letter queue's name. */
export const dlqSuffix = "-dlq"
/** SQS allows 80 characters; the queue's name leaves room for the DLQ's suffix. */
const maxQueueNameLength = 80 - dlqSuffix.length
/** DLQ retention: the longest SQS allows (14 days), so a poison message can be inspected. */
const dlqRetentionSeconds = 1_209_600

/** A queue prefix: what SQS allows in a name, short enough to leave room for the instance id. */
const prefixPattern = /^[A-Za-z0-9_-]{1,40}$/
/** Characters an AWS tag value may hold. */
const tagValuePattern = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu

/** Fails with a configuration error naming `option` unless `prefix` can start a queue name. */
export const checkPrefix = (option: string, prefix: string): Effect.Effect<void, BusError> =>
  prefixPattern.test(prefix)
    ? Effect.void
    : Effect.fail(AwsCalls.configError(`${option} ${JSON.stringify(prefix)} must be 1-40 of A-Z a-z 0-9 _ -`))

/**
 * The name of the queue created for `instanceId`: `<prefix>-<instanceId>`, where characters SQS does not allow
 * become `_`; when that changed the id or made the name too long, it is shortened and suffixed with a hash of the
 * id, so distinct ids never share a queue. At most 76 characters, so `<name>-dlq` fits SQS's 80.
 */
export const queueName = (prefix: string, instanceId: string): string => {
  const sanitised = instanceId.replace(/[^A-Za-z0-9_-]/g, "_")
  const plain = `${prefix}-${sanitised}`
  if (sanitised === instanceId && plain.length <= maxQueueNameLength) return plain
  const hash = createHash("sha256").update(instanceId).digest("hex").slice(0, 8)
  return `${plain.slice(0, maxQueueNameLength - hash.length - 1)}-${hash}`
}

/** The name of the dead-letter queue of the queue `name`. */
export const dlqName = (name: string): string => `${name}${dlqSuffix}`

/** The SNS filter policy that keeps `instanceId`'s own events out of its queue. */
export const filterPolicy = (instanceId: string): string =>
  JSON.stringify({ source_instance: [{ "anything-but": [instanceId] }] })

/** The queue policy letting only the topic's SNS deliveries send to the queue. */
export const queuePolicy = (queueArn: string, topicArn: string): string =>
  JSON.stringify({
    Version: "2012-10-17",
    Id: `${queueArn}/embedded-cache`,
    Statement: [
      {
        Sid: "AllowInvalidationTopic",
        Effect: "Allow",
        Principal: { Service: "sns.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: queueArn,
        Condition: { ArnEquals: { "aws:SourceArn": topicArn } }
      }
    ]
  })

const tagValue = (value: string): string => value.replace(tagValuePattern, "_").slice(0, 256)

const sameJson = (a: string | undefined, b: string): boolean => {
  if (a === undefined) return false
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b))
  } catch {
    return false
  }
}

/**
 * Subscribes the queue to the topic with raw delivery and the instance's filter policy, or brings an existing
 * subscription of it up to date; returns the subscription's ARN and whether it is new.
 */
const ensureSubscription = Effect.fnUntraced(function* (
  sns: SNSClient,
  topicArn: string,
  queueArn: string,
  instanceId: string
) {
  const policy = filterPolicy(instanceId)
  const existing = (yield* AwsCalls.listSubscriptions(sns, topicArn)).find(
    (s) => s.Protocol === "sqs" && s.Endpoint === queueArn && AwsCalls.isConfirmed(s.SubscriptionArn)
  )
  if (existing?.SubscriptionArn !== undefined) {
    const arn = existing.SubscriptionArn
    const current = yield* AwsCalls.getSubscriptionAttributes(sns, arn)
    if (current.RawMessageDelivery !== "true") {
      yield* AwsCalls.setSubscriptionAttribute(sns, arn, "RawMessageDelivery", "true")
    }
    if (!sameJson(current.FilterPolicy, policy))
      yield* AwsCalls.setSubscriptionAttribute(sns, arn, "FilterPolicy", policy)
    return { arn, created: false }
  }
  const arn = yield* AwsCalls.subscribe(sns, topicArn, queueArn, { RawMessageDelivery: "true", FilterPolicy: policy })
  return { arn, created: true }
})

/** The queue a bus receives from, created here or pre-provisioned. */
export interface ManagedQueue {
  readonly queueUrl: string
  readonly queueArn: string
  readonly dlqUrl: string | undefined
  readonly subscriptionArn: string | undefined
  /** Whether the queue could have missed events published before this start (see `queueCreated`). */
  readonly fresh: boolean
}

/** How `provision` sets up the queue. */
export interface ProvisionSettings {
  readonly instanceId: string
  readonly prefix: string
  readonly visibility: number
  readonly maxReceiveCount: number
  readonly tags: Readonly<Record<string, string>> | undefined
  /** Keep a queue created here when the scope closes (an instance that will resume from it after a restart). */
  readonly keepQueue: boolean
}

/** Finds or creates the DLQ of the queue `name` (before the queue, so it never lacks its redrive target). */
const ensureDlq = (sqs: SQSClient, name: string, instance: string, now: string) =>
  Effect.flatMap(AwsCalls.getQueueUrl(sqs, dlqName(name)), (url) =>
    url !== undefined
      ? Effect.succeed(url)
      : AwsCalls.createQueue(
          sqs,
          dlqName(name),
          { MessageRetentionPeriod: String(dlqRetentionSeconds) },
          { [tagKeys.instance]: instance, [tagKeys.role]: "dlq", [tagKeys.created]: now }
        )
  )

/**
 * Finds or creates the instance's queue and DLQ, sets their attributes and subscribes the queue; in the scope's
 * finalizer, a queue created here is unsubscribed and deleted with its DLQ (an adopted one is left alone), unless
 * `keepQueue`: an instance that persists its data keeps its queue, so a restart resumes from its backlog.
 */
export const provision = Effect.fnUntraced(function* (
  { sns, sqs }: AwsCalls.Clients,
  topicArn: string,
  settings: ProvisionSettings
) {
  const name = queueName(settings.prefix, settings.instanceId)
  const instance = tagValue(settings.instanceId)
  const now = String(yield* Clock.currentTimeMillis)
  const existingUrl = yield* AwsCalls.getQueueUrl(sqs, name)
  const created = existingUrl === undefined
  const cleanup = (what: string, effect: Effect.Effect<void, BusError>) =>
    created && !settings.keepQueue
      ? effect.pipe(Effect.catch((error) => Effect.logWarning(`could not ${what} at shutdown: ${error.message}`)))
      : Effect.void

  const dlqUrl = yield* Effect.acquireRelease(ensureDlq(sqs, name, instance, now), (url) =>
    cleanup(`delete the DLQ ${url}`, AwsCalls.deleteQueue(sqs, url))
  )
  const dlqArn = yield* AwsCalls.getQueueArn(sqs, dlqUrl)
  const attributes = {
    VisibilityTimeout: String(settings.visibility),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: settings.maxReceiveCount })
  }
  const tags = { ...settings.tags, [tagKeys.instance]: instance, [tagKeys.role]: "queue", [tagKeys.heartbeat]: now }
  const queueUrl = yield* Effect.acquireRelease(
    existingUrl === undefined
      ? AwsCalls.createQueue(sqs, name, attributes, { ...tags, [tagKeys.created]: now })
      : AwsCalls.setQueueAttributes(sqs, existingUrl, attributes).pipe(
          Effect.andThen(AwsCalls.tagQueue(sqs, existingUrl, tags)),
          Effect.as(existingUrl)
        ),
    (url) => cleanup(`delete the queue ${url}`, AwsCalls.deleteQueue(sqs, url))
  )
  const queueArn = yield* AwsCalls.getQueueArn(sqs, queueUrl)
  yield* AwsCalls.setQueueAttributes(sqs, queueUrl, { Policy: queuePolicy(queueArn, topicArn) })
  const subscription = yield* Effect.acquireRelease(
    ensureSubscription(sns, topicArn, queueArn, settings.instanceId),
    ({ arn }) => cleanup(`unsubscribe ${arn}`, AwsCalls.unsubscribe(sns, arn))
  )
  yield* Effect.logInfo(created ? "created the bus queue" : "adopted the existing bus queue").pipe(
    Effect.annotateLogs({ queueUrl, dlqUrl, subscriptionArn: subscription.arn })
  )
  // An adopted queue that had to be subscribed now (a crash between creating and subscribing it) missed
  // everything published until now, just like a new one.
  const fresh = created || subscription.created
  return { queueUrl, queueArn, dlqUrl, subscriptionArn: subscription.arn, fresh } satisfies ManagedQueue
})

/** Refreshes the heartbeat tag every `interval` while the scope is open; a failed refresh is logged and retried next time. */
export const heartbeat = (sqs: SQSClient, queueUrl: string, interval: Duration.Duration) =>
  Effect.sleep(interval).pipe(
    Effect.andThen(Clock.currentTimeMillis),
    Effect.flatMap((now) => AwsCalls.tagQueue(sqs, queueUrl, { [tagKeys.heartbeat]: String(now) })),
    Effect.catch((error) => Effect.logWarning(`heartbeat failed: ${error.message}`)),
    Effect.forever,
    Effect.forkScoped
  )
