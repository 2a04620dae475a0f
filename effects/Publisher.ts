/**
 * Publishes this instance's invalidations to its peers: each write's target becomes a v1 event with the next
 * `seq`, sent in batches by one background fiber, in order. A write waits until its event was accepted by
 * the bus (at most `awaitMs`; past that it returns and the event keeps being retried in the background), so
 * when `invalidate` returns, the peers will get it. A failed send is retried with backoff until it succeeds;
 * nothing is dropped. Fills and warm-ups never come here.
 */
import { Clock, Context, Deferred, Effect, Layer, Queue, Schedule } from "effect"
import { InvalidationBus } from "../src/InvalidationBus.ts"
import type { InvalidationEvent, Target } from "../src/InvalidationEvent.ts"
import * as Metrics from "./SyncMetrics.ts"

/** The publishing side of sync. */
export class Publisher extends Context.Service<
  Publisher,
  {
    readonly instanceId: string
    /** Publishes `target` as the next event; waits for the bus to accept it, at most `awaitMs`. Never fails. */
    readonly publish: (target: Target) => Effect.Effect<void>
    /** Waits until every event queued so far has been accepted by the bus. */
    readonly drain: Effect.Effect<void>
  }
>()("embedded-cache/Publisher") {}

/** How patient to be. */
export interface PublisherOptions {
  /** Events per bus call; SNS takes at most 10. Default 10. */
  readonly batchSize?: number | undefined
  /** How long a write waits for its event to be accepted before returning. Default 5000 ms. */
  readonly awaitMs?: number | undefined
}

interface Outgoing {
  readonly event: InvalidationEvent
  readonly accepted: Deferred.Deferred<void>
}

/** Retries forever, backing off from 50 ms to at most 5 s between attempts. */
const retryForever = Schedule.min([Schedule.exponential("50 millis", 2), Schedule.spaced("5 seconds")])

/** Builds the publisher over the bus in context; its sender fiber lives in the scope. */
export const make = Effect.fnUntraced(function* (options: PublisherOptions = {}) {
  const bus = yield* InvalidationBus
  const queue = yield* Queue.unbounded<Outgoing>()
  const batchSize = options.batchSize ?? 10
  const awaitMs = options.awaitMs ?? 5000
  let seq = 0
  let last: Deferred.Deferred<void> | undefined

  const send = (batch: ReadonlyArray<Outgoing>) =>
    bus.publish(batch.map((o) => o.event)).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("publishing invalidations failed; retrying").pipe(
          Effect.annotateLogs({ events: batch.length, error: error.message }),
          Effect.andThen(Metrics.publishFailed(batch.length))
        )
      ),
      Effect.retry(retryForever),
      Effect.andThen(Metrics.published(batch.length)),
      Effect.andThen(Effect.forEach(batch, (o) => Deferred.succeed(o.accepted, undefined), { discard: true }))
    )

  yield* Queue.takeBetween(queue, 1, batchSize).pipe(Effect.flatMap(send), Effect.forever, Effect.forkScoped)

  const publish = (target: Target) =>
    Effect.flatMap(Clock.currentTimeMillis, (timestamp) => {
      const accepted = Deferred.makeUnsafe<void>()
      last = accepted
      const event = {
        version: 1,
        event_id: crypto.randomUUID(),
        source_instance: bus.instanceId,
        seq: ++seq,
        timestamp,
        ...target
      } as InvalidationEvent
      return Queue.offer(queue, { event, accepted }).pipe(
        Effect.andThen(Deferred.await(accepted)),
        Effect.timeoutOption(awaitMs),
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.void
            : Effect.logWarning("the bus has not accepted an invalidation yet; still retrying").pipe(
                Effect.annotateLogs({ seq: event.seq })
              )
        )
      )
    })

  return Publisher.of({
    instanceId: bus.instanceId,
    publish,
    drain: Effect.suspend(() => (last === undefined ? Effect.void : Deferred.await(last)))
  })
})

/** The publisher over the `InvalidationBus` in context. */
export const layer = (options: PublisherOptions = {}): Layer.Layer<Publisher, never, InvalidationBus> =>
  Layer.effect(Publisher, make(options))
