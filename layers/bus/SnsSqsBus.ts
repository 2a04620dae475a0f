/**
 * The `InvalidationBus` adapter on AWS: events are published to one SNS topic, which fans them out to one SQS
 * queue per instance (raw delivery; a filter policy on the `source_instance` message attribute keeps an
 * instance's own events out of its queue, so foreign publishers must set that attribute too; a dead-letter
 * queue after `maxReceiveCount` receives). Delivery is at least once and unordered; a message is deleted only
 * when its delivery is acknowledged; a failed receive is logged, counted and retried with backoff, never ending
 * the stream, and interrupting the stream aborts its long poll at once. This module holds the options, `make`,
 * `layer` and the receive loop; the AWS calls, the queue, the acker, the publisher and the orphan sweeper live in
 * their own modules beside it. Several long polls run at once (`polls`), and each poll's messages are handed out as
 * one batch, acknowledged together by the acker's DeleteMessageBatch.
 */
import type { Message } from "@aws-sdk/client-sqs"
import { Clock, Duration, Effect, Layer, Metric, Option, Schedule, type Scope, Stream } from "effect"
import { type BusError, type Delivery, InvalidationBus } from "../../src/InvalidationBus.ts"
import * as AwsCalls from "./AwsCalls.ts"
import * as SnsPublisher from "./SnsPublisher.ts"
import * as SqsAcker from "./SqsAcker.ts"
import * as SqsQueue from "./SqsQueue.ts"

/** How one instance joins the bus. */
export interface SnsSqsBusOptions extends AwsCalls.AwsClientOptions {
  /** This instance's identity; its own events are filtered out of its queue. */
  readonly instanceId: string
  /** The topic to publish to and subscribe at. Takes precedence over `topicName`. */
  readonly topicArn?: string | undefined
  /** The topic's name, when no ARN is given: the topic is created if it does not exist (CreateTopic is idempotent). */
  readonly topicName?: string | undefined
  /**
   * A pre-provisioned queue, already subscribed to the topic: it is used as it is (its own visibility timeout and
   * redrive policy apply), and nothing is created, tagged or deleted. Without it a queue is created per instance.
   */
  readonly queueUrl?: string | undefined
  /** The name prefix of created queues: `<prefix>-<instanceId>`. Default `embedded-cache`. */
  readonly queuePrefix?: string | undefined
  /** Long-poll duration of a receive, 0–20 seconds. Default 20. */
  readonly waitTimeSeconds?: number | undefined
  /** Messages per receive, 1–10. Default 10. */
  readonly maxMessages?: number | undefined
  /** Long polls in flight at once, 1–20: each hands out its messages as one batch. Default 4. */
  readonly polls?: number | undefined
  /** Visibility timeout of a created queue: how long a delivery stays hidden before it comes back. Default 30. */
  readonly visibilityTimeoutSeconds?: number | undefined
  /** Receives after which a created queue moves a message to its dead-letter queue. Default 5. */
  readonly maxReceiveCount?: number | undefined
  /** How often a running instance refreshes the heartbeat tag of its created queue. Default 5 minutes. */
  readonly heartbeatInterval?: Duration.Input | undefined
  /** Extra tags of created queues (the `embedded-cache:*` tags are always set and take precedence). */
  readonly tags?: Readonly<Record<string, string>> | undefined
  /**
   * Keep a created queue (and its subscription and DLQ) when the layer closes, so the next start of this instance
   * adopts it with the events published meanwhile — what an instance that persists its data needs to resume
   * without a flush. A queue of an instance that never comes back is removed by `sweepOrphanQueues` once its
   * heartbeat is old. Default false: a created queue is deleted at shutdown.
   */
  readonly keepQueue?: boolean | undefined
}

type BusService = InvalidationBus["Service"]

/** The bus service, plus what this adapter knows about its AWS resources (for diagnostics and tests). */
export interface SnsSqsBus extends BusService {
  readonly topicArn: string
  readonly queueUrl: string
  readonly queueArn: string
  /** The dead-letter queue, when the queue is managed by this adapter. */
  readonly dlqUrl: string | undefined
  /** The queue's subscription, when the queue is managed by this adapter. */
  readonly subscriptionArn: string | undefined
}

/** Counts failed receives; each one is logged and retried with backoff while the deliveries stream keeps going. */
export const receiveErrors = Metric.counter("cache_bus_receive_errors_total", {
  description: "SQS receives that failed and were retried",
  incremental: true
})

const defaultHeartbeat = Duration.minutes(5)
/** Slack a long poll gets on top of its wait time before it counts as hung. */
const receiveSlackMs = 10_000

/** Receive retries: 100 ms doubling, at most 5 s apart, jittered; forever (a receive error never ends the stream). */
const receiveBackoff = Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered
)

/** The options with their defaults, validated. */
interface Settings {
  readonly prefix: string
  readonly waitTimeSeconds: number
  readonly maxMessages: number
  readonly polls: number
  readonly visibility: number
  readonly maxReceiveCount: number
  readonly heartbeatInterval: Duration.Duration
}

const checkRange = (name: string, value: number, min: number, max: number) =>
  Number.isInteger(value) && value >= min && value <= max
    ? Effect.void
    : Effect.fail(AwsCalls.configError(`${name} must be an integer from ${min} to ${max}, not ${value}`))

/** Applies the defaults and refuses options that cannot work, before any AWS call. */
const settingsOf = Effect.fnUntraced(function* (options: SnsSqsBusOptions) {
  const prefix = options.queuePrefix ?? SqsQueue.defaultQueuePrefix
  const waitTimeSeconds = options.waitTimeSeconds ?? 20
  const maxMessages = options.maxMessages ?? 10
  const polls = options.polls ?? 4
  const visibility = options.visibilityTimeoutSeconds ?? 30
  const maxReceiveCount = options.maxReceiveCount ?? 5
  const heartbeatInterval =
    options.heartbeatInterval === undefined
      ? defaultHeartbeat
      : Option.getOrUndefined(Duration.fromInput(options.heartbeatInterval))
  if (options.instanceId.length === 0) return yield* AwsCalls.configError("instanceId is empty")
  if (options.queueUrl === undefined) yield* SqsQueue.checkPrefix("queuePrefix", prefix)
  yield* checkRange("waitTimeSeconds", waitTimeSeconds, 0, 20)
  yield* checkRange("maxMessages", maxMessages, 1, 10)
  yield* checkRange("polls", polls, 1, 20)
  yield* checkRange("visibilityTimeoutSeconds", visibility, 0, 43_200)
  yield* checkRange("maxReceiveCount", maxReceiveCount, 1, 1000)
  if (heartbeatInterval === undefined || !(Duration.toMillis(heartbeatInterval) > 0)) {
    return yield* AwsCalls.configError("heartbeatInterval must be a positive duration")
  }
  if (options.topicArn === undefined && options.topicName === undefined) {
    return yield* AwsCalls.configError("give topicArn or topicName")
  }
  return {
    prefix,
    waitTimeSeconds,
    maxMessages,
    polls,
    visibility,
    maxReceiveCount,
    heartbeatInterval
  } satisfies Settings
})

/** The event JSON of a delivery: the body itself (raw delivery), or the `Message` of an SNS envelope. */
const unwrapEnvelope = (body: string): string => {
  if (!body.includes('"Type"')) return body
  try {
    const parsed: unknown = JSON.parse(body)
    if (typeof parsed === "object" && parsed !== null) {
      const envelope = parsed as { readonly Type?: unknown; readonly Message?: unknown }
      if (envelope.Type === "Notification" && typeof envelope.Message === "string") return envelope.Message
    }
  } catch {
    // not JSON: the consumer decides what to do with it
  }
  return body
}

const receiveCountOf = (message: Message): number => {
  const count = Number(message.Attributes?.ApproximateReceiveCount)
  return Number.isInteger(count) && count >= 1 ? count : 1
}

/** The queue this bus receives from: the pre-provisioned one as it is, or one provisioned (and heartbeated) here. */
const queueOf = Effect.fnUntraced(function* (
  clients: AwsCalls.Clients,
  options: SnsSqsBusOptions,
  topicArn: string,
  settings: Settings
) {
  if (options.queueUrl !== undefined) {
    return {
      queueUrl: options.queueUrl,
      queueArn: yield* AwsCalls.getQueueArn(clients.sqs, options.queueUrl), // also checks that the queue is reachable
      dlqUrl: undefined,
      subscriptionArn: undefined,
      fresh: false
    } satisfies SqsQueue.ManagedQueue
  }
  const queue = yield* SqsQueue.provision(clients, topicArn, {
    instanceId: options.instanceId,
    prefix: settings.prefix,
    visibility: settings.visibility,
    maxReceiveCount: settings.maxReceiveCount,
    tags: options.tags,
    keepQueue: options.keepQueue ?? false
  })
  yield* SqsQueue.heartbeat(clients.sqs, queue.queueUrl, settings.heartbeatInterval)
  return queue
})

/**
 * One receive: a long poll as a batch of deliveries whose `ack` deletes the message; a failed poll is counted, logged
 * and retried with backoff, so the stream never ends on an error. `onContact` records each answered poll.
 */
const receiver = (
  clients: AwsCalls.Clients,
  queueUrl: string,
  settings: Settings,
  ack: (receiptHandle: string) => Effect.Effect<void, BusError>,
  onContact: (now: number) => void
) =>
  AwsCalls.receiveMessages(
    clients.sqs,
    queueUrl,
    settings.waitTimeSeconds,
    settings.maxMessages,
    settings.waitTimeSeconds * 1000 + receiveSlackMs
  ).pipe(
    Effect.flatMap((messages) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        onContact(now)
        const deliveries: Array<Delivery> = []
        for (const message of messages) {
          const receiptHandle = message.ReceiptHandle
          if (receiptHandle === undefined) continue
          deliveries.push({
            body: unwrapEnvelope(message.Body ?? ""),
            receiveCount: receiveCountOf(message),
            ack: ack(receiptHandle)
          })
        }
        return deliveries
      })
    ),
    Effect.tapError((error) =>
      Metric.update(receiveErrors, 1).pipe(
        Effect.andThen(Effect.logWarning(`receive failed, retrying: ${error.message}`))
      )
    ),
    Effect.retry(receiveBackoff)
  )

/** Builds one instance's bus: clients, topic, queue (created or pre-provisioned), ack worker and heartbeat. */
export const make: (options: SnsSqsBusOptions) => Effect.Effect<SnsSqsBus, BusError, Scope.Scope> = Effect.fn(
  "SnsSqsBus.make"
)(
  function* (options: SnsSqsBusOptions) {
    const settings = yield* settingsOf(options)
    const clients = yield* AwsCalls.makeClients(options)
    const topicArn = options.topicArn ?? (yield* AwsCalls.createTopic(clients.sns, options.topicName))
    const queue = yield* queueOf(clients, options, topicArn, settings)
    const ack = yield* SqsAcker.make(clients.sqs, queue.queueUrl)

    let lastContact: number | undefined
    const receive = receiver(clients, queue.queueUrl, settings, ack, (now) => {
      lastContact = now
    }).pipe(
      // The stream runs in the consumer's fiber, outside `make`'s log annotations.
      Effect.annotateLogs({ bus: "sns-sqs", instance: options.instanceId })
    )

    return {
      instanceId: options.instanceId,
      queueCreated: queue.fresh,
      // A pre-provisioned queue's own visibility timeout is not read: the default is assumed for it.
      heldAtMostMs: (settings.waitTimeSeconds + settings.visibility) * 1000,
      publish: SnsPublisher.make(clients.sns, topicArn),
      // `polls` receive loops at once, each batch as it arrives (an empty poll hands out nothing).
      deliveries: Stream.mergeAll(
        Array.from({ length: settings.polls }, () => Stream.fromEffectRepeat(receive)),
        { concurrency: settings.polls }
      ).pipe(Stream.filter((batch) => batch.length > 0)),
      lastContact: Effect.sync(() => lastContact),
      topicArn,
      queueUrl: queue.queueUrl,
      queueArn: queue.queueArn,
      dlqUrl: queue.dlqUrl,
      subscriptionArn: queue.subscriptionArn
    } satisfies SnsSqsBus
  },
  (effect, options) => Effect.annotateLogs(effect, { bus: "sns-sqs", instance: options.instanceId })
)

/** The bus of one instance as a layer; its AWS resources live as long as the layer. */
export const layer = (options: SnsSqsBusOptions): Layer.Layer<InvalidationBus, BusError> =>
  Layer.effect(InvalidationBus, make(options))
