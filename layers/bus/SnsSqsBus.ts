/**
 * The `InvalidationBus` adapter on AWS: events are published to one SNS topic, which fans them out to one SQS
 * queue per instance (raw delivery; a filter policy on the `source_instance` message attribute keeps an
 * instance's own events out of its queue, so foreign publishers must set that attribute too; a dead-letter
 * queue after `maxReceiveCount` receives). Delivery is at least once and unordered; a message is deleted only
 * when its delivery is acknowledged; a failed receive is logged, counted and retried with backoff, never ending
 * the stream, and interrupting the stream aborts its long poll at once. A queue this start created is
 * unsubscribed and deleted with its DLQ when the layer closes; an adopted one (left by an earlier run of the same
 * instance) is kept, and a pre-provisioned one is never modified. Running instances refresh a heartbeat tag on
 * their queue, by which `sweepOrphanQueues` finds the queues of instances that died without cleaning up.
 */
import {
  CreateTopicCommand,
  GetSubscriptionAttributesCommand,
  ListSubscriptionsByTopicCommand,
  ListSubscriptionsCommand,
  type MessageAttributeValue,
  PublishBatchCommand,
  type PublishBatchRequestEntry,
  PublishCommand,
  SetSubscriptionAttributesCommand,
  SNSClient,
  type SNSClientConfig,
  SubscribeCommand,
  type Subscription,
  UnsubscribeCommand
} from "@aws-sdk/client-sns"
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  ListQueueTagsCommand,
  type Message,
  ReceiveMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
  type SQSClientConfig,
  TagQueueCommand
} from "@aws-sdk/client-sqs"
import {
  type Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Fiber,
  Layer,
  Metric,
  Option,
  Queue,
  Schedule,
  Schema,
  type Scope,
  Stream
} from "effect"
import { createHash } from "node:crypto"
import { BusError, type Delivery, InvalidationBus } from "../../src/InvalidationBus.ts"
import { type InvalidationEvent, InvalidationEventJson } from "../../src/InvalidationEvent.ts"

// ---------------------------------------------------------------------------------------------------------------
// options

/** Where the AWS clients connect; each field falls back to the SDK's standard chain (AWS_REGION, AWS_ENDPOINT_URL, …). */
export interface AwsClientOptions {
  readonly region?: string | undefined
  /** An SNS/SQS-compatible endpoint such as `http://127.0.0.1:4566` (an emulator); AWS itself when unset. */
  readonly endpoint?: string | undefined
  /** Explicit credentials (or a provider); the SDK's default provider chain when unset. */
  readonly credentials?: SQSClientConfig["credentials"] | undefined
}

/** How one instance joins the bus. */
export interface SnsSqsBusOptions extends AwsClientOptions {
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
  /** Visibility timeout of a created queue: how long a delivery stays hidden before it comes back. Default 30. */
  readonly visibilityTimeoutSeconds?: number | undefined
  /** Receives after which a created queue moves a message to its dead-letter queue. Default 5. */
  readonly maxReceiveCount?: number | undefined
  /** How often a running instance refreshes the heartbeat tag of its created queue. Default 5 minutes. */
  readonly heartbeatInterval?: Duration.Input | undefined
  /** Extra tags of created queues (the `embedded-cache:*` tags are always set and take precedence). */
  readonly tags?: Readonly<Record<string, string>> | undefined
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

/** Counts failed receives; each one is logged and retried with backoff while the deliveries stream keeps going. */
export const receiveErrors = Metric.counter("cache_bus_receive_errors_total", {
  description: "SQS receives that failed and were retried",
  incremental: true
})

const dlqSuffix = "-dlq"
/** SQS allows 80 characters; the queue's name leaves room for the DLQ's suffix. */
const maxQueueNameLength = 80 - dlqSuffix.length
const defaultHeartbeat = Duration.minutes(5)
/** Any AWS call without an answer after this long fails (and is aborted), so nothing hangs forever. */
const requestTimeoutMs = 30_000
/** Slack a long poll gets on top of its wait time before it counts as hung. */
const receiveSlackMs = 10_000
/** How long closing waits for pending acknowledgements to be deleted. */
const ackDrainTimeoutMs = 10_000
/** SNS caps a message, and a whole PublishBatch, at 256 KiB; leave room for attributes. */
const maxBatchBytes = 240 * 1024
const maxBatchEntries = 10
/** DLQ retention: the longest SQS allows (14 days), so a poison message can be inspected. */
const dlqRetentionSeconds = 1_209_600

/** Receive retries: 100 ms doubling, at most 5 s apart, jittered; forever (a receive error never ends the stream). */
const receiveBackoff = Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("5 seconds")]).pipe(
  Schedule.jittered
)

/** A queue prefix: what SQS allows in a name, short enough to leave room for the instance id. */
const prefixPattern = /^[A-Za-z0-9_-]{1,40}$/
/** Characters an AWS tag value may hold. */
const tagValuePattern = /[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu

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

// ---------------------------------------------------------------------------------------------------------------
// the AWS boundary: every SDK failure becomes a BusError here, once

const describe = (cause: unknown): string => {
  if (cause instanceof Error) return cause.name !== "Error" ? `${cause.name}: ${cause.message}` : cause.message
  return String(cause)
}

const isNamed = (error: unknown, names: ReadonlyArray<string>): boolean =>
  error instanceof Error && (names.includes(error.name) || names.includes((error as { Code?: string }).Code ?? ""))

const queueMissing = ["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]
const snsNotFound = ["NotFoundException", "NotFound"]

/** Resolves to undefined when the promise fails with one of `names` (a resource that is gone). */
const orGone = <A>(promise: Promise<A>, names: ReadonlyArray<string>): Promise<A | undefined> =>
  promise.catch((error: unknown) => (isNamed(error, names) ? undefined : Promise.reject(error)))

/** One SDK call as an Effect: aborted when interrupted, failed with a BusError after `timeoutMs`. */
const attempt = <A>(
  operation: string,
  send: (signal: AbortSignal) => Promise<A>,
  timeoutMs: number = requestTimeoutMs
): Effect.Effect<A, BusError> =>
  Effect.tryPromise({
    try: (signal: AbortSignal) => send(signal),
    catch: (cause) => new BusError({ operation, message: `${operation} failed: ${describe(cause)}`, cause })
  }).pipe(
    Effect.timeoutOrElse({
      duration: timeoutMs,
      orElse: () => Effect.fail(new BusError({ operation, message: `${operation}: no answer within ${timeoutMs} ms` }))
    })
  )

const configError = (message: string) => new BusError({ operation: "configure", message })

const clientConfig = (options: AwsClientOptions): SQSClientConfig & SNSClientConfig => ({
  ...(options.region !== undefined ? { region: options.region } : {}),
  ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
  ...(options.credentials !== undefined ? { credentials: options.credentials } : {})
})

/** SNS and SQS clients, destroyed (sockets closed) when the scope closes. */
const makeClients = (options: AwsClientOptions) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const config = clientConfig(options)
      // Address queues through the configured endpoint (AWS_ENDPOINT_URL included), not their URL's host: an
      // emulator's queue URLs name hosts that only resolve inside it.
      return { sqs: new SQSClient({ ...config, useQueueUrlAsEndpoint: false }), sns: new SNSClient(config) }
    }),
    ({ sns, sqs }) =>
      Effect.sync(() => {
        sqs.destroy()
        sns.destroy()
      })
  )

type Clients = Effect.Success<ReturnType<typeof makeClients>>

const tagValue = (value: string): string => value.replace(tagValuePattern, "_").slice(0, 256)

// ---------------------------------------------------------------------------------------------------------------
// SQS and SNS operations

const getQueueUrl = (sqs: SQSClient, name: string) =>
  attempt("GetQueueUrl", (signal) =>
    orGone(sqs.send(new GetQueueUrlCommand({ QueueName: name }), { abortSignal: signal }), queueMissing).then(
      (result) => result?.QueueUrl
    )
  )

const getQueueArn = (sqs: SQSClient, queueUrl: string) =>
  attempt("GetQueueAttributes", (signal) =>
    sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }), {
      abortSignal: signal
    })
  ).pipe(
    Effect.flatMap((result) => {
      const arn = result.Attributes?.QueueArn
      return arn === undefined
        ? Effect.fail(new BusError({ operation: "GetQueueAttributes", message: `${queueUrl} has no QueueArn` }))
        : Effect.succeed(arn)
    })
  )

const createQueue = (sqs: SQSClient, name: string, attributes: Record<string, string>, tags: Record<string, string>) =>
  attempt("CreateQueue", (signal) =>
    sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes, tags }), { abortSignal: signal })
  ).pipe(
    Effect.flatMap((result) =>
      result.QueueUrl === undefined
        ? Effect.fail(new BusError({ operation: "CreateQueue", message: `no QueueUrl for ${name}` }))
        : Effect.succeed(result.QueueUrl)
    )
  )

/** Deletes a queue; one that is already gone counts as deleted. */
const deleteQueue = (sqs: SQSClient, queueUrl: string) =>
  attempt("DeleteQueue", (signal) =>
    orGone(sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }), { abortSignal: signal }), queueMissing)
  ).pipe(Effect.asVoid)

/** Removes a subscription; one that is already gone counts as removed. */
const unsubscribe = (sns: SNSClient, subscriptionArn: string) =>
  attempt("Unsubscribe", (signal) =>
    orGone(sns.send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn }), { abortSignal: signal }), snsNotFound)
  ).pipe(Effect.asVoid)

const listQueueTags = (sqs: SQSClient, queueUrl: string) =>
  attempt("ListQueueTags", (signal) =>
    orGone(sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }), { abortSignal: signal }), queueMissing).then(
      (result) => (result === undefined ? undefined : (result.Tags ?? {}))
    )
  )

/** Every page of a paginated listing, in order. */
const allPages = <A>(
  page: (token: string | undefined) => Effect.Effect<readonly [ReadonlyArray<A>, string | undefined], BusError>
): Effect.Effect<Array<A>, BusError> =>
  Effect.gen(function* () {
    const all: Array<A> = []
    let token: string | undefined
    do {
      const [items, next] = yield* page(token)
      all.push(...items)
      token = next
    } while (token !== undefined && token !== "")
    return all
  })

const listQueueUrls = (sqs: SQSClient, prefix: string) =>
  allPages((token) =>
    attempt("ListQueues", (signal) =>
      sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix, MaxResults: 1000, NextToken: token }), {
        abortSignal: signal
      })
    ).pipe(Effect.map((r) => [r.QueueUrls ?? [], r.NextToken] as const))
  )

/** The subscriptions of `topicArn`, or of the whole account when it is undefined. */
const listSubscriptions = (sns: SNSClient, topicArn: string | undefined) =>
  allPages<Subscription>((token) =>
    topicArn === undefined
      ? attempt("ListSubscriptions", (signal) =>
          sns.send(new ListSubscriptionsCommand({ NextToken: token }), { abortSignal: signal })
        ).pipe(Effect.map((r) => [r.Subscriptions ?? [], r.NextToken] as const))
      : attempt("ListSubscriptionsByTopic", (signal) =>
          sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn, NextToken: token }), {
            abortSignal: signal
          })
        ).pipe(Effect.map((r) => [r.Subscriptions ?? [], r.NextToken] as const))
  )

const isConfirmed = (arn: string | undefined): arn is string => arn !== undefined && arn.startsWith("arn:") // a pending subscription's ARN reads "PendingConfirmation"

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
  const existing = (yield* listSubscriptions(sns, topicArn)).find(
    (s) => s.Protocol === "sqs" && s.Endpoint === queueArn && isConfirmed(s.SubscriptionArn)
  )
  if (existing?.SubscriptionArn !== undefined) {
    const arn = existing.SubscriptionArn
    const { Attributes: current = {} } = yield* attempt("GetSubscriptionAttributes", (signal) =>
      sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: arn }), { abortSignal: signal })
    )
    const set = (name: string, value: string) =>
      attempt("SetSubscriptionAttributes", (signal) =>
        sns.send(
          new SetSubscriptionAttributesCommand({ SubscriptionArn: arn, AttributeName: name, AttributeValue: value }),
          { abortSignal: signal }
        )
      )
    if (current.RawMessageDelivery !== "true") yield* set("RawMessageDelivery", "true")
    if (!sameJson(current.FilterPolicy, policy)) yield* set("FilterPolicy", policy)
    return { arn, created: false }
  }
  const result = yield* attempt("Subscribe", (signal) =>
    sns.send(
      new SubscribeCommand({
        TopicArn: topicArn,
        Protocol: "sqs",
        Endpoint: queueArn,
        Attributes: { RawMessageDelivery: "true", FilterPolicy: policy },
        ReturnSubscriptionArn: true
      }),
      { abortSignal: signal }
    )
  )
  if (result.SubscriptionArn === undefined) {
    return yield* new BusError({ operation: "Subscribe", message: `no SubscriptionArn for ${queueArn}` })
  }
  return { arn: result.SubscriptionArn, created: true }
})

// ---------------------------------------------------------------------------------------------------------------
// publishing

const encodeEvent = Schema.encodeSync(InvalidationEventJson)

const messageAttributes = (event: InvalidationEvent): Record<string, MessageAttributeValue> => ({
  source_instance: { DataType: "String", StringValue: event.source_instance },
  invalidation_type: { DataType: "String", StringValue: event.invalidation_type }
})

const encode = (events: ReadonlyArray<InvalidationEvent>) =>
  Effect.try({
    try: () => events.map((event) => ({ event, body: encodeEvent(event) })),
    catch: (cause) =>
      new BusError({ operation: "publish", message: `an event does not encode: ${describe(cause)}`, cause })
  })

/** Splits encoded events into PublishBatch requests: at most 10 entries and about 240 KiB each. */
const chunk = <A extends { readonly body: string }>(items: ReadonlyArray<A>): Array<Array<A>> => {
  const chunks: Array<Array<A>> = []
  let current: Array<A> = []
  let bytes = 0
  for (const item of items) {
    const size = Buffer.byteLength(item.body)
    if (current.length > 0 && (current.length === maxBatchEntries || bytes + size > maxBatchBytes)) {
      chunks.push(current)
      current = []
      bytes = 0
    }
    current.push(item)
    bytes += size
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

const publishTo = (sns: SNSClient, topicArn: string) => {
  const one = (item: { readonly event: InvalidationEvent; readonly body: string }) =>
    attempt("Publish", (signal) =>
      sns.send(
        new PublishCommand({
          TopicArn: topicArn,
          Message: item.body,
          MessageAttributes: messageAttributes(item.event)
        }),
        { abortSignal: signal }
      )
    ).pipe(Effect.asVoid)

  const batch = (items: ReadonlyArray<{ readonly event: InvalidationEvent; readonly body: string }>) =>
    Effect.gen(function* () {
      const entries: Array<PublishBatchRequestEntry> = items.map((item, i) => ({
        Id: String(i),
        Message: item.body,
        MessageAttributes: messageAttributes(item.event)
      }))
      const result = yield* attempt("PublishBatch", (signal) =>
        sns.send(new PublishBatchCommand({ TopicArn: topicArn, PublishBatchRequestEntries: entries }), {
          abortSignal: signal
        })
      )
      const failed = result.Failed ?? []
      if (failed.length > 0) {
        const listed = failed.map((f) => {
          const event = items[Number(f.Id)]?.event
          return `${event?.event_id ?? `entry ${f.Id}`}: ${f.Code ?? "error"} ${f.Message ?? ""}`.trim()
        })
        return yield* new BusError({
          operation: "PublishBatch",
          message: `${failed.length} of ${items.length} events were not published: ${listed.join("; ")}`,
          cause: failed
        })
      }
    })

  return (events: ReadonlyArray<InvalidationEvent>): Effect.Effect<void, BusError> => {
    if (events.length === 0) return Effect.void
    return Effect.flatMap(encode(events), (items) =>
      items.length === 1 ? one(items[0]!) : Effect.forEach(chunk(items), batch, { concurrency: 4, discard: true })
    )
  }
}

// ---------------------------------------------------------------------------------------------------------------
// receiving and acknowledging

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

interface PendingAck {
  readonly receiptHandle: string
  readonly done: Deferred.Deferred<void, BusError>
}

/**
 * Acknowledgement = DeleteMessage, batched: a worker deletes whatever acks are waiting (up to 10) in one
 * DeleteMessageBatch, so an idle consumer waits for nothing and a busy one saves requests. Each ack completes
 * when its own entry was deleted. Closing the scope deletes what is still pending before the queue goes.
 */
const makeAcker = Effect.fnUntraced(function* (sqs: SQSClient, queueUrl: string) {
  const pending = yield* Queue.unbounded<PendingAck, Cause.Done>()

  const flush = (batch: ReadonlyArray<PendingAck>) =>
    attempt("DeleteMessageBatch", (signal) =>
      sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: batch.map((a, i) => ({ Id: String(i), ReceiptHandle: a.receiptHandle }))
        }),
        { abortSignal: signal }
      )
    ).pipe(
      Effect.matchEffect({
        onFailure: (error) => Effect.forEach(batch, (a) => Deferred.fail(a.done, error), { discard: true }),
        onSuccess: (result) => {
          const failed = new Map((result.Failed ?? []).map((f) => [f.Id, f]))
          return Effect.forEach(
            batch,
            (a, i) => {
              const failure = failed.get(String(i))
              return failure === undefined
                ? Deferred.succeed(a.done, undefined)
                : Deferred.fail(
                    a.done,
                    new BusError({
                      operation: "DeleteMessageBatch",
                      message: `ack failed: ${failure.Code ?? "error"} ${failure.Message ?? ""}`.trim(),
                      cause: failure
                    })
                  )
            },
            { discard: true }
          )
        }
      }),
      Effect.onInterrupt(() =>
        Effect.forEach(
          batch,
          (a) => Deferred.fail(a.done, new BusError({ operation: "ack", message: "the bus closed" })),
          { discard: true }
        )
      )
    )

  // takeBetween fails with Done once the queue has ended and is drained: that ends the worker.
  const worker = yield* Queue.takeBetween(pending, 1, maxBatchEntries).pipe(
    Effect.flatMap(flush),
    Effect.forever,
    Effect.catch(() => Effect.void),
    Effect.forkScoped
  )
  yield* Effect.addFinalizer(() =>
    Queue.end(pending).pipe(
      Effect.andThen(Fiber.join(worker)),
      Effect.timeoutOption(ackDrainTimeoutMs),
      Effect.andThen(Fiber.interrupt(worker)),
      Effect.andThen(Queue.clear(pending)),
      Effect.flatMap((left) =>
        Effect.forEach(
          left,
          (a) => Deferred.fail(a.done, new BusError({ operation: "ack", message: "the bus closed" })),
          { discard: true }
        )
      ),
      Effect.ignore
    )
  )

  return (receiptHandle: string): Effect.Effect<void, BusError> =>
    Effect.suspend(() => {
      const done = Deferred.makeUnsafe<void, BusError>()
      return Queue.offer(pending, { receiptHandle, done }).pipe(
        Effect.flatMap((accepted) =>
          accepted
            ? Deferred.await(done)
            : Effect.fail(new BusError({ operation: "ack", message: "the bus is closed" }))
        )
      )
    })
})

const receiveCountOf = (message: Message): number => {
  const count = Number(message.Attributes?.ApproximateReceiveCount)
  return Number.isInteger(count) && count >= 1 ? count : 1
}

// ---------------------------------------------------------------------------------------------------------------
// the managed queue

interface ManagedQueue {
  readonly queueUrl: string
  readonly queueArn: string
  readonly dlqUrl: string | undefined
  readonly subscriptionArn: string | undefined
  /** Whether the queue could have missed events published before this start (see `queueCreated`). */
  readonly fresh: boolean
}

const checkRange = (name: string, value: number, min: number, max: number) =>
  Number.isInteger(value) && value >= min && value <= max
    ? Effect.void
    : Effect.fail(configError(`${name} must be an integer from ${min} to ${max}, not ${value}`))

/**
 * Finds or creates the instance's queue and DLQ, sets their attributes and subscribes the queue; in the scope's
 * finalizer, a queue created here is unsubscribed and deleted with its DLQ (an adopted one is left alone).
 */
const provisionQueue = Effect.fnUntraced(function* (
  { sns, sqs }: Clients,
  options: SnsSqsBusOptions,
  topicArn: string,
  settings: { readonly prefix: string; readonly visibility: number; readonly maxReceiveCount: number }
) {
  const name = queueName(settings.prefix, options.instanceId)
  const instance = tagValue(options.instanceId)
  const now = String(yield* Clock.currentTimeMillis)
  const existingUrl = yield* getQueueUrl(sqs, name)
  const created = existingUrl === undefined
  const cleanup = (what: string, effect: Effect.Effect<void, BusError>) =>
    created
      ? effect.pipe(Effect.catch((error) => Effect.logWarning(`could not ${what} at shutdown: ${error.message}`)))
      : Effect.void

  // The DLQ first, so the queue never exists without its redrive target.
  const dlqUrl = yield* Effect.acquireRelease(
    Effect.flatMap(getQueueUrl(sqs, dlqName(name)), (url) =>
      url !== undefined
        ? Effect.succeed(url)
        : createQueue(
            sqs,
            dlqName(name),
            { MessageRetentionPeriod: String(dlqRetentionSeconds) },
            { [tagKeys.instance]: instance, [tagKeys.role]: "dlq", [tagKeys.created]: now }
          )
    ),
    (url) => cleanup(`delete the DLQ ${url}`, deleteQueue(sqs, url))
  )
  const dlqArn = yield* getQueueArn(sqs, dlqUrl)
  const attributes = {
    VisibilityTimeout: String(settings.visibility),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: settings.maxReceiveCount })
  }
  const tags = {
    ...options.tags,
    [tagKeys.instance]: instance,
    [tagKeys.role]: "queue",
    [tagKeys.heartbeat]: now
  }
  const queueUrl = yield* Effect.acquireRelease(
    existingUrl === undefined
      ? createQueue(sqs, name, attributes, { ...tags, [tagKeys.created]: now })
      : Effect.as(
          Effect.andThen(
            attempt("SetQueueAttributes", (signal) =>
              sqs.send(new SetQueueAttributesCommand({ QueueUrl: existingUrl, Attributes: attributes }), {
                abortSignal: signal
              })
            ),
            attempt("TagQueue", (signal) =>
              sqs.send(new TagQueueCommand({ QueueUrl: existingUrl, Tags: tags }), { abortSignal: signal })
            )
          ),
          existingUrl
        ),
    (url) => cleanup(`delete the queue ${url}`, deleteQueue(sqs, url))
  )
  const queueArn = yield* getQueueArn(sqs, queueUrl)
  yield* attempt("SetQueueAttributes", (signal) =>
    sqs.send(
      new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { Policy: queuePolicy(queueArn, topicArn) } }),
      { abortSignal: signal }
    )
  )
  const subscription = yield* Effect.acquireRelease(
    ensureSubscription(sns, topicArn, queueArn, options.instanceId),
    ({ arn }) => cleanup(`unsubscribe ${arn}`, unsubscribe(sns, arn))
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
const heartbeat = (sqs: SQSClient, queueUrl: string, interval: Duration.Duration) =>
  Effect.sleep(interval).pipe(
    Effect.andThen(Clock.currentTimeMillis),
    Effect.flatMap((now) =>
      attempt("TagQueue", (signal) =>
        sqs.send(new TagQueueCommand({ QueueUrl: queueUrl, Tags: { [tagKeys.heartbeat]: String(now) } }), {
          abortSignal: signal
        })
      )
    ),
    Effect.catch((error) => Effect.logWarning(`heartbeat failed: ${error.message}`)),
    Effect.forever,
    Effect.forkScoped
  )

// ---------------------------------------------------------------------------------------------------------------
// the bus

/** Builds one instance's bus: clients, topic, queue (created or pre-provisioned), ack worker and heartbeat. */
export const make: (options: SnsSqsBusOptions) => Effect.Effect<SnsSqsBus, BusError, Scope.Scope> = Effect.fn(
  "SnsSqsBus.make"
)(
  function* (options: SnsSqsBusOptions) {
    const prefix = options.queuePrefix ?? defaultQueuePrefix
    const waitTimeSeconds = options.waitTimeSeconds ?? 20
    const maxMessages = options.maxMessages ?? 10
    const visibility = options.visibilityTimeoutSeconds ?? 30
    const maxReceiveCount = options.maxReceiveCount ?? 5
    const heartbeatInterval =
      options.heartbeatInterval === undefined
        ? defaultHeartbeat
        : Option.getOrUndefined(Duration.fromInput(options.heartbeatInterval))
    if (options.instanceId.length === 0) return yield* configError("instanceId is empty")
    if (options.queueUrl === undefined && !prefixPattern.test(prefix)) {
      return yield* configError(`queuePrefix ${JSON.stringify(prefix)} must be 1-40 of A-Z a-z 0-9 _ -`)
    }
    yield* checkRange("waitTimeSeconds", waitTimeSeconds, 0, 20)
    yield* checkRange("maxMessages", maxMessages, 1, 10)
    yield* checkRange("visibilityTimeoutSeconds", visibility, 0, 43_200)
    yield* checkRange("maxReceiveCount", maxReceiveCount, 1, 1000)
    if (heartbeatInterval === undefined || !(Duration.toMillis(heartbeatInterval) > 0)) {
      return yield* configError("heartbeatInterval must be a positive duration")
    }
    if (options.topicArn === undefined && options.topicName === undefined) {
      return yield* configError("give topicArn or topicName")
    }

    const clients = yield* makeClients(options)
    const { sns, sqs } = clients
    const topicArn =
      options.topicArn ??
      (yield* attempt("CreateTopic", (signal) =>
        sns.send(new CreateTopicCommand({ Name: options.topicName }), { abortSignal: signal })
      ).pipe(
        Effect.flatMap((r) =>
          r.TopicArn === undefined
            ? Effect.fail(new BusError({ operation: "CreateTopic", message: "no TopicArn" }))
            : Effect.succeed(r.TopicArn)
        )
      ))

    const queue: ManagedQueue =
      options.queueUrl === undefined
        ? yield* provisionQueue(clients, options, topicArn, { prefix, visibility, maxReceiveCount })
        : {
            queueUrl: options.queueUrl,
            queueArn: yield* getQueueArn(sqs, options.queueUrl), // also checks that the queue exists and is reachable
            dlqUrl: undefined,
            subscriptionArn: undefined,
            fresh: false
          }
    if (options.queueUrl === undefined) yield* heartbeat(sqs, queue.queueUrl, heartbeatInterval)
    const ack = yield* makeAcker(sqs, queue.queueUrl)

    let lastContact: number | undefined
    const receive = Effect.gen(function* () {
      const result = yield* attempt(
        "ReceiveMessage",
        (signal) =>
          sqs.send(
            new ReceiveMessageCommand({
              QueueUrl: queue.queueUrl,
              WaitTimeSeconds: waitTimeSeconds,
              MaxNumberOfMessages: maxMessages,
              MessageSystemAttributeNames: ["ApproximateReceiveCount", "SentTimestamp"],
              MessageAttributeNames: ["All"]
            }),
            { abortSignal: signal }
          ),
        waitTimeSeconds * 1000 + receiveSlackMs
      )
      lastContact = yield* Clock.currentTimeMillis
      const deliveries: Array<Delivery> = []
      for (const message of result.Messages ?? []) {
        const receiptHandle = message.ReceiptHandle
        if (receiptHandle === undefined) continue
        deliveries.push({
          body: unwrapEnvelope(message.Body ?? ""),
          receiveCount: receiveCountOf(message),
          ack: ack(receiptHandle)
        })
      }
      return deliveries
    }).pipe(
      Effect.tapError((error) =>
        Metric.update(receiveErrors, 1).pipe(
          Effect.andThen(Effect.logWarning(`receive failed, retrying: ${error.message}`))
        )
      ),
      Effect.retry(receiveBackoff),
      // The stream runs in the consumer's fiber, outside `make`'s log annotations.
      Effect.annotateLogs({ bus: "sns-sqs", instance: options.instanceId })
    )

    return {
      instanceId: options.instanceId,
      queueCreated: queue.fresh,
      publish: publishTo(sns, topicArn),
      deliveries: Stream.fromEffectRepeat(receive).pipe(Stream.flattenIterable),
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

// ---------------------------------------------------------------------------------------------------------------
// the orphan sweeper

/** What `sweepOrphanQueues` looks at, and how it decides an instance is alive. */
export interface SweepOptions extends AwsClientOptions {
  /** The queue prefix the instances were started with (`queuePrefix`). */
  readonly prefix: string
  /**
   * A queue whose heartbeat is older than this is an orphan candidate. Use several heartbeat intervals (e.g.
   * 30 minutes for the default 5), so a running instance whose refreshes failed for a while is not swept.
   */
  readonly olderThan: Duration.Input
  /** The topic the queues are subscribed to; without it every subscription of the account is searched. */
  readonly topicArn?: string | undefined
  /** Overrides a stale heartbeat: a queue whose instance this reports alive is kept. */
  readonly isAlive?: ((instanceId: string) => boolean) | undefined
}

/** A queue the sweeper deleted. */
export interface SweptQueue {
  readonly queueUrl: string
  /** The instance id as tagged. */
  readonly instanceId: string
  /** The last heartbeat (epoch ms) seen, or undefined for a DLQ left without its queue. */
  readonly heartbeat: number | undefined
  /** The subscriptions removed with it. */
  readonly unsubscribed: ReadonlyArray<string>
  /** Its DLQ, deleted with it. */
  readonly dlqUrl: string | undefined
}

const nameOf = (queueUrl: string): string => queueUrl.slice(queueUrl.lastIndexOf("/") + 1)

/** An epoch-milliseconds tag value, or undefined when it holds none. */
const stamp = (value: string | undefined): number | undefined => {
  const n = Number(value)
  return value !== undefined && value !== "" && Number.isFinite(n) ? n : undefined
}

/**
 * Deletes the queues of instances that are gone. The rule: a queue named `<prefix>-…` that carries the
 * `embedded-cache:instance` tag is an orphan when its `embedded-cache:heartbeat` tag is older than `olderThan`
 * and `isAlive` (if given) does not report its instance alive; its subscriptions and its DLQ go with it. A DLQ
 * whose queue no longer exists goes once its creation is older than `olderThan`. Untagged queues (pre-provisioned,
 * foreign) are never touched. Returns what it deleted.
 */
export const sweepOrphanQueues = Effect.fn("SnsSqsBus.sweepOrphanQueues")(function* (
  options: SweepOptions
): Effect.fn.Return<ReadonlyArray<SweptQueue>, BusError> {
  if (!prefixPattern.test(options.prefix)) {
    return yield* configError(`prefix ${JSON.stringify(options.prefix)} must be 1-40 of A-Z a-z 0-9 _ -`)
  }
  const olderThan = Option.getOrUndefined(Duration.fromInput(options.olderThan))
  const olderThanMs = olderThan === undefined ? Number.NaN : Duration.toMillis(olderThan)
  if (!(olderThanMs >= 0)) return yield* configError("olderThan must be a duration, not negative")
  return yield* Effect.scoped(
    Effect.gen(function* () {
      const { sns, sqs } = yield* makeClients(options)
      const cutoff = (yield* Clock.currentTimeMillis) - olderThanMs
      const alive = (instanceId: string) => options.isAlive?.(instanceId) === true
      const urls = (yield* listQueueUrls(sqs, `${options.prefix}-`)).filter((url) =>
        nameOf(url).startsWith(`${options.prefix}-`)
      )
      const tagged = yield* Effect.forEach(
        urls,
        (url) => Effect.map(listQueueTags(sqs, url), (tags) => ({ url, name: nameOf(url), tags })),
        { concurrency: 8 }
      )
      const ours = tagged.flatMap(({ url, name, tags }) => {
        const instanceId = tags?.[tagKeys.instance]
        return tags === undefined || instanceId === undefined ? [] : [{ url, name, tags, instanceId }]
      })
      const byName = new Map(ours.map((q) => [q.name, q]))

      const orphans = ours.filter((q) => {
        if (q.tags[tagKeys.role] === "dlq") return false
        const beat = stamp(q.tags[tagKeys.heartbeat])
        return beat !== undefined && beat < cutoff && !alive(q.instanceId)
      })
      const strayDlqs = ours.filter((q) => {
        if (q.tags[tagKeys.role] !== "dlq" || !q.name.endsWith(dlqSuffix)) return false
        const created = stamp(q.tags[tagKeys.created])
        return (
          byName.get(q.name.slice(0, -dlqSuffix.length)) === undefined &&
          created !== undefined &&
          created < cutoff &&
          !alive(q.instanceId)
        )
      })
      if (orphans.length === 0 && strayDlqs.length === 0) return []

      const subscriptions = orphans.length === 0 ? [] : yield* listSubscriptions(sns, options.topicArn)
      const swept: Array<SweptQueue> = []
      for (const orphan of orphans) {
        // Gone since it was listed: nothing to do.
        const queueArn = yield* getQueueArn(sqs, orphan.url).pipe(
          Effect.catch((error) => (isNamed(error.cause, queueMissing) ? Effect.succeed(undefined) : Effect.fail(error)))
        )
        const unsubscribed: Array<string> = []
        for (const subscription of subscriptions) {
          if (queueArn === undefined || subscription.Endpoint !== queueArn) continue
          if (!isConfirmed(subscription.SubscriptionArn)) continue
          yield* unsubscribe(sns, subscription.SubscriptionArn)
          unsubscribed.push(subscription.SubscriptionArn)
        }
        yield* deleteQueue(sqs, orphan.url)
        const dlq = byName.get(dlqName(orphan.name))
        const dlqUrl = dlq !== undefined && dlq.tags[tagKeys.role] === "dlq" ? dlq.url : undefined
        if (dlqUrl !== undefined) yield* deleteQueue(sqs, dlqUrl)
        swept.push({
          queueUrl: orphan.url,
          instanceId: orphan.instanceId,
          heartbeat: stamp(orphan.tags[tagKeys.heartbeat]),
          unsubscribed,
          dlqUrl
        })
        yield* Effect.logInfo("swept an orphaned bus queue").pipe(
          Effect.annotateLogs({ queueUrl: orphan.url, instance: orphan.instanceId, dlqUrl })
        )
      }
      for (const dlq of strayDlqs) {
        yield* deleteQueue(sqs, dlq.url)
        swept.push({
          queueUrl: dlq.url,
          instanceId: dlq.instanceId,
          heartbeat: undefined,
          unsubscribed: [],
          dlqUrl: undefined
        })
        yield* Effect.logInfo("swept a DLQ left without its queue").pipe(Effect.annotateLogs({ queueUrl: dlq.url }))
      }
      return swept
    })
  )
})
