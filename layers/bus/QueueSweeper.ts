/**
 * The orphan sweeper: deletes the bus queues of instances that died without cleaning up, found by the heartbeat tag
 * running instances refresh on their queues. It only ever touches queues carrying this adapter's instance tag under
 * the given prefix (pre-provisioned and foreign queues are never touched), and removes an orphan's subscriptions and
 * dead-letter queue with it.
 */
import type { Subscription } from "@aws-sdk/client-sns"
import type { SQSClient } from "@aws-sdk/client-sqs"
import { Clock, Duration, Effect, Option } from "effect"
import type { BusError } from "../../src/InvalidationBus.ts"
import * as AwsCalls from "./AwsCalls.ts"
import * as SqsQueue from "./SqsQueue.ts"

const { tagKeys } = SqsQueue

/** What `sweepOrphanQueues` looks at, and how it decides an instance is alive. */
export interface SweepOptions extends AwsCalls.AwsClientOptions {
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

/** A queue under the prefix that carries this adapter's instance tag. */
interface TaggedQueue {
  readonly url: string
  readonly name: string
  readonly tags: Record<string, string>
  readonly instanceId: string
}

const nameOf = (queueUrl: string): string => queueUrl.slice(queueUrl.lastIndexOf("/") + 1)

/** An epoch-milliseconds tag value, or undefined when it holds none. */
const stamp = (value: string | undefined): number | undefined => {
  const n = Number(value)
  return value !== undefined && value !== "" && Number.isFinite(n) ? n : undefined
}

/** The queues named `<prefix>-…` that carry the instance tag. */
const listTagged = Effect.fnUntraced(function* (sqs: SQSClient, prefix: string) {
  const urls = (yield* AwsCalls.listQueueUrls(sqs, `${prefix}-`)).filter((url) => nameOf(url).startsWith(`${prefix}-`))
  const tagged = yield* Effect.forEach(
    urls,
    (url) => Effect.map(AwsCalls.listQueueTags(sqs, url), (tags) => ({ url, name: nameOf(url), tags })),
    { concurrency: 8 }
  )
  return tagged.flatMap(({ url, name, tags }): Array<TaggedQueue> => {
    const instanceId = tags?.[tagKeys.instance]
    return tags === undefined || instanceId === undefined ? [] : [{ url, name, tags, instanceId }]
  })
})

/** Splits the tagged queues into orphaned queues (stale heartbeat) and DLQs left without their queue. */
const classify = (ours: ReadonlyArray<TaggedQueue>, cutoff: number, alive: (instanceId: string) => boolean) => {
  const byName = new Map(ours.map((q) => [q.name, q]))
  const orphans = ours.filter((q) => {
    if (q.tags[tagKeys.role] === "dlq") return false
    const beat = stamp(q.tags[tagKeys.heartbeat])
    return beat !== undefined && beat < cutoff && !alive(q.instanceId)
  })
  const strayDlqs = ours.filter((q) => {
    if (q.tags[tagKeys.role] !== "dlq" || !q.name.endsWith(SqsQueue.dlqSuffix)) return false
    const created = stamp(q.tags[tagKeys.created])
    return (
      byName.get(q.name.slice(0, -SqsQueue.dlqSuffix.length)) === undefined &&
      created !== undefined &&
      created < cutoff &&
      !alive(q.instanceId)
    )
  })
  return { byName, orphans, strayDlqs }
}

/** Deletes one orphaned queue, its confirmed subscriptions and its DLQ. */
const sweepOrphan = Effect.fnUntraced(function* (
  { sns, sqs }: AwsCalls.Clients,
  orphan: TaggedQueue,
  subscriptions: ReadonlyArray<Subscription>,
  byName: ReadonlyMap<string, TaggedQueue>
) {
  // Gone since it was listed: nothing to do.
  const queueArn = yield* AwsCalls.getQueueArn(sqs, orphan.url).pipe(
    Effect.catch((error) =>
      AwsCalls.isNamed(error.cause, AwsCalls.queueMissing) ? Effect.succeed(undefined) : Effect.fail(error)
    )
  )
  const unsubscribed: Array<string> = []
  for (const subscription of subscriptions) {
    if (queueArn === undefined || subscription.Endpoint !== queueArn) continue
    if (!AwsCalls.isConfirmed(subscription.SubscriptionArn)) continue
    yield* AwsCalls.unsubscribe(sns, subscription.SubscriptionArn)
    unsubscribed.push(subscription.SubscriptionArn)
  }
  yield* AwsCalls.deleteQueue(sqs, orphan.url)
  const dlq = byName.get(SqsQueue.dlqName(orphan.name))
  const dlqUrl = dlq !== undefined && dlq.tags[tagKeys.role] === "dlq" ? dlq.url : undefined
  if (dlqUrl !== undefined) yield* AwsCalls.deleteQueue(sqs, dlqUrl)
  yield* Effect.logInfo("swept an orphaned bus queue").pipe(
    Effect.annotateLogs({ queueUrl: orphan.url, instance: orphan.instanceId, dlqUrl })
  )
  return {
    queueUrl: orphan.url,
    instanceId: orphan.instanceId,
    heartbeat: stamp(orphan.tags[tagKeys.heartbeat]),
    unsubscribed,
    dlqUrl
  } satisfies SweptQueue
})

/** Deletes a DLQ whose queue is gone. */
const sweepStrayDlq = Effect.fnUntraced(function* (sqs: SQSClient, dlq: TaggedQueue) {
  yield* AwsCalls.deleteQueue(sqs, dlq.url)
  yield* Effect.logInfo("swept a DLQ left without its queue").pipe(Effect.annotateLogs({ queueUrl: dlq.url }))
  return {
    queueUrl: dlq.url,
    instanceId: dlq.instanceId,
    heartbeat: undefined,
    unsubscribed: [],
    dlqUrl: undefined
  } satisfies SweptQueue
})

/** The sweep itself, with its clients open in the current scope. */
const sweep = Effect.fnUntraced(function* (options: SweepOptions, olderThanMs: number) {
  const clients = yield* AwsCalls.makeClients(options)
  const cutoff = (yield* Clock.currentTimeMillis) - olderThanMs
  const alive = (instanceId: string) => options.isAlive?.(instanceId) === true
  const ours = yield* listTagged(clients.sqs, options.prefix)
  const { byName, orphans, strayDlqs } = classify(ours, cutoff, alive)
  if (orphans.length === 0 && strayDlqs.length === 0) return []

  const subscriptions = orphans.length === 0 ? [] : yield* AwsCalls.listSubscriptions(clients.sns, options.topicArn)
  const swept: Array<SweptQueue> = []
  for (const orphan of orphans) swept.push(yield* sweepOrphan(clients, orphan, subscriptions, byName))
  for (const dlq of strayDlqs) swept.push(yield* sweepStrayDlq(clients.sqs, dlq))
  return swept
})

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
  yield* SqsQueue.checkPrefix("prefix", options.prefix)
  const olderThan = Option.getOrUndefined(Duration.fromInput(options.olderThan))
  const olderThanMs = olderThan === undefined ? Number.NaN : Duration.toMillis(olderThan)
  if (!(olderThanMs >= 0)) return yield* AwsCalls.configError("olderThan must be a duration, not negative")
  return yield* Effect.scoped(sweep(options, olderThanMs))
})
