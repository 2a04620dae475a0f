import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Cache } from "../../effects/Cache.ts"
import { SyncConsumer } from "../../effects/SyncConsumer.ts"
import * as MemoryBus from "../../layers/bus/MemoryBus.ts"
import * as MemoryStore from "../../layers/store/MemoryStore.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import * as FlakyStore from "../utils/FlakyStore.ts"
import * as Poll from "../utils/Poll.ts"
import * as World from "../utils/World.ts"

const Str = Schema.String
const fill = (key: string, value: string) =>
  Cache.use((cache) => cache.getOrLoad(key, Effect.succeed(value), { schema: Str }))
const has = (key: string) => Cache.use((cache) => Effect.map(cache.get(key, Str), Option.isSome))
const statsOf = SyncConsumer.use((sync) => sync.stats)

/** Waits (on the TestClock-free path: yielding) until `instance` no longer holds `key`. */
const dropped = (instance: World.Instance, key: string) =>
  Poll.until(
    Effect.map(World.on(instance, has(key)), (present) => !present),
    {
      timeoutMs: 2000,
      what: `${key} is dropped`,
      intervalMs: 0
    }
  )

/** A message body as a foreign publisher might send it: valid unless `fields` break it. */
const event = (fields: Record<string, unknown>) =>
  JSON.stringify({
    version: 1,
    event_id: crypto.randomUUID(),
    source_instance: "other",
    seq: 1,
    timestamp: 0,
    invalidation_type: "key",
    key: "k",
    ...fields
  })

describe("sync over the memory bus", () => {
  it.live("a write on one instance drops the key on the others, and fills publish nothing", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a", "b", "c"], mode: "auto" })
      const [a, b, c] = yield* World.instances(hub, ["a", "b", "c"])
      for (const instance of [a!, b!, c!]) yield* World.on(instance, fill("user:1", "old"))
      yield* World.on(
        a!,
        Cache.use((cache) => cache.set("user:1", "new", { schema: Str }))
      )
      yield* dropped(b!, "user:1")
      yield* dropped(c!, "user:1")
      assert.isTrue(yield* World.on(a!, has("user:1")))
      // Three fills, one write: exactly one event reached each peer.
      assert.strictEqual((yield* World.on(b!, statsOf)).received, 1)
      assert.strictEqual((yield* World.on(c!, statsOf)).received, 1)
    }).pipe(Effect.scoped)
  )

  it.live("pattern and tag invalidations are applied by every peer with their own exact counts", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a", "b"], mode: "auto" })
      const [a, b] = yield* World.instances(hub, ["a", "b"])
      yield* World.on(
        b!,
        Cache.use((cache) =>
          Effect.gen(function* () {
            yield* cache.getOrLoad("user:1", Effect.succeed("1"), { schema: Str })
            yield* cache.getOrLoad("user:2", Effect.succeed("2"), { schema: Str })
            yield* cache.getOrLoad("order:1", Effect.succeed("o"), { schema: Str, tags: ["orders"] })
            yield* cache.getOrLoad("keep", Effect.succeed("k"), { schema: Str })
          })
        )
      )
      const byPattern = yield* World.on(
        a!,
        Cache.use((cache) => cache.invalidate({ invalidation_type: "pattern", pattern: "user:*" }))
      )
      assert.deepStrictEqual(byPattern, { _tag: "Deleted", removed: 0 })
      yield* World.on(
        a!,
        Cache.use((cache) => cache.invalidate({ invalidation_type: "tag", tags: ["orders"] }))
      )
      yield* dropped(b!, "user:1")
      yield* dropped(b!, "user:2")
      yield* dropped(b!, "order:1")
      assert.isTrue(yield* World.on(b!, has("keep")))
    }).pipe(Effect.scoped)
  )

  it.live("a pattern matching everything is refused without all: true", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a"], mode: "auto" })
      const [a] = yield* World.instances(hub, ["a"])
      const error = yield* World.on(
        a!,
        Cache.use((cache) => Effect.flip(cache.invalidate({ invalidation_type: "pattern", pattern: "*" })))
      )
      assert.strictEqual(error._tag, "InvalidPatternError")
      const all = yield* World.on(
        a!,
        Cache.use((cache) => cache.invalidate({ invalidation_type: "pattern", pattern: "*", all: true }))
      )
      assert.strictEqual(all._tag, "Deleted")
    }).pipe(Effect.scoped)
  )

  it.live("applies a duplicated event once, skips its own events, and leaves malformed ones unacknowledged", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a", "b"], mode: "auto" })
      const [, b] = yield* World.instances(hub, ["a", "b"])
      const twice = event({ seq: 1 })
      yield* hub.send("b", twice)
      yield* hub.send("b", twice)
      yield* hub.send("b", event({ source_instance: "b", seq: 1 }))
      yield* hub.send("b", "{ not json")
      yield* hub.send("b", event({ seq: 2, invalidation_type: "colour" }))
      yield* hub.send("b", event({ seq: 2, key: "after-the-bad-ones" }))
      yield* Poll.until(
        Effect.map(World.on(b!, statsOf), (s) => s.received === 6),
        {
          timeoutMs: 2000,
          what: "six deliveries",
          intervalMs: 0
        }
      )
      const stats = yield* World.on(b!, statsOf)
      assert.deepStrictEqual(
        { applied: stats.applied, duplicates: stats.duplicates, own: stats.own, malformed: stats.malformed },
        { applied: 2, duplicates: 1, own: 1, malformed: 2 }
      )
      assert.strictEqual(hub.unacked("b"), 2)
    }).pipe(Effect.scoped)
  )
})

/** A v2 event of the publisher "other" invalidating `keys`. */
const v2 = (seq: number, keys: ReadonlyArray<string>) =>
  JSON.stringify({
    version: 2,
    event_id: `e-${seq}`,
    source_instance: "other",
    epoch: "boot-1",
    seq,
    timestamp: 0,
    targets: keys.map((key) => ({ invalidation_type: "key", key }))
  })

describe("receive batches", () => {
  it.live("applies a batch's events together, a duplicate within the batch once, and acks only after applying", () =>
    Effect.gen(function* () {
      const acked: Array<boolean> = []
      let b: World.Instance | undefined
      // At each acknowledgement, the batch's keys must already be gone from b.
      const hub = yield* MemoryBus.makeHub({
        instances: ["a", "b"],
        mode: "manual",
        onAck: (id) =>
          id === "b" && b !== undefined
            ? Effect.flatMap(
                Effect.orDie(Effect.all([World.on(b, has("k1")), World.on(b, has("k2")), World.on(b, has("k3"))])),
                (present) => Effect.sync(() => void acked.push(present.every((p) => !p)))
              )
            : Effect.void
      })
      const [, built] = yield* World.instances(hub, ["a", "b"])
      b = built
      for (const key of ["k1", "k2", "k3"]) yield* World.on(b!, fill(key, "v"))
      yield* hub.send("b", v2(2, ["k2", "k3"]))
      yield* hub.send("b", v2(1, ["k1"]))
      yield* hub.duplicate("b", 1)
      yield* hub.deliverAll("b", [0, 1, 2])
      yield* Poll.until(
        Effect.sync(() => acked.length === 3),
        { timeoutMs: 2000, what: "three acknowledgements", intervalMs: 0 }
      )
      assert.deepStrictEqual(acked, [true, true, true])
      const stats = yield* World.on(b!, statsOf)
      assert.deepStrictEqual(
        { applied: stats.applied, duplicates: stats.duplicates, flushes: stats.flushes },
        {
          applied: 2,
          duplicates: 1,
          flushes: 0
        }
      )
    }).pipe(Effect.scoped)
  )
})

describe("continuity", () => {
  const sync = { gapTimeout: "10 seconds", silenceBound: "30 seconds", checkInterval: "1 second" } as const

  it.effect("flushes once a lost event's seq gap outlives the gap timeout", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a", "b"], mode: "manual" })
      // One event per write, so that one of them can be lost on its own.
      const publisher = { awaitMs: 1000, coalesceWindow: 0, maxTargetsPerEvent: 1 }
      const [a, b] = yield* World.instances(hub, ["a", "b"], { sync, publisher })
      yield* World.on(b!, fill("stale", "v1"))
      for (const key of ["x", "stale", "y"]) {
        yield* World.on(a!, Cache.use((cache) => cache.delete(key)).pipe(Effect.forkChild))
      }
      yield* Poll.until(
        Effect.sync(() => hub.held("b").length === 3),
        {
          timeoutMs: 2000,
          what: "3 held",
          intervalMs: 0
        }
      )
      yield* hub.deliver("b", 0)
      yield* hub.drop("b", 0) // the invalidation of "stale" is lost
      yield* hub.deliver("b", 0)
      yield* Poll.until(
        Effect.map(World.on(b!, statsOf), (s) => s.applied === 2),
        {
          timeoutMs: 2000,
          what: "2 applied",
          intervalMs: 0
        }
      )
      assert.isTrue(yield* World.on(b!, has("stale")))
      yield* TestClock.adjust("9 seconds")
      assert.isTrue(yield* World.on(b!, has("stale")))
      yield* TestClock.adjust("2 seconds")
      assert.isFalse(yield* World.on(b!, has("stale")))
      assert.strictEqual((yield* World.on(b!, statsOf)).flushes, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("flushes when the bus stays silent longer than the bound", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a", "b"], mode: "auto" })
      const [, b] = yield* World.instances(hub, ["a", "b"], { sync })
      yield* World.on(b!, fill("k", "v"))
      yield* hub.setConnected("b", false)
      yield* TestClock.adjust("30 seconds")
      assert.isTrue(yield* World.on(b!, has("k")))
      yield* TestClock.adjust("2 seconds")
      assert.isFalse(yield* World.on(b!, has("k")))
      assert.strictEqual((yield* World.on(b!, statsOf)).flushes, 1)
    }).pipe(Effect.scoped)
  )

  it.effect("flushes data kept from an earlier run when the queue is new", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a"], mode: "auto" })
      const kept = yield* MemoryStore.make
      yield* kept.set("from-last-run", '"v"')
      const a = yield* Layer.build(
        World.instanceLayer(hub, "a", { queueCreated: true, store: Layer.succeed(CacheStore, kept) })
      )
      assert.isFalse(yield* World.on(a, has("from-last-run")))
      assert.strictEqual((yield* World.on(a, statsOf)).flushes, 1)
    }).pipe(Effect.scoped)
  )

  it.effect(
    "leaves an event the store could not apply unacknowledged, its key missing, and applies it on redelivery",
    () =>
      Effect.gen(function* () {
        const hub = yield* MemoryBus.makeHub({ instances: ["a", "b"], mode: "auto", visibilityTimeoutMs: 30_000 })
        const flaky = yield* Layer.build(FlakyStore.layer(MemoryStore.layer))
        const control = Context.get(flaky, FlakyStore.FlakyControl)
        const store = Context.get(flaky, CacheStore)
        const a = yield* Layer.build(World.instanceLayer(hub, "a", { sync }))
        const b = yield* Layer.build(World.instanceLayer(hub, "b", { sync, store: Layer.succeedContext(flaky) }))
        yield* World.on(b, fill("user:1", "old"))
        yield* control.setDown(true)
        yield* World.on(
          a,
          Cache.use((cache) => cache.delete("user:1"))
        )
        yield* Poll.until(
          Effect.map(World.on(b, statsOf), (s) => s.deferred === 1),
          { timeoutMs: 2000, what: "b deferred the event", intervalMs: 0 }
        )
        assert.strictEqual(hub.unacked("b"), 1, "not acknowledged: the queue will deliver it again")
        assert.strictEqual((yield* World.on(b, statsOf)).applied, 0)
        yield* control.setDown(false)
        assert.isFalse(yield* World.on(b, has("user:1")), "its key misses while the invalidation is pending")
        yield* TestClock.adjust("31 seconds")
        yield* Poll.until(
          Effect.map(World.on(b, statsOf), (s) => s.applied === 1),
          { timeoutMs: 2000, what: "the redelivery was applied", intervalMs: 0 }
        )
        assert.strictEqual(hub.unacked("b"), 0)
        assert.isFalse(yield* store.exists("user:1"))
        assert.strictEqual((yield* World.on(b, statsOf)).flushes, 0)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a rolling restart of three instances, each stopping gracefully and keeping its store, flushes nobody",
    () =>
      Effect.gen(function* () {
        const ids = ["a", "b", "c"] as const
        const hub = yield* MemoryBus.makeHub({ instances: ids, mode: "auto" })
        // Each instance's store outlives its process, as a persisted data dir does.
        const stores = yield* Effect.forEach(ids, () => MemoryStore.make)
        const start = (i: number) =>
          Effect.gen(function* () {
            const scope = yield* Scope.make()
            const instance = yield* Layer.build(
              World.instanceLayer(hub, ids[i]!, { sync, store: Layer.succeed(CacheStore, stores[i]!) })
            ).pipe(Scope.provide(scope))
            return { scope, instance }
          })
        const running = yield* Effect.forEach([0, 1, 2], start)
        /** Every instance caches `key`, then instance `i` writes it: every other one must drop it. */
        const crossCheck = (i: number, key: string) =>
          Effect.gen(function* () {
            for (const { instance } of running) yield* World.on(instance, fill(key, "old"))
            yield* World.on(
              running[i]!.instance,
              Cache.use((cache) => cache.set(key, "new", { schema: Str }))
            )
            for (let j = 0; j < running.length; j++) if (j !== i) yield* dropped(running[j]!.instance, key)
          })
        for (let round = 0; round < 2; round++) for (let i = 0; i < 3; i++) yield* crossCheck(i, `k:${round}:${i}`)
        for (let i = 0; i < 3; i++) {
          yield* Scope.close(running[i]!.scope, Exit.void) // graceful: the publisher announces its last seq
          running[i] = yield* start(i)
          yield* crossCheck(i, `after-restart:${i}`)
          yield* crossCheck((i + 1) % 3, `peer-after-restart:${i}`)
        }
        yield* TestClock.adjust("30 seconds") // well past the gap timeout
        for (const { instance } of running) {
          assert.strictEqual((yield* World.on(instance, statsOf)).flushes, 0)
        }
        for (const { scope } of running) yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.scoped)
  )

  it.effect(
    "a restart over kept data holds its reads until caught up, and serves once a silent bus made it flush",
    () =>
      Effect.gen(function* () {
        const hub = yield* MemoryBus.makeHub({ instances: ["a"], mode: "auto" })
        const kept = yield* MemoryStore.make
        yield* kept.set("from-last-run", '"v"')
        yield* hub.setConnected("a", false)
        const a = yield* Layer.build(World.instanceLayer(hub, "a", { sync, store: Layer.succeed(CacheStore, kept) }))
        const caughtUp = World.on(
          a,
          SyncConsumer.use((consumer) => consumer.caughtUp)
        )
        assert.isFalse(yield* caughtUp)
        assert.isFalse(yield* World.on(a, has("from-last-run")), "kept data is not served while catching up")
        yield* TestClock.adjust("32 seconds") // past the silence bound: the kept data is flushed
        assert.strictEqual((yield* World.on(a, statsOf)).flushes, 1)
        assert.isTrue(yield* caughtUp)
        yield* World.on(a, fill("new", "loaded"))
        assert.isTrue(yield* World.on(a, has("new")), "reads are served again")
      }).pipe(Effect.scoped)
  )
})
