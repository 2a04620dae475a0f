/**
 * The AWS boundary of the SNS/SQS bus: the SDK clients and every SNS and SQS call the bus makes, each as an Effect.
 * Every SDK failure becomes a `BusError` here, once, naming its operation; every call is aborted when interrupted and
 * fails after a timeout, so nothing hangs forever; a resource that is already gone counts as deleted.
 */
import {
  CreateTopicCommand,
  GetSubscriptionAttributesCommand,
  ListSubscriptionsByTopicCommand,
  ListSubscriptionsCommand,
  type PublishBatchRequestEntry,
  PublishBatchCommand,
  PublishCommand,
  type MessageAttributeValue,
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
  ReceiveMessageCommand,
  SetQueueAttributesCommand,
  SQSClient,
  type SQSClientConfig,
  TagQueueCommand
} from "@aws-sdk/client-sqs"
import { Effect } from "effect"
import { BusError } from "../../src/InvalidationBus.ts"

/** Where the AWS clients connect; each field falls back to the SDK's standard chain (AWS_REGION, AWS_ENDPOINT_URL, …). */
export interface AwsClientOptions {
  readonly region?: string | undefined
  /** An SNS/SQS-compatible endpoint such as `http://127.0.0.1:4566` (an emulator); AWS itself when unset. */
  readonly endpoint?: string | undefined
  /** Explicit credentials (or a provider); the SDK's default provider chain when unset. */
  readonly credentials?: SQSClientConfig["credentials"] | undefined
}

/** The SNS and SQS clients of one bus or sweep. */
export interface Clients {
  readonly sns: SNSClient
  readonly sqs: SQSClient
}

/** Any AWS call without an answer after this long fails (and is aborted), so nothing hangs forever. */
const requestTimeoutMs = 30_000

/** A failure's readable summary: the SDK error's name and message. */
export const describe = (cause: unknown): string => {
  if (cause instanceof Error) return cause.name !== "Error" ? `${cause.name}: ${cause.message}` : cause.message
  return String(cause)
}

/** Whether `error` is an SDK error named (or coded) one of `names`. */
export const isNamed = (error: unknown, names: ReadonlyArray<string>): boolean =>
  error instanceof Error && (names.includes(error.name) || names.includes((error as { Code?: string }).Code ?? ""))

/** The names SQS gives a queue that does not exist. */
export const queueMissing = ["QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"]
const snsNotFound = ["NotFoundException", "NotFound"]

/** Resolves to undefined when the promise fails with one of `names` (a resource that is gone). */
const orGone = <A>(promise: Promise<A>, names: ReadonlyArray<string>): Promise<A | undefined> =>
  promise.catch((error: unknown) => (isNamed(error, names) ? undefined : Promise.reject(error)))

/** One SDK call as an Effect: aborted when interrupted, failed with a BusError after `timeoutMs`. */
export const attempt = <A>(
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

/** The BusError of options that cannot work, raised before any AWS call. */
export const configError = (message: string): BusError => new BusError({ operation: "configure", message })

const clientConfig = (options: AwsClientOptions): SQSClientConfig & SNSClientConfig => ({
  ...(options.region !== undefined ? { region: options.region } : {}),
  ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
  ...(options.credentials !== undefined ? { credentials: options.credentials } : {})
})

/** SNS and SQS clients, destroyed (sockets closed) when the scope closes. */
export const makeClients = (options: AwsClientOptions) =>
  Effect.acquireRelease(
    Effect.sync((): Clients => {
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

// ---------------------------------------------------------------------------------------------------------------
// SNS

/** The ARN of the topic named `name`, created if it does not exist (CreateTopic is idempotent). */
export const createTopic = (sns: SNSClient, name: string | undefined) =>
  attempt("CreateTopic", (signal) => sns.send(new CreateTopicCommand({ Name: name }), { abortSignal: signal })).pipe(
    Effect.flatMap((r) =>
      r.TopicArn === undefined
        ? Effect.fail(new BusError({ operation: "CreateTopic", message: "no TopicArn" }))
        : Effect.succeed(r.TopicArn)
    )
  )

/** Publishes one message with its attributes. */
export const publish = (
  sns: SNSClient,
  topicArn: string,
  message: string,
  attributes: Record<string, MessageAttributeValue>
) =>
  attempt("Publish", (signal) =>
    sns.send(new PublishCommand({ TopicArn: topicArn, Message: message, MessageAttributes: attributes }), {
      abortSignal: signal
    })
  ).pipe(Effect.asVoid)

/** Publishes up to 10 messages in one request; the answer lists the entries that failed. */
export const publishBatch = (sns: SNSClient, topicArn: string, entries: Array<PublishBatchRequestEntry>) =>
  attempt("PublishBatch", (signal) =>
    sns.send(new PublishBatchCommand({ TopicArn: topicArn, PublishBatchRequestEntries: entries }), {
      abortSignal: signal
    })
  )

/** Subscribes an SQS queue to the topic with the given subscription attributes. */
export const subscribe = (sns: SNSClient, topicArn: string, queueArn: string, attributes: Record<string, string>) =>
  attempt("Subscribe", (signal) =>
    sns.send(
      new SubscribeCommand({
        TopicArn: topicArn,
        Protocol: "sqs",
        Endpoint: queueArn,
        Attributes: attributes,
        ReturnSubscriptionArn: true
      }),
      { abortSignal: signal }
    )
  ).pipe(
    Effect.flatMap((result) =>
      result.SubscriptionArn === undefined
        ? Effect.fail(new BusError({ operation: "Subscribe", message: `no SubscriptionArn for ${queueArn}` }))
        : Effect.succeed(result.SubscriptionArn)
    )
  )

/** The attributes of a subscription. */
export const getSubscriptionAttributes = (sns: SNSClient, subscriptionArn: string) =>
  attempt("GetSubscriptionAttributes", (signal) =>
    sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: subscriptionArn }), { abortSignal: signal })
  ).pipe(Effect.map((result) => result.Attributes ?? {}))

/** Sets one attribute of a subscription. */
export const setSubscriptionAttribute = (sns: SNSClient, subscriptionArn: string, name: string, value: string) =>
  attempt("SetSubscriptionAttributes", (signal) =>
    sns.send(
      new SetSubscriptionAttributesCommand({
        SubscriptionArn: subscriptionArn,
        AttributeName: name,
        AttributeValue: value
      }),
      { abortSignal: signal }
    )
  ).pipe(Effect.asVoid)

/** Removes a subscription; one that is already gone counts as removed. */
export const unsubscribe = (sns: SNSClient, subscriptionArn: string) =>
  attempt("Unsubscribe", (signal) =>
    orGone(sns.send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn }), { abortSignal: signal }), snsNotFound)
  ).pipe(Effect.asVoid)

/** Whether a subscription ARN is a confirmed one (a pending subscription's ARN reads "PendingConfirmation"). */
export const isConfirmed = (arn: string | undefined): arn is string => arn !== undefined && arn.startsWith("arn:")

/** Every page of a paginated listing, in order. */
const allPages = Effect.fnUntraced(function* <A>(
  page: (token: string | undefined) => Effect.Effect<readonly [ReadonlyArray<A>, string | undefined], BusError>
) {
  const all: Array<A> = []
  let token: string | undefined
  do {
    const [items, next] = yield* page(token)
    all.push(...items)
    token = next
  } while (token !== undefined && token !== "")
  return all
})

/** The subscriptions of `topicArn`, or of the whole account when it is undefined. */
export const listSubscriptions = (sns: SNSClient, topicArn: string | undefined) =>
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

// ---------------------------------------------------------------------------------------------------------------
// SQS

/** The URL of the queue named `name`, or undefined when there is none. */
export const getQueueUrl = (sqs: SQSClient, name: string) =>
  attempt("GetQueueUrl", (signal) =>
    orGone(sqs.send(new GetQueueUrlCommand({ QueueName: name }), { abortSignal: signal }), queueMissing).then(
      (result) => result?.QueueUrl
    )
  )

/** The ARN of a queue; fails when the queue does not exist or cannot be reached. */
export const getQueueArn = (sqs: SQSClient, queueUrl: string) =>
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

/** Creates a queue with attributes and tags (idempotent for identical ones) and returns its URL. */
export const createQueue = (
  sqs: SQSClient,
  name: string,
  attributes: Record<string, string>,
  tags: Record<string, string>
) =>
  attempt("CreateQueue", (signal) =>
    sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes, tags }), { abortSignal: signal })
  ).pipe(
    Effect.flatMap((result) =>
      result.QueueUrl === undefined
        ? Effect.fail(new BusError({ operation: "CreateQueue", message: `no QueueUrl for ${name}` }))
        : Effect.succeed(result.QueueUrl)
    )
  )

/** Sets attributes of a queue. */
export const setQueueAttributes = (sqs: SQSClient, queueUrl: string, attributes: Record<string, string>) =>
  attempt("SetQueueAttributes", (signal) =>
    sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: attributes }), { abortSignal: signal })
  ).pipe(Effect.asVoid)

/** Adds or overwrites tags of a queue. */
export const tagQueue = (sqs: SQSClient, queueUrl: string, tags: Record<string, string>) =>
  attempt("TagQueue", (signal) =>
    sqs.send(new TagQueueCommand({ QueueUrl: queueUrl, Tags: tags }), { abortSignal: signal })
  ).pipe(Effect.asVoid)

/** Deletes a queue; one that is already gone counts as deleted. */
export const deleteQueue = (sqs: SQSClient, queueUrl: string) =>
  attempt("DeleteQueue", (signal) =>
    orGone(sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }), { abortSignal: signal }), queueMissing)
  ).pipe(Effect.asVoid)

/** The tags of a queue, or undefined when the queue is gone. */
export const listQueueTags = (sqs: SQSClient, queueUrl: string) =>
  attempt("ListQueueTags", (signal) =>
    orGone(sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }), { abortSignal: signal }), queueMissing).then(
      (result) => (result === undefined ? undefined : (result.Tags ?? {}))
    )
  )

/** The URLs of every queue whose name starts with `prefix`. */
export const listQueueUrls = (sqs: SQSClient, prefix: string) =>
  allPages((token) =>
    attempt("ListQueues", (signal) =>
      sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix, MaxResults: 1000, NextToken: token }), {
        abortSignal: signal
      })
    ).pipe(Effect.map((r) => [r.QueueUrls ?? [], r.NextToken] as const))
  )

/** One long poll of a queue: up to `maxMessages` messages with their receive counts and message attributes. */
export const receiveMessages = (
  sqs: SQSClient,
  queueUrl: string,
  waitTimeSeconds: number,
  maxMessages: number,
  timeoutMs: number
) =>
  attempt(
    "ReceiveMessage",
    (signal) =>
      sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          WaitTimeSeconds: waitTimeSeconds,
          MaxNumberOfMessages: maxMessages,
          MessageSystemAttributeNames: ["ApproximateReceiveCount", "SentTimestamp"],
          MessageAttributeNames: ["All"]
        }),
        { abortSignal: signal }
      ),
    timeoutMs
  ).pipe(Effect.map((result) => result.Messages ?? []))

/** Deletes up to 10 received messages by receipt handle (entry ids are their indexes); the answer lists failures. */
export const deleteMessageBatch = (sqs: SQSClient, queueUrl: string, receiptHandles: ReadonlyArray<string>) =>
  attempt("DeleteMessageBatch", (signal) =>
    sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: receiptHandles.map((handle, i) => ({ Id: String(i), ReceiptHandle: handle }))
      }),
      { abortSignal: signal }
    )
  )
