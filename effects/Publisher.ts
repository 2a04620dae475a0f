/**
 * Publishes this instance's invalidations to its peers. Targets issued within `coalesceWindow` of each other travel
 * together as one v2 event (split to stay within `maxTargetsPerEvent` and `maxEventBytes`), each event with the next
 * `seq` of this publisher's `epoch` (a fresh id per start); up to `inFlight` bus calls of ≤ `batchSize` events run at
 * once, seqs assigned in issue order. A failed call is retried with backoff until it succeeds: nothing is dropped.
 *
 * What a write waits for: room in the bounded queue (`maxQueued` targets; when it is full — the bus is down or
 * slower than the writes — writes wait, which is the backpressure), then until the bus accepted the event carrying
 * its target, at most `awaitMs`; past that the write returns and its event keeps being retried in the background,
 * in order with the rest. So when a write returns normally, its peers will get it. Fills and warm-ups never come
 * here. Closing the publisher's scope announces the epoch's last seq (a `final` event), once what was issued was
 * accepted, so peers know this boot ended rather than was lost.
 */
import { Clock, Context, Deferred, Duration, Effect, Layer, Queue, Schedule, Semaphore } from "effect"
import { InvalidationBus } from "../src/InvalidationBus.ts"
import type { InvalidationEventV2, Target } from "../src/InvalidationEvent.ts"
import * as EventPacking from "./internal/EventPacking.ts"
import * as Metrics from "./SyncMetrics.ts"

/** The publishing side of sync. */
export class Publisher extends Context.Service<
  Publisher,
  {
    readonly instanceId: string
    /** This publisher's epoch: a fresh id per start, carried by every event it publishes. */
    readonly epoch: string
    /** Publishes `target`; waits for room in the queue, then for the bus to accept it, at most `awaitMs`. Never fails. */
    readonly publish: (target: Target) => Effect.Effect<void>
    /** Waits until every target queued so far has been accepted by the bus. */
    readonly drain: Effect.Effect<void>
    /** How many targets were issued and not accepted yet (queued, in a coalescing window, or being sent). */
    readonly pending: Effect.Effect<number>
  }
>()("embedded-cache/Publisher") {}

/** How patient, how eager and how large; every field has a production default (see infra/README.md, scale model). */
export interface PublisherOptions {
  /** Events per bus call; SNS's PublishBatch takes at most 10. Default 10. */
  readonly batchSize?: number | undefined
  /** How long a write waits for its event to be accepted before returning. Default 5000 ms. */
  readonly awaitMs?: number | undefined
  /** How long the first target of an event waits for others to join it; 0 sends what is queued at once. Default 5 ms. */
  readonly coalesceWindow?: Duration.Input | undefined
  /** Targets per event at most; 1 turns coalescing off. Default 1,000. */
  readonly maxTargetsPerEvent?: number | undefined
  /** JSON bytes per event at most (SNS and SQS bill each 64 KiB as one request, and cap a message at 256 KiB). Default 60 KiB. */
  readonly maxEventBytes?: number | undefined
  /** Bus calls in flight at once. Default 4. */
  readonly inFlight?: number | undefined
  /** Targets queued (issued, not yet accepted) at most before writes wait for room. Default 100,000. */
  readonly maxQueued?: number | undefined
}

/** One issued target, waiting to be accepted. */
interface Outgoing {
  readonly target: Target
  readonly size: number
  readonly accepted: Deferred.Deferred<void>
}

/** Retries forever, backing off from 50 ms to at most 5 s between attempts. */
const retryForever = Schedule.min([Schedule.exponential("50 millis", 2), Schedule.spaced("5 seconds")])

/** `value`, or a defect naming the option: a misconfiguration, not a runtime condition. */
const positive = (name: string, value: number): Effect.Effect<number> =>
  Number.isInteger(value) && value >= 1
    ? Effect.succeed(value)
    : Effect.die(new Error(`Publisher: ${name} must be a positive integer, not ${value}`))

/** Builds the publisher over the bus in context; its sender fiber and calls in flight live in the scope. */
export const make = Effect.fnUntraced(function* (options: PublisherOptions = {}) {
  const bus = yield* InvalidationBus
  const scope = yield* Effect.scope
  const batchSize = yield* positive("batchSize", options.batchSize ?? 10)
  const awaitMs = options.awaitMs ?? 5000
  const windowMs = Duration.toMillis(options.coalesceWindow ?? "5 millis")
  const budget = {
    maxTargets: yield* positive("maxTargetsPerEvent", options.maxTargetsPerEvent ?? 1000),
    maxBytes: yield* positive("maxEventBytes", options.maxEventBytes ?? 60 * 1024)
  }
  const queue = yield* Queue.bounded<Outgoing>(yield* positive("maxQueued", options.maxQueued ?? 100_000))
  const permits = yield* Semaphore.make(yield* positive("inFlight", options.inFlight ?? 4))
  const perCycle = batchSize * budget.maxTargets
  const epoch = crypto.randomUUID()
  const unaccepted = new Set<Deferred.Deferred<void>>()
  let seq = 0

  /** One bus call, retried until accepted; holds one permit until then. */
  const send = (events: ReadonlyArray<InvalidationEventV2>, items: ReadonlyArray<Outgoing>) =>
    bus.publish(events).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("publishing invalidations failed; retrying").pipe(
          Effect.annotateLogs({ events: events.length, error: error.message }),
          Effect.andThen(Metrics.publishFailed(events.length))
        )
      ),
      Effect.retry(retryForever),
      Effect.andThen(Metrics.published(events.length)),
      Effect.andThen(
        Effect.sync(() => {
          for (const item of items) {
            unaccepted.delete(item.accepted)
            Deferred.doneUnsafe(item.accepted, Effect.void)
          }
        })
      ),
      Effect.ensuring(Semaphore.release(permits, 1))
    )

  /** Takes what is queued (after the window), packs it into events with the next seqs, and starts their calls. */
  const cycle = Effect.gen(function* () {
    let items: ReadonlyArray<Outgoing> = yield* Queue.takeBetween(queue, 1, perCycle)
    if (windowMs > 0 && items.length < perCycle) {
      yield* Effect.sleep(windowMs)
      // Everything that arrived during the window (at most the queue's capacity); the permits pace the sending.
      items = [...items, ...(yield* Queue.clear(queue))]
    }
    const timestamp = yield* Clock.currentTimeMillis
    const groups = EventPacking.pack(items, budget)
    const events = groups.map((group): InvalidationEventV2 => ({
      version: 2,
      event_id: crypto.randomUUID(),
      source_instance: bus.instanceId,
      epoch,
      seq: ++seq,
      timestamp,
      targets: group.map((item) => item.target) as unknown as InvalidationEventV2["targets"]
    }))
    for (let i = 0; i < events.length; i += batchSize) {
      yield* Semaphore.take(permits, 1)
      yield* Effect.forkIn(send(events.slice(i, i + batchSize), groups.slice(i, i + batchSize).flat()), scope)
    }
  })
  yield* cycle.pipe(Effect.forever, Effect.forkScoped)

  // A graceful stop announces the epoch's last seq once everything issued was accepted (at most `awaitMs`), so
  // peers can tell a boot that ended from one that was lost, and a restart costs them no flush. Runs before the
  // sender fiber is interrupted (finalizers run in reverse order).
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      const drained = yield* drain.pipe(Effect.timeoutOption(awaitMs))
      if (drained._tag === "None") {
        return yield* Effect.logWarning("stopping with invalidations not yet accepted by the bus; peers will flush")
      }
      const final: InvalidationEventV2 = {
        version: 2,
        event_id: crypto.randomUUID(),
        source_instance: bus.instanceId,
        epoch,
        seq: ++seq,
        timestamp: yield* Clock.currentTimeMillis,
        targets: [],
        final: true
      }
      yield* bus.publish([final]).pipe(
        Effect.timeoutOption(awaitMs),
        Effect.catch((error) =>
          Effect.logWarning("could not announce the end of this publisher's epoch; peers will flush").pipe(
            Effect.annotateLogs({ error: error.message })
          )
        )
      )
    })
  )

  const drain = Effect.suspend(() => Effect.forEach([...unaccepted], Deferred.await, { discard: true }))

  const publish = (target: Target) =>
    Effect.suspend(() => {
      const accepted = Deferred.makeUnsafe<void>()
      unaccepted.add(accepted)
      return Queue.offer(queue, { target, size: EventPacking.sizeOf(target), accepted }).pipe(
        Effect.andThen(Deferred.await(accepted).pipe(Effect.timeoutOption(awaitMs))),
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.void
            : Effect.logWarning("the bus has not accepted an invalidation yet; still retrying").pipe(
                Effect.annotateLogs({ target: target.invalidation_type })
              )
        )
      )
    })

  return Publisher.of({
    instanceId: bus.instanceId,
    epoch,
    publish,
    drain,
    pending: Effect.sync(() => unaccepted.size)
  })
})

/** The publisher over the `InvalidationBus` in context. */
export const layer = (options: PublisherOptions = {}): Layer.Layer<Publisher, never, InvalidationBus> =>
  Layer.effect(Publisher, make(options))
