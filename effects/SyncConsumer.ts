/**
 * Applies the invalidations other instances publish, one receive batch at a time: a body that is not a valid event
 * (v1 or v2) is counted, logged and left unacknowledged (the queue's redrive policy moves it to the dead-letter
 * queue) while the consumer keeps going; this instance's own events and already-applied `event_id`s (within the
 * batch too) are acknowledged and skipped; every other event's targets are applied locally together (loads in
 * flight fenced, the keys in one store delete), and an event is acknowledged only once the store took all of it —
 * one the store could not apply stays unacknowledged, so it is redelivered (meanwhile its keys stay pending in the
 * cache: they miss, and the cache retries them). Applying is idempotent, so redelivery is harmless.
 *
 * Continuity: each publisher boot (`epoch`) is tracked by `SeqTracker`; the tracking is kept in the instance's own
 * store (so it persists with the data), and a restart with persisted data resumes it instead of counting everything
 * missing. A publisher that stopped gracefully announced its last seq, so its restart loses nothing and flushes
 * nothing. When continuity cannot be shown, everything that could be stale is flushed (and counted by reason): the
 * queue was created at this start while the store kept data from before; a publisher's `seq` has a hole that stays
 * open longer than `gapTimeout` (an epoch first heard past its seq 1 counts: without kept continuity, its earlier
 * events may have been lost); a publisher's old boot never completed (it crashed: what it had not published is lost); or the bus has not
 * answered for longer than `silenceBound`. So the staleness bound of an instance that misses messages is
 * `max(gapTimeout, silenceBound) + checkInterval`.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Schedule, Schema, Stream } from "effect"
import { CacheStore } from "../src/CacheStore.ts"
import { type Delivery, InvalidationBus } from "../src/InvalidationBus.ts"
import {
  epochOf,
  type InvalidationEvent,
  InvalidationEventJson,
  isFinal,
  type Target,
  targetsOf
} from "../src/InvalidationEvent.ts"
import { Cache } from "./Cache.ts"
import { SeenWindow } from "./internal/SeenWindow.ts"
import { SeqTracker } from "./internal/SeqTracker.ts"
import * as Metrics from "./SyncMetrics.ts"

/** Tuning of the consumer; every field has a production default. */
export interface SyncOptions {
  /** Event ids remembered for deduplication. Default 100,000. */
  readonly seenWindow?: number | undefined
  /** How long a missing `seq` may stay missing before it counts as lost. Default 30 s. */
  readonly gapTimeout?: Duration.Input | undefined
  /** How many later events may arrive past a missing `seq` before it counts as lost. Default 1,000. */
  readonly maxAhead?: number | undefined
  /** How long the bus may stay silent (no successful receive) before everything is flushed. Default 60 s. */
  readonly silenceBound?: Duration.Input | undefined
  /** How often gaps and silence are checked. Default 1 s. */
  readonly checkInterval?: Duration.Input | undefined
  /** How often the continuity is saved in the store (after applied batches). Default 1 s. */
  readonly persistEvery?: Duration.Input | undefined
  /** Batches whose acknowledgements may be in flight while later batches are applied. Default 8. */
  readonly ackConcurrency?: number | undefined
  /**
   * Test only — a deliberately broken batch path: acknowledges a batch before applying it, so an acknowledged
   * invalidation may not be visible yet (or lost on a crash). The model tests show it is caught. Default false.
   */
  readonly unsafeAckBeforeApply?: boolean | undefined
}

/** What the consumer did, since it started. */
export interface SyncStats {
  readonly received: number
  readonly applied: number
  readonly duplicates: number
  readonly own: number
  readonly malformed: number
  /** Events the store could not apply yet: left unacknowledged, so they are redelivered. */
  readonly deferred: number
  readonly flushes: number
}

/** The running consumer. */
export class SyncConsumer extends Context.Service<
  SyncConsumer,
  {
    readonly stats: Effect.Effect<SyncStats>
    /** Runs the gap and silence checks now (they also run every `checkInterval`). */
    readonly check: Effect.Effect<void>
    /**
     * Whether this instance has caught up with the events published while it was down (always, without kept data
     * or on a queue created at this start). Until then its kept data is not served; readiness waits for it.
     */
    readonly caughtUp: Effect.Effect<boolean>
  }
>()("embedded-cache/SyncConsumer") {}

const decode = Schema.decodeUnknownExit(InvalidationEventJson)

/** Where the consumer keeps its continuity in its own store (a control character: never a user's key). */
export const continuityKey = "\u0000sync:continuity"

/** The continuity as saved: when (this host's clock, ms) and each publisher epoch's state. */
const SavedContinuity = Schema.Struct({
  savedAt: Schema.Finite,
  epochs: Schema.Array(
    Schema.Struct({
      source: Schema.String,
      epoch: Schema.String,
      contiguous: Schema.Int,
      final: Schema.optional(Schema.Int)
    })
  )
})
const decodeSaved = Schema.decodeUnknownExit(Schema.fromJsonString(SavedContinuity))

/** A decoded delivery of an event this instance has to apply. */
interface Fresh {
  readonly delivery: Delivery
  readonly event: InvalidationEvent
}

/** Acknowledges one delivery; a failed ack is logged (the message comes back and is deduplicated). */
const ackOne = (delivery: Delivery) =>
  Effect.catchTag(delivery.ack, "BusError", (error) =>
    Effect.logWarning("acknowledging a delivery failed; it will be redelivered and deduplicated").pipe(
      Effect.annotateLogs({ error: error.message })
    )
  )
/** What the store kept from before this start: whether it holds data, and the continuity saved with it. */
const keptState = (store: CacheStore["Service"]) =>
  Effect.gen(function* () {
    const saved = yield* Effect.orElseSucceed(store.get(continuityKey), () => undefined)
    const keys = (yield* Effect.orElseSucceed(store.info, () => undefined))?.keys
    const decoded = saved === undefined ? undefined : decodeSaved(saved)
    const continuity: typeof SavedContinuity.Type | undefined =
      decoded !== undefined && decoded._tag === "Success" ? decoded.value : undefined
    // Unknown (the store did not answer) counts as holding data: the safe side.
    return { hadData: keys === undefined || keys - (saved === undefined ? 0 : 1) > 0, continuity }
  })

/** Starts consuming this instance's deliveries in the scope. */
export const make = Effect.fnUntraced(function* (options: SyncOptions = {}) {
  const cache = yield* Cache
  const bus = yield* InvalidationBus
  const store = yield* CacheStore
  const seen = new SeenWindow(options.seenWindow ?? 100_000)
  const startedAt = yield* Clock.currentTimeMillis
  const kept = yield* keptState(store)
  const seqs = new SeqTracker({
    gapTimeoutMs: Duration.toMillis(options.gapTimeout ?? "30 seconds"),
    maxAhead: options.maxAhead ?? 1000
  })
  if (kept.continuity !== undefined) seqs.restore(kept.continuity.epochs, startedAt)
  // An adopted queue over kept data: events published while this instance was down are in the backlog — some
  // possibly invisible for a while, received by the dead process's last poll. Until that window has passed and a
  // receive came back empty, the kept data is not served (reads miss) and the instance is not ready.
  const catchUpUntil =
    !bus.queueCreated && kept.hadData
      ? Math.max(startedAt, (kept.continuity?.savedAt ?? startedAt) + bus.heldAtMostMs)
      : undefined
  let caughtUp = catchUpUntil === undefined
  let lastBatchAt = 0
  if (!caughtUp) {
    yield* cache.holdReads(true)
    yield* Effect.logInfo("catching up with the events published while this instance was down").pipe(
      Effect.annotateLogs({ until: new Date(catchUpUntil!).toISOString() })
    )
  }
  const silenceMs = Duration.toMillis(options.silenceBound ?? "60 seconds")
  const persistMs = Duration.toMillis(options.persistEvery ?? "1 second")
  const ackConcurrency = options.ackConcurrency ?? 8
  const stats = { received: 0, applied: 0, duplicates: 0, own: 0, malformed: 0, deferred: 0, flushes: 0 }
  let lastFlush = startedAt
  let lastPersisted = startedAt

  /** Saves the continuity in the store (it persists with the data); a failure only delays the next save. */
  const persist = Effect.suspend(() =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      store.set(continuityKey, JSON.stringify({ savedAt: now, epochs: seqs.snapshot() }))
    ).pipe(
      Effect.andThen(Effect.map(Clock.currentTimeMillis, (now) => void (lastPersisted = now))),
      Effect.catch((error) =>
        Effect.logDebug("saving the sync continuity failed; it is saved again later").pipe(
          Effect.annotateLogs({ reason: error.reason })
        )
      )
    )
  )

  const flush = Effect.fnUntraced(function* (reason: Metrics.FlushReason, detail: object) {
    stats.flushes++
    lastFlush = yield* Clock.currentTimeMillis
    yield* Effect.logWarning("continuity with peers lost: flushing the local cache").pipe(
      Effect.annotateLogs({ reason, ...detail })
    )
    yield* cache.flushLocally
    yield* Metrics.flushed(reason)
    // The flush took the saved continuity with it.
    yield* persist
    // Nothing kept from before is left to protect: a restart still catching up may serve (and be ready) now.
    if (!caughtUp) {
      caughtUp = true
      yield* cache.holdReads(false)
    }
  })

  /** Acknowledges a batch's deliveries together (the SQS acker sends them in one DeleteMessageBatch). */
  const ackAll = (deliveries: ReadonlyArray<Delivery>) =>
    Effect.forEach(deliveries, ackOne, { concurrency: "unbounded", discard: true })

  /**
   * Applies one receive batch and answers the deliveries to acknowledge: every valid event of the batch (own events
   * and duplicates — within the batch too — skipped) is applied in one `invalidateLocallyAll`; malformed bodies are
   * left unacknowledged for the dead-letter queue.
   */
  const apply = Effect.fnUntraced(function* (batch: ReadonlyArray<Delivery>) {
    lastBatchAt = yield* Clock.currentTimeMillis
    stats.received += batch.length
    yield* Metric.update(Metrics.eventsReceived, batch.length)
    const toAck: Array<Delivery> = []
    const fresh: Array<Fresh> = []
    const inBatch = new Set<string>()
    for (const delivery of batch) {
      const decoded = decode(delivery.body)
      if (decoded._tag === "Failure") {
        stats.malformed++
        yield* Metric.update(Metrics.eventsMalformed, 1)
        // Not acknowledged: after maxReceiveCount receives the queue moves it to the dead-letter queue.
        yield* Effect.logWarning("malformed invalidation message left for the dead-letter queue").pipe(
          Effect.annotateLogs({ receive_count: delivery.receiveCount, body: delivery.body.slice(0, 200) })
        )
        continue
      }
      const event = decoded.value
      toAck.push(delivery)
      if (event.source_instance === bus.instanceId) {
        stats.own++
        yield* Metric.update(Metrics.eventsOwn, 1)
      } else if (seen.has(event.event_id) || inBatch.has(event.event_id)) {
        stats.duplicates++
        yield* Metric.update(Metrics.eventsDuplicate, 1)
      } else {
        inBatch.add(event.event_id)
        fresh.push({ delivery, event })
      }
    }
    if (fresh.length === 0) return toAck
    if (options.unsafeAckBeforeApply === true) yield* ackAll(toAck)
    const now = yield* Clock.currentTimeMillis
    for (const { event } of fresh) {
      if (seqs.arrived(event.source_instance, event.seq, now, epochOf(event), isFinal(event)) === "restarted") {
        // A v1 publisher starting over: whatever it had not published when it went down is lost to us.
        yield* flush("publisher-restart", { source: event.source_instance })
      }
    }
    const targets: Array<Target> = []
    for (const { event } of fresh) targets.push(...targetsOf(event))
    const outcomes = yield* cache.invalidateLocallyAll(targets)
    let at = 0
    for (const { delivery, event } of fresh) {
      const count = targetsOf(event).length
      const applied = outcomes.slice(at, at + count).every((outcome) => outcome._tag === "Deleted")
      at += count
      if (!applied) {
        // Left unacknowledged: redelivered after the visibility timeout, and applied then.
        stats.deferred++
        if (options.unsafeAckBeforeApply !== true) toAck.splice(toAck.indexOf(delivery), 1)
        continue
      }
      seen.add(event.event_id)
      stats.applied++
      yield* Metric.update(Metrics.eventsApplied, 1)
      yield* Metric.update(Metrics.lag, Math.max(0, now - event.timestamp))
    }
    if (now - lastPersisted >= persistMs) yield* persist
    return options.unsafeAckBeforeApply === true ? [] : toAck
  })

  const check = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const lost = seqs.lost(now)
    for (const reason of new Set(lost.map((l) => l.reason))) {
      const sources = lost.filter((l) => l.reason === reason).map((l) => l.source)
      yield* flush(reason, { sources: sources.join(",") })
    }
    const contact = (yield* bus.lastContact) ?? startedAt
    if (now - Math.max(contact, lastFlush) > silenceMs) {
      yield* flush("silence", { silent_ms: now - contact })
    }
    // Caught up: the window is over, a receive since came back empty (after the last batch), nothing is missing.
    if (!caughtUp && now >= catchUpUntil! && contact >= catchUpUntil! && contact > lastBatchAt && !seqs.missing()) {
      caughtUp = true
      yield* cache.holdReads(false)
      yield* Effect.logInfo("caught up with the events published while this instance was down")
    }
  })

  // A queue made at this start missed everything published before it; data kept on disk may be stale.
  if (bus.queueCreated && kept.hadData) yield* flush("queue-created", { instance: bus.instanceId })
  // What was applied until a graceful stop is kept for the next start.
  yield* Effect.addFinalizer(() => persist)

  // Batches are applied one at a time, in arrival order (so dedupe and seq tracking see them in order), while the
  // acknowledgements of earlier batches are still in flight.
  yield* bus.deliveries.pipe(
    Stream.mapEffect(apply),
    Stream.mapEffect(ackAll, { concurrency: ackConcurrency, unordered: true }),
    Stream.runDrain,
    Effect.tapCause((cause) => Effect.logError("the invalidation consumer stopped; restarting it", cause)),
    Effect.retry(Schedule.spaced("1 second")),
    Effect.forkScoped
  )
  yield* check.pipe(Effect.repeat(Schedule.spaced(options.checkInterval ?? "1 second")), Effect.forkScoped)

  return SyncConsumer.of({ stats: Effect.sync(() => ({ ...stats })), check, caughtUp: Effect.sync(() => caughtUp) })
})

/** The consumer as a background layer over the cache and the bus in context. */
export const layer = (
  options: SyncOptions = {}
): Layer.Layer<SyncConsumer, never, Cache | InvalidationBus | CacheStore> => Layer.effect(SyncConsumer, make(options))
