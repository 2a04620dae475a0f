/**
 * The contract every `InvalidationBus` adapter passes, run against SnsSqsBus (over fauxqs) and MemoryBus and
 * exported so users can check their own: `InvalidationBusSuite.suite("mine", (ids) => makeMine(ids), options)`.
 * `makeInstances` gives one bus per id, all on one fresh topic/hub, living as long as the scope. An instance's
 * queue keeps what is published after it was made until it is consumed (queue semantics), and an
 * unacknowledged delivery comes back within `redeliveryWithinMs`. The suite runs on the live clock and never
 * sleeps: it waits for deliveries with a deadline, and shows that something was *not* delivered by waiting for
 * a later sentinel that would have come after it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema, type Scope, Stream } from "effect"
import type { BusError, Delivery, InvalidationBus } from "../../src/InvalidationBus.ts"
import { InvalidationEvent, InvalidationEventJson } from "../../src/InvalidationEvent.ts"
import * as Poll from "../utils/Poll.ts"

/** The buses of instances `ids`, in that order, on a shared topic/hub of their own. */
export type MakeInstances<E> = (
  ids: ReadonlyArray<string>
) => Effect.Effect<ReadonlyArray<InvalidationBus["Service"]>, E, Scope.Scope>

/** What the suite may assume about the adapter's timing. */
export interface SuiteOptions {
  /** Upper bound on how long an unacknowledged delivery takes to be delivered again (visibility timeout + slack). */
  readonly redeliveryWithinMs: number
  /** Upper bound on publish → delivery. Default 10 000 ms. */
  readonly deliveryWithinMs?: number | undefined
}

/** One delivery as the suite's collector saw it. */
export interface Received {
  readonly delivery: Delivery
  /** The decoded event, or undefined when the body is not one. */
  readonly event: InvalidationEvent | undefined
  readonly at: number
  /** Set once the collector's ack of this delivery succeeded. */
  acked: boolean
}

const decodeEvent = Schema.decodeUnknownSync(InvalidationEventJson)
const makeEvent = Schema.decodeUnknownSync(InvalidationEvent)

let counter = 0
/** Ids no other test (or earlier run against a shared topic) uses: short, and valid as SQS queue-name parts. */
const freshIds = (count: number): Array<string> => {
  const run = `${Date.now().toString(36)}${(counter++).toString(36)}`
  return Array.from({ length: count }, (_, i) => `${run}-${String.fromCharCode(97 + i)}`)
}

/** `n` events of `source`, cycling through the three invalidation types, with seq from `firstSeq`. */
export const events = (source: string, n: number, firstSeq = 1): Array<InvalidationEvent> =>
  Array.from({ length: n }, (_, i) => {
    const common = {
      version: 1,
      event_id: crypto.randomUUID(),
      source_instance: source,
      seq: firstSeq + i,
      timestamp: Date.now()
    }
    switch (i % 3) {
      case 0:
        return makeEvent({ ...common, invalidation_type: "key", key: `user:${i}` })
      case 1:
        return makeEvent({ ...common, invalidation_type: "pattern", pattern: `orders:${i}:*` })
      default:
        return makeEvent({ ...common, invalidation_type: "tag", tags: [`tag-${i}`, "shared"] })
    }
  })

/**
 * Consumes `bus.deliveries` in the background for the rest of the scope, recording every delivery of every batch
 * (acknowledging a batch's deliveries together); acks those `shouldAck` accepts (all by default). An ack failure fails the next wait, naming it.
 */
export const collect = (bus: InvalidationBus["Service"], shouldAck: (r: Received) => boolean = () => true) =>
  Effect.gen(function* () {
    const received: Array<Received> = []
    const batchSizes: Array<number> = []
    const ackErrors: Array<BusError> = []
    const one = (delivery: Delivery) => {
      let event: InvalidationEvent | undefined
      try {
        event = decodeEvent(delivery.body)
      } catch {
        event = undefined
      }
      const r: Received = { delivery, event, at: Date.now(), acked: false }
      received.push(r)
      if (!shouldAck(r)) return Effect.void
      return delivery.ack.pipe(
        Effect.tap(() => Effect.sync(() => (r.acked = true))),
        Effect.catch((error) => Effect.sync(() => void ackErrors.push(error)))
      )
    }
    yield* bus.deliveries.pipe(
      Stream.runForEach((batch) => {
        batchSizes.push(batch.length)
        return Effect.forEach(batch, one, { concurrency: "unbounded", discard: true })
      }),
      Effect.forkScoped
    )
    const check = Effect.suspend(() =>
      ackErrors.length > 0 ? Effect.die(new Error(`ack failed: ${ackErrors[0]!.message}`)) : Effect.void
    )
    return {
      received,
      /** The size of every batch the stream handed out. */
      batchSizes,
      /** Deliveries of the event `eventId`, in arrival order. */
      of: (eventId: string) => received.filter((r) => r.event?.event_id === eventId),
      /** Waits until `condition` holds of what was received. */
      until: (condition: () => boolean, what: string, timeoutMs: number) =>
        Poll.until(Effect.andThen(check, Effect.sync(condition)), { timeoutMs, what, intervalMs: 2 })
    }
  })

/** Runs the contract against the buses `makeInstances` builds. */
export const suite = <E>(name: string, makeInstances: MakeInstances<E>, options: SuiteOptions) => {
  const deliveryMs = options.deliveryWithinMs ?? 10_000

  describe(`InvalidationBus contract: ${name}`, () => {
    it.live("an event published by one instance reaches every other instance, its body decoding to that event", () =>
      Effect.gen(function* () {
        const [a, b, c] = yield* makeInstances(freshIds(3))
        const [atB, atC] = [yield* collect(b!), yield* collect(c!)]
        const [event] = events(a!.instanceId, 1)
        const before = Date.now()
        yield* a!.publish([event!])
        yield* atB.until(() => atB.of(event!.event_id).length > 0, "B received the event", deliveryMs)
        yield* atC.until(() => atC.of(event!.event_id).length > 0, "C received the event", deliveryMs)
        for (const at of [atB, atC]) {
          const [first] = at.of(event!.event_id)
          assert.deepStrictEqual(decodeEvent(first!.delivery.body), event)
          assert.strictEqual(first!.delivery.receiveCount, 1)
        }
        // The bus answered B after the publish, so B's lastContact has caught up with it.
        const contact = yield* b!.lastContact
        assert.isDefined(contact)
        assert.isAtLeast(contact!, before - 1000)
      })
    )

    it.live("an instance does not receive its own events", () =>
      Effect.gen(function* () {
        const [a, b, c] = yield* makeInstances(freshIds(3))
        const [atA, atB] = [yield* collect(a!), yield* collect(b!)]
        const [own] = events(a!.instanceId, 1)
        const [sentinel] = events(c!.instanceId, 1)
        yield* a!.publish([own!])
        // The sentinel is published only after A's publish returned. A hub that delivers synchronously (MemoryBus,
        // fauxqs: SNS fans out to the queues inside Publish) would have put A's own event in A's queue before the
        // sentinel, and a queue read by one consumer hands them out in that order, so once A has the sentinel it
        // would have had its own event too. (Real SNS fans out asynchronously, so there this check can only pass
        // too easily, never fail wrongly.) B receiving the event shows it was published at all.
        yield* c!.publish([sentinel!])
        yield* atB.until(() => atB.of(own!.event_id).length > 0, "B received A's event", deliveryMs)
        yield* atA.until(() => atA.of(sentinel!.event_id).length > 0, "A received C's sentinel", deliveryMs)
        assert.deepStrictEqual(atA.of(own!.event_id), [], "A received its own event")
        assert.isTrue(atA.received.every((r) => r.event?.source_instance !== a!.instanceId))
      })
    )

    it.live("a batch of 25 events published in one call arrives complete, in any order", () =>
      Effect.gen(function* () {
        const [a, b] = yield* makeInstances(freshIds(2))
        const atB = yield* collect(b!)
        const batch = events(a!.instanceId, 25)
        yield* a!.publish(batch)
        const ids = new Set(batch.map((e) => e.event_id))
        const seen = () =>
          new Set(
            atB.received.flatMap((r) => (r.event !== undefined && ids.has(r.event.event_id) ? [r.event.event_id] : []))
          )
        yield* atB.until(() => seen().size === ids.size, "B received all 25 events", deliveryMs)
        for (const event of batch) {
          assert.deepStrictEqual(atB.of(event.event_id)[0]!.event, event)
        }
        // Deliveries come in receive batches: never empty, never more than an SQS receive holds.
        assert.isTrue(
          atB.batchSizes.every((n) => n >= 1 && n <= 10),
          `batch sizes ${atB.batchSizes.join(",")}`
        )
      })
    )

    it.live(
      "a delivery that is not acknowledged is delivered again with a higher receive count; an acknowledged one is not",
      () =>
        Effect.gen(function* () {
          const [a, b] = yield* makeInstances(freshIds(2))
          const [acked, unacked] = events(a!.instanceId, 2)
          const atB = yield* collect(b!, (r) => r.event?.event_id !== unacked!.event_id)
          yield* a!.publish([acked!])
          yield* atB.until(
            () => atB.of(acked!.event_id).some((r) => r.acked),
            "B received and acked the first event",
            deliveryMs
          )
          yield* a!.publish([unacked!])
          yield* atB.until(
            () => atB.of(unacked!.event_id).length >= 2,
            "B received the unacknowledged event a second time",
            deliveryMs + options.redeliveryWithinMs
          )
          const [first, second] = atB.of(unacked!.event_id)
          assert.strictEqual(first!.delivery.receiveCount, 1)
          assert.isAtLeast(second!.delivery.receiveCount, 2)
          assert.deepStrictEqual(second!.event, unacked)
          // The acknowledged event was received (and acked) before the other one was even published, so had its ack
          // not removed it, its visibility would have run out no later than the other's: it would have been
          // visible again before that redelivery. The sentinel, published after the redelivery, queues behind it.
          const [sentinel] = events(a!.instanceId, 1, 3)
          yield* a!.publish([sentinel!])
          yield* atB.until(() => atB.of(sentinel!.event_id).length > 0, "B received the sentinel", deliveryMs)
          assert.strictEqual(atB.of(acked!.event_id).length, 1, "the acknowledged event was delivered again")
        })
    )

    it.live("publishing an empty array succeeds and delivers nothing", () =>
      Effect.gen(function* () {
        const ids = freshIds(2)
        const [a, b] = yield* makeInstances(ids)
        const atB = yield* collect(b!)
        yield* a!.publish([])
        // Anything the empty publish had sent would be queued ahead of the sentinel.
        const [sentinel] = events(a!.instanceId, 1)
        yield* a!.publish([sentinel!])
        yield* atB.until(() => atB.of(sentinel!.event_id).length > 0, "B received the sentinel", deliveryMs)
        const others = atB.received.filter(
          (r) =>
            r.event === undefined || (ids.includes(r.event.source_instance) && r.event.event_id !== sentinel!.event_id)
        )
        assert.deepStrictEqual(
          others.map((r) => r.delivery.body),
          []
        )
      })
    )
  })
}
