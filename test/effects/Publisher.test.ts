import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Publisher from "../../effects/Publisher.ts"
import { BusError, InvalidationBus } from "../../src/InvalidationBus.ts"
import type { InvalidationEvent, Target } from "../../src/InvalidationEvent.ts"

/** A bus that records every accepted batch; `down` makes it refuse, `gate` holds its next call until opened. */
const makeBus = Effect.gen(function* () {
  const batches = yield* Ref.make<ReadonlyArray<ReadonlyArray<InvalidationEvent>>>([])
  const calls = yield* Ref.make(0)
  const down = yield* Ref.make(false)
  const gate = yield* Ref.make<Deferred.Deferred<void> | undefined>(undefined)
  const bus = InvalidationBus.of({
    instanceId: "me",
    queueCreated: false,
    publish: (events) =>
      Effect.gen(function* () {
        yield* Ref.update(calls, (n) => n + 1)
        const held = yield* Ref.getAndSet(gate, undefined)
        if (held !== undefined) yield* Deferred.await(held)
        if (yield* Ref.get(down)) return yield* new BusError({ operation: "publish", message: "down" })
        yield* Ref.update(batches, (all) => [...all, events])
      }),
    deliveries: Stream.empty,
    lastContact: Effect.succeed(undefined)
  })
  /** Holds the next publish call until the returned Deferred is completed. */
  const hold = Effect.flatMap(Deferred.make<void>(), (d) => Effect.as(Ref.set(gate, d), d))
  const accepted = Effect.map(Ref.get(batches), (all) => all.flat())
  return { bus, batches, calls, down, hold, accepted }
})

const key = (k: string): Target => ({ invalidation_type: "key", key: k })

/** A publisher over `bus`, its sender fiber in the test's scope; logs are dropped. */
const publisherOver = (bus: InvalidationBus["Service"], options: Publisher.PublisherOptions = {}) =>
  Publisher.make(options).pipe(Effect.provideService(InvalidationBus, bus))

/** Lets every ready fiber run until it blocks. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

const quiet = Effect.provide(Logger.layer([], { mergeWithExisting: false }))

describe("Publisher", () => {
  it.effect("gives events seq 1, 2, 3, … in publish order, as v1 events from this instance", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus)
      yield* publisher.publish(key("a"))
      yield* publisher.publish({ invalidation_type: "tag", tags: ["t"] })
      yield* publisher.publish({ invalidation_type: "pattern", pattern: "user:*" })
      const events = yield* world.accepted
      assert.deepStrictEqual(
        events.map((e) => e.seq),
        [1, 2, 3]
      )
      assert.deepStrictEqual(
        events.map((e) => e.invalidation_type),
        ["key", "tag", "pattern"]
      )
      assert.isTrue(events.every((e) => e.version === 1 && e.source_instance === "me"))
      assert.strictEqual(new Set(events.map((e) => e.event_id)).size, 3)
    }).pipe(quiet)
  )

  it.effect("sends what queued up in batches of at most batchSize, in order", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { batchSize: 2 })
      const gate = yield* world.hold
      const first = yield* Effect.forkChild(publisher.publish(key("k1")))
      yield* settle
      const rest = []
      for (const k of ["k2", "k3", "k4", "k5"]) {
        rest.push(yield* Effect.forkChild(publisher.publish(key(k))))
        yield* settle
      }
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      for (const fiber of rest) yield* Fiber.join(fiber)
      const batches = yield* Ref.get(world.batches)
      assert.deepStrictEqual(
        batches.map((batch) => batch.map((e) => e.seq)),
        [[1], [2, 3], [4, 5]]
      )
    }).pipe(quiet)
  )

  it.effect("retries a failing bus until it accepts, dropping and reordering nothing", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { batchSize: 1 })
      yield* Ref.set(world.down, true)
      const first = yield* Effect.forkChild(publisher.publish(key("a")))
      yield* settle
      const second = yield* Effect.forkChild(publisher.publish(key("b")))
      yield* settle
      yield* TestClock.adjust("200 millis")
      assert.isAbove(yield* Ref.get(world.calls), 1, "the send was retried")
      assert.isUndefined(first.pollUnsafe(), "publish waits while the bus refuses")
      assert.deepStrictEqual(yield* world.accepted, [])
      yield* Ref.set(world.down, false)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      assert.deepStrictEqual(
        (yield* world.accepted).map((e) => e.seq),
        [1, 2]
      )
    }).pipe(quiet)
  )

  it.effect(
    "publish returns after awaitMs when the bus never accepts, and the event is delivered once it recovers",
    () =>
      Effect.gen(function* () {
        const world = yield* makeBus
        const publisher = yield* publisherOver(world.bus, { awaitMs: 1000 })
        yield* Ref.set(world.down, true)
        const publishing = yield* Effect.forkChild(publisher.publish(key("a")))
        yield* settle
        yield* TestClock.adjust("999 millis")
        assert.isUndefined(publishing.pollUnsafe(), "still waiting before awaitMs")
        yield* TestClock.adjust("1 millis")
        yield* settle
        assert.isDefined(publishing.pollUnsafe(), "returned at awaitMs")
        yield* Fiber.join(publishing)
        assert.deepStrictEqual(yield* world.accepted, [])
        yield* Ref.set(world.down, false)
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(
          (yield* world.accepted).map((e) => e.seq),
          [1]
        )
      }).pipe(quiet)
  )

  it.effect("drain waits until everything queued so far was accepted", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { awaitMs: 100 })
      yield* publisher.drain // nothing queued: returns at once
      const gate = yield* world.hold
      const a = yield* Effect.forkChild(publisher.publish(key("a")))
      const b = yield* Effect.forkChild(publisher.publish(key("b")))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      const draining = yield* Effect.forkChild(publisher.drain)
      yield* settle
      assert.isUndefined(draining.pollUnsafe(), "drain waits for the held bus")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(draining)
      assert.deepStrictEqual(
        (yield* world.accepted).map((e) => e.seq),
        [1, 2]
      )
    }).pipe(quiet)
  )
})
