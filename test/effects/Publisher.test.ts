import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Publisher from "../../effects/Publisher.ts"
import { BusError, InvalidationBus } from "../../src/InvalidationBus.ts"
import type { InvalidationEvent, InvalidationEventV2, Target } from "../../src/InvalidationEvent.ts"

/** A bus that records every accepted batch; `down` makes it refuse, `gate` holds its next call until opened. */
const makeBus = Effect.gen(function* () {
  const batches = yield* Ref.make<ReadonlyArray<ReadonlyArray<InvalidationEvent>>>([])
  const calls = yield* Ref.make(0)
  const down = yield* Ref.make(false)
  const gate = yield* Ref.make<Deferred.Deferred<void> | undefined>(undefined)
  /** While set, every call waits for it (several calls held at once). */
  const latch = yield* Ref.make<Deferred.Deferred<void> | undefined>(undefined)
  const bus = InvalidationBus.of({
    instanceId: "me",
    queueCreated: false,
    heldAtMostMs: 30_000,
    publish: (events) =>
      Effect.gen(function* () {
        yield* Ref.update(calls, (n) => n + 1)
        const held = yield* Ref.getAndSet(gate, undefined)
        if (held !== undefined) yield* Deferred.await(held)
        const all = yield* Ref.get(latch)
        if (all !== undefined) yield* Deferred.await(all)
        if (yield* Ref.get(down)) return yield* new BusError({ operation: "publish", message: "down" })
        yield* Ref.update(batches, (all) => [...all, events])
      }),
    deliveries: Stream.empty,
    lastContact: Effect.succeed(undefined)
  })
  /** Holds the next publish call until the returned Deferred is completed. */
  const hold = Effect.flatMap(Deferred.make<void>(), (d) => Effect.as(Ref.set(gate, d), d))
  /** Holds every publish call until the returned Deferred is completed. */
  const holdAll = Effect.flatMap(Deferred.make<void>(), (d) => Effect.as(Ref.set(latch, d), d))
  const accepted = Effect.map(Ref.get(batches), (all) => all.flat() as ReadonlyArray<InvalidationEventV2>)
  return { bus, batches, calls, down, hold, holdAll, accepted }
})

const key = (k: string): Target => ({ invalidation_type: "key", key: k })

/** A publisher over `bus` (no coalescing window unless given), its sender fiber in the test's scope. */
const publisherOver = (bus: InvalidationBus["Service"], options: Publisher.PublisherOptions = {}) =>
  Publisher.make({ coalesceWindow: 0, ...options }).pipe(Effect.provideService(InvalidationBus, bus))

const keysOf = (event: InvalidationEventV2): Array<string> =>
  event.targets.map((t) => (t.invalidation_type === "key" ? t.key : "?"))

/** Lets every ready fiber run until it blocks. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow
})

const quiet = Effect.provide(Logger.layer([], { mergeWithExisting: false }))

describe("Publisher", () => {
  it.effect("gives events seq 1, 2, 3, … in publish order, as v2 events of this instance and its epoch", () =>
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
        events.map((e) => e.targets.map((t) => t.invalidation_type)),
        [["key"], ["tag"], ["pattern"]]
      )
      assert.isTrue(events.every((e) => e.version === 2 && e.source_instance === "me" && e.epoch === publisher.epoch))
      assert.strictEqual(new Set(events.map((e) => e.event_id)).size, 3)
    }).pipe(quiet)
  )

  it.effect("coalesces the targets issued within the window into one event, in issue order", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { coalesceWindow: "10 millis" })
      const writes = []
      for (const k of ["a", "b", "c"]) {
        writes.push(yield* Effect.forkChild(publisher.publish(key(k))))
        yield* settle
      }
      assert.strictEqual(yield* Ref.get(world.calls), 0, "nothing is sent before the window closes")
      yield* TestClock.adjust("10 millis")
      for (const write of writes) yield* Fiber.join(write)
      const events = yield* world.accepted
      assert.deepStrictEqual(events.map(keysOf), [["a", "b", "c"]])
      assert.strictEqual(events[0]!.seq, 1)
      // The next window starts with the next target.
      const later = yield* Effect.forkChild(publisher.publish(key("d")))
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(later)
      assert.deepStrictEqual(
        (yield* world.accepted).map((e) => [e.seq, ...keysOf(e)]),
        [
          [1, "a", "b", "c"],
          [2, "d"]
        ]
      )
    }).pipe(quiet)
  )

  it.effect("splits what was coalesced by maxTargetsPerEvent and maxEventBytes, seqs in order", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { coalesceWindow: "1 millis", maxTargetsPerEvent: 2 })
      const writes = []
      for (const k of ["a", "b", "c", "d", "e"]) writes.push(yield* Effect.forkChild(publisher.publish(key(k))))
      yield* settle
      yield* TestClock.adjust("1 millis")
      for (const write of writes) yield* Fiber.join(write)
      assert.deepStrictEqual(
        (yield* world.accepted).map((e) => [e.seq, ...keysOf(e)]),
        [
          [1, "a", "b"],
          [2, "c", "d"],
          [3, "e"]
        ]
      )
      assert.strictEqual(yield* Ref.get(world.calls), 1, "three events, one bus call")

      const bySize = yield* makeBus
      const small = yield* publisherOver(bySize.bus, { coalesceWindow: "1 millis", maxEventBytes: 600 })
      const more = []
      for (const c of ["x", "y", "z"]) more.push(yield* Effect.forkChild(small.publish(key(c.repeat(60)))))
      yield* settle
      yield* TestClock.adjust("1 millis")
      for (const write of more) yield* Fiber.join(write)
      // 512 bytes of envelope room + ~100 per target: one target per event under 600 bytes.
      assert.deepStrictEqual(
        (yield* bySize.accepted).map((e) => e.targets.length),
        [1, 1, 1]
      )
    }).pipe(quiet)
  )

  it.effect("keeps at most inFlight bus calls running; the others wait, and nothing is lost or renumbered", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { inFlight: 2, batchSize: 1, maxTargetsPerEvent: 1 })
      const latch = yield* world.holdAll
      const writes = []
      for (const k of ["a", "b", "c", "d", "e"]) {
        writes.push(yield* Effect.forkChild(publisher.publish(key(k))))
        yield* settle
      }
      assert.strictEqual(yield* Ref.get(world.calls), 2, "two calls in flight, the rest wait for a permit")
      yield* Deferred.succeed(latch, undefined)
      for (const write of writes) yield* Fiber.join(write)
      assert.strictEqual(yield* Ref.get(world.calls), 5)
      assert.deepStrictEqual(
        [...(yield* world.accepted)].map((e) => [e.seq, ...keysOf(e)]).sort((x, y) => Number(x[0]) - Number(y[0])),
        [
          [1, "a"],
          [2, "b"],
          [3, "c"],
          [4, "d"],
          [5, "e"]
        ]
      )
    }).pipe(quiet)
  )

  it.effect("a write waits for room when maxQueued targets are waiting, instead of growing the queue", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, {
        inFlight: 1,
        maxTargetsPerEvent: 1,
        batchSize: 1,
        maxQueued: 2,
        awaitMs: 100
      })
      const latch = yield* world.holdAll
      const writes = []
      // "a" is in flight (held); "b" is taken and waits for a permit; "c" and "d" fill the queue; "e" waits for room.
      for (const k of ["a", "b", "c", "d", "e"]) {
        writes.push(yield* Effect.forkChild(publisher.publish(key(k))))
        yield* settle
      }
      yield* TestClock.adjust("100 millis")
      yield* settle
      assert.deepStrictEqual(
        writes.map((w) => w.pollUnsafe() !== undefined),
        [true, true, true, true, false],
        "the queued writes returned at awaitMs; the one without room still waits"
      )
      yield* Deferred.succeed(latch, undefined)
      yield* Fiber.join(writes[4]!)
      yield* publisher.drain
      assert.deepStrictEqual(
        (yield* world.accepted).map((e) => keysOf(e)[0]),
        ["a", "b", "c", "d", "e"]
      )
    }).pipe(quiet)
  )

  it.effect("retries a failing bus until it accepts, dropping and reordering nothing", () =>
    Effect.gen(function* () {
      const world = yield* makeBus
      const publisher = yield* publisherOver(world.bus, { batchSize: 1, inFlight: 1 })
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
      assert.deepStrictEqual((yield* world.accepted).flatMap(keysOf), ["a", "b"])
    }).pipe(quiet)
  )
})
