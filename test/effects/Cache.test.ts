import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Schedule, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "../../effects/Cache.ts"
import * as MemoryStore from "../../layers/store/MemoryStore.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import * as DataSource from "../../src/DataSource.ts"
import * as FlakyStore from "../utils/FlakyStore.ts"
import * as Loaders from "../utils/Loaders.ts"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
const ada = { id: 1, name: "ada" }

/** Lets every fiber that can run, run (the clock is a TestClock: nothing sleeps). */
const settle = Effect.yieldNow.pipe(Effect.repeat({ times: 50 }))

/** Yields until `n` callers have joined a load in flight. */
const awaitJoiners = (cache: Cache.Cache["Service"], n: number) =>
  cache.stats.pipe(
    Effect.repeat({ until: (stats) => stats.sharedLoads >= n, schedule: Schedule.recurs(1000) }),
    Effect.asVoid
  )

const onMemory = Cache.layer().pipe(Layer.provideMerge(MemoryStore.layer))
const provideFresh = <A, E>(effect: Effect.Effect<A, E, Cache.Cache | CacheStore>) =>
  Effect.provide(effect, Layer.fresh(onMemory))

/** A memory store whose reads answer on a later step, as a real store's do (so callers can arrive meanwhile). */
const asyncReads = Layer.effect(
  CacheStore,
  Effect.map(MemoryStore.make, (store) =>
    CacheStore.of({ ...store, get: (key) => Effect.andThen(Effect.yieldNow, store.get(key)) })
  )
)

describe("Cache.getOrLoad", () => {
  it.effect("a write built before a load starts fences that load when it runs: a later caller does not join it", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const write = cache.set("user:1", { id: 1, name: "grace" }, { schema: User })
      const loader = yield* Loaders.gated(ada)
      const first = yield* Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      yield* Deferred.await(loader.started)
      yield* write
      const later = yield* cache.getOrLoad("user:1", loader.load, { schema: User })
      assert.deepStrictEqual(later, { id: 1, name: "grace" }, "the write's value, not the older load's")
      yield* loader.open
      yield* Fiber.join(first)
      assert.strictEqual(yield* (yield* CacheStore).get("user:1"), JSON.stringify({ id: 1, name: "grace" }))
    }).pipe(provideFresh)
  )

  it.effect("loads a miss once, fills it, and answers later calls from the store", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const loader = Loaders.counting(ada)
      assert.deepStrictEqual(yield* cache.getOrLoad("user:1", loader.load, { schema: User }), ada)
      assert.deepStrictEqual(yield* cache.getOrLoad("user:1", loader.load, { schema: User }), ada)
      assert.strictEqual(loader.runs(), 1)
      assert.strictEqual(yield* (yield* CacheStore).get("user:1"), JSON.stringify(ada))
      const stats = yield* cache.stats
      assert.strictEqual(stats.hits, 1)
      assert.strictEqual(stats.misses, 1)
      assert.strictEqual(stats.fills, 1)
    }).pipe(provideFresh)
  )

  it.effect("runs one load for concurrent callers of a key, and all of them get its value", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const loader = yield* Loaders.gated(ada)
      const callers = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      )
      yield* Deferred.await(loader.started)
      yield* loader.open
      for (const caller of callers) assert.deepStrictEqual(yield* Fiber.join(caller), ada)
      assert.strictEqual(loader.runs(), 1)
      assert.strictEqual((yield* cache.stats).sharedLoads, 19)
    }).pipe(provideFresh)
  )

  it.effect("lets a caller of a key whose load is in flight join it without a store round trip", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const control = yield* FlakyStore.FlakyControl
      const loader = yield* Loaders.gated(ada)
      const leader = yield* Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      yield* Deferred.await(loader.started)
      const calls = yield* control.calls
      const joiners = yield* Effect.forEach(Array.from({ length: 10 }), () =>
        Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      )
      yield* awaitJoiners(cache, 10)
      assert.strictEqual(yield* control.calls, calls, "the joiners did not read the store")
      yield* loader.open
      for (const fiber of [leader, ...joiners]) assert.deepStrictEqual(yield* Fiber.join(fiber), ada)
      assert.strictEqual(loader.runs(), 1)
      const stats = yield* cache.stats
      assert.strictEqual(stats.misses, 11)
    }).pipe(Effect.provide(Cache.layer().pipe(Layer.provideMerge(FlakyStore.layer(MemoryStore.layer)), Layer.fresh)))
  )

  it.effect(
    "lets a pile-up on a cold key read the store once: callers arriving during the first read wait for it",
    () =>
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const control = yield* FlakyStore.FlakyControl
        const loader = yield* Loaders.gated(ada)
        const calls = yield* control.calls
        const callers = yield* Effect.forkChild(
          Effect.forEach(Array.from({ length: 100 }), () => cache.getOrLoad("user:1", loader.load, { schema: User }), {
            concurrency: "unbounded"
          })
        )
        yield* Deferred.await(loader.started)
        yield* awaitJoiners(cache, 99)
        yield* loader.open
        const values = yield* Fiber.join(callers)
        assert.deepStrictEqual(
          values,
          Array.from({ length: 100 }, () => ada)
        )
        assert.strictEqual(loader.runs(), 1)
        assert.strictEqual((yield* control.calls) - calls, 3, "one read, one lease, one fill")
      }).pipe(Effect.provide(Cache.layer().pipe(Layer.provideMerge(FlakyStore.layer(asyncReads)), Layer.fresh)))
  )

  it.effect("gives a caller joining another caller's load the value decoded with its own schema", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const AsText = Schema.Struct({ at: Schema.String })
      const AsDate = Schema.Struct({ at: Schema.DateFromString })
      const loader = yield* Loaders.gated({ at: "2026-12-02T00:00:00.000Z" })
      const leader = yield* Effect.forkChild(cache.getOrLoad("event:1", loader.load, { schema: AsText }))
      yield* Deferred.await(loader.started)
      const own = Loaders.counting({ at: new Date(0) })
      const joiner = yield* Effect.forkChild(cache.getOrLoad("event:1", own.load, { schema: AsDate }))
      yield* awaitJoiners(cache, 1)
      yield* loader.open
      assert.deepStrictEqual(yield* Fiber.join(leader), { at: "2026-12-02T00:00:00.000Z" })
      const joined = yield* Fiber.join(joiner)
      assert.instanceOf(joined.at, Date, "decoded with the joiner's schema, not the leader's value cast")
      assert.strictEqual(joined.at.toISOString(), "2026-12-02T00:00:00.000Z")
      assert.strictEqual(own.runs(), 0, "the joiner shared the load")
      assert.strictEqual((yield* cache.stats).sharedLoads, 1)
    }).pipe(provideFresh)
  )

  it.effect("lets a joiner whose schema cannot decode the shared value load for itself", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const loader = yield* Loaders.gated({ id: 1, name: "ada" })
      const leader = yield* Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      yield* Deferred.await(loader.started)
      const Other = Schema.Struct({ sku: Schema.String })
      const own = Loaders.counting({ sku: "x-1" })
      const joiner = yield* Effect.forkChild(cache.getOrLoad("user:1", own.load, { schema: Other }))
      yield* awaitJoiners(cache, 1)
      yield* loader.open
      assert.deepStrictEqual(yield* Fiber.join(leader), ada)
      assert.deepStrictEqual(yield* Fiber.join(joiner), { sku: "x-1" })
      assert.strictEqual(own.runs(), 1)
    }).pipe(provideFresh)
  )

  it.effect("fences a load that raced a delete, so the pre-delete value is not written back", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const stale = yield* Loaders.gated({ id: 1, name: "before the delete" })
      const early = yield* Effect.forkChild(cache.getOrLoad("user:1", stale.load, { schema: User }))
      yield* Deferred.await(stale.started)
      assert.deepStrictEqual(yield* cache.delete("user:1"), { _tag: "Deleted", removed: 0 })
      // A caller after the delete must not join the fenced load: it starts its own.
      const fresh = Loaders.counting(ada)
      assert.deepStrictEqual(yield* cache.getOrLoad("user:1", fresh.load, { schema: User }), ada)
      yield* stale.open
      assert.deepStrictEqual(yield* Fiber.join(early), { id: 1, name: "before the delete" })
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
      assert.strictEqual(fresh.runs(), 1)
      assert.strictEqual((yield* cache.stats).fencedFills, 1)
    }).pipe(provideFresh)
  )

  it.effect("keeps a value set during a load instead of the load's older result", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const stale = yield* Loaders.gated({ id: 1, name: "old" })
      const load = yield* Effect.forkChild(cache.getOrLoad("user:1", stale.load, { schema: User }))
      yield* Deferred.await(stale.started)
      assert.strictEqual((yield* cache.set("user:1", ada, { schema: User }))._tag, "Written")
      yield* stale.open
      yield* Fiber.join(load)
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
    }).pipe(provideFresh)
  )

  it.effect("fails every caller with the loader's error, caches nothing, and loads again next time", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const failing = Effect.fail("source down" as const)
      const exit = yield* Effect.exit(cache.getOrLoad("user:1", failing, { schema: User }))
      assert.deepStrictEqual(exit, Exit.fail("source down"))
      const loader = Loaders.counting(ada)
      assert.deepStrictEqual(yield* cache.getOrLoad("user:1", loader.load, { schema: User }), ada)
      assert.strictEqual(loader.runs(), 1)
      assert.strictEqual((yield* cache.stats).loadFailures, 1)
    }).pipe(provideFresh)
  )

  it.effect("lets the shared load finish for the others when one caller is interrupted", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const loader = yield* Loaders.gated(ada)
      const first = yield* Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      yield* Deferred.await(loader.started)
      const second = yield* Effect.forkChild(cache.getOrLoad("user:1", loader.load, { schema: User }))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(first)
      yield* loader.open
      assert.deepStrictEqual(yield* Fiber.join(second), ada)
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
      assert.strictEqual(loader.runs(), 1)
    }).pipe(provideFresh)
  )

  it.effect("treats an entry that no longer decodes as a miss: deleted, counted, reloaded", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("user:1", "not a user", { schema: Schema.String })
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
      assert.isFalse(yield* cache.exists("user:1"))
      yield* cache.set("user:2", "not a user", { schema: Schema.String })
      assert.deepStrictEqual(yield* cache.getOrLoad("user:2", Effect.succeed(ada), { schema: User }), ada)
      assert.strictEqual((yield* cache.stats).decodeFailures, 2)
    }).pipe(provideFresh)
  )

  it.effect("applies the TTL of the call, then the default, and the entry expires on the clock", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.getOrLoad("a", Effect.succeed(1), { schema: Schema.Number, ttl: "1 minute" })
      yield* cache.getOrLoad("b", Effect.succeed(2), { schema: Schema.Number })
      assert.strictEqual(yield* cache.ttl("a"), 60_000)
      assert.strictEqual(yield* cache.ttl("b"), 3_600_000)
      yield* TestClock.adjust("1 minute")
      assert.isFalse(yield* cache.exists("a"))
      assert.isTrue(yield* cache.exists("b"))
    }).pipe(
      Effect.provide(Cache.layer({ defaultTtl: "1 hour" }).pipe(Layer.provideMerge(MemoryStore.layer), Layer.fresh))
    )
  )

  it.effect("refuses an invalid key with a typed error before touching the store", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      for (const key of ["", "a\nb", "x".repeat(513), "é".repeat(257)]) {
        const error = yield* Effect.flip(cache.getOrLoad(key, Effect.succeed(ada), { schema: User }))
        assert.strictEqual(error._tag, "InvalidKeyError")
      }
      assert.deepStrictEqual(yield* cache.get("k".repeat(512), User), Option.none())
    }).pipe(provideFresh)
  )
})

describe("Cache.getMany", () => {
  it.effect("answers hits from one MGET and loads only the misses, in one batch, filling them", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("n:1", 1, { schema: Schema.Number })
      const batches: Array<ReadonlyArray<string>> = []
      const source = DataSource.make({
        load: () => Effect.die("load is not used by getMany"),
        loadMany: (keys) =>
          Effect.sync(() => {
            batches.push(keys)
            return new Map(keys.filter((k) => k !== "n:4").map((k) => [k, Number(k.slice(2))]))
          })
      })
      const found = yield* cache
        .getMany(["n:1", "n:2", "n:3", "n:4", "n:2"], { schema: Schema.Number })
        .pipe(Effect.provideService(DataSource.DataSource, source))
      assert.deepStrictEqual(
        [...found],
        [
          ["n:1", 1],
          ["n:2", 2],
          ["n:3", 3]
        ]
      )
      assert.deepStrictEqual(batches, [["n:2", "n:3", "n:4"]])
      assert.deepStrictEqual(yield* cache.get("n:3", Schema.Number), Option.some(3))
      assert.isFalse(yield* cache.exists("n:4"))
    }).pipe(provideFresh)
  )
})

describe("Cache degradation", () => {
  const flaky = Layer.fresh(
    Cache.layer({ failureThreshold: 3, resetAfter: "1 second" }).pipe(
      Layer.provideMerge(FlakyStore.layer(MemoryStore.layer))
    )
  )

  it.effect("serves getOrLoad from the loader with no error while the store is down", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const control = yield* FlakyStore.FlakyControl
      yield* control.setDown(true)
      for (let i = 0; i < 10; i++) {
        assert.deepStrictEqual(yield* cache.getOrLoad("user:1", Effect.succeed(ada), { schema: User }), ada)
      }
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
      const stats = yield* cache.stats
      assert.strictEqual(stats.breaker, "open")
      assert.isTrue(stats.degradedReads >= 10)
    }).pipe(Effect.provide(flaky))
  )

  it.effect("fails writes soft with a typed outcome and stops reading a dead store once the breaker opens", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const control = yield* FlakyStore.FlakyControl
      yield* control.setDown(true)
      const outcome = yield* cache.set("k", 1, { schema: Schema.Number })
      assert.strictEqual(outcome._tag, "NotWritten")
      assert.strictEqual((yield* cache.delete("k"))._tag, "Pending")
      // A read of a key whose delete is pending misses without the store; a read of another key reaches it.
      yield* cache.get("other", Schema.Number)
      // The pending delete's retry tries once at once, then backs off on the (test) clock.
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      const refusedWhenOpen = yield* control.refused
      assert.strictEqual((yield* cache.stats).breaker, "open")
      for (let i = 0; i < 100; i++) yield* cache.get("other", Schema.Number)
      assert.strictEqual(yield* control.refused, refusedWhenOpen)
      assert.strictEqual((yield* cache.stats).failedWrites, 2)
    }).pipe(Effect.provide(flaky))
  )

  it.effect(
    "retries a delete the store could not apply until it is applied, and reads miss meanwhile, breaker or not",
    () =>
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const control = yield* FlakyStore.FlakyControl
        const store = yield* CacheStore
        yield* cache.set("user:1", { id: 1, name: "old" }, { schema: User })
        yield* control.setDown(true)
        assert.strictEqual((yield* cache.delete("user:1"))._tag, "Pending")
        yield* settle // the retry's first attempt fails too, and it backs off on the clock
        yield* control.setDown(false)
        // One failure: the breaker never opened, and the store (back already) still holds the old value.
        assert.strictEqual((yield* cache.stats).breaker, "closed")
        assert.isTrue(yield* store.exists("user:1"))
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
        assert.strictEqual((yield* cache.readEntry("user:1"))._tag, "Unavailable")
        const fresh = Loaders.counting({ id: 1, name: "new" })
        assert.deepStrictEqual(yield* cache.getOrLoad("user:1", fresh.load, { schema: User }), { id: 1, name: "new" })
        assert.strictEqual((yield* cache.stats).pendingInvalidations, 1)
        // The retry backs off on the clock, then applies the delete.
        yield* TestClock.adjust("100 millis")
        yield* settle
        assert.strictEqual((yield* cache.stats).pendingInvalidations, 0)
        assert.isFalse(yield* store.exists("user:1"))
        assert.deepStrictEqual(
          yield* cache.getOrLoad("user:1", fresh.load, { schema: User }),
          { id: 1, name: "new" },
          "loaded again: the key is cached normally once the delete is applied"
        )
        assert.isTrue(yield* store.exists("user:1"))
      }).pipe(Effect.provide(flaky))
  )

  it.effect("keeps retrying while the store keeps refusing, and a successful write of the key settles it", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const control = yield* FlakyStore.FlakyControl
      yield* control.setDown(true)
      assert.strictEqual((yield* cache.delete("a"))._tag, "Pending")
      assert.strictEqual((yield* cache.delete("b"))._tag, "Pending")
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* cache.stats).pendingInvalidations, 2, "still pending while the store refuses")
      yield* control.setDown(false)
      yield* cache.set("a", 2, { schema: Schema.Number })
      assert.strictEqual((yield* cache.stats).pendingInvalidations, 1, "a write that reached the store settles its key")
      assert.deepStrictEqual(yield* cache.get("a", Schema.Number), Option.some(2))
      yield* TestClock.adjust("10 seconds")
      yield* settle
      assert.strictEqual((yield* cache.stats).pendingInvalidations, 0)
    }).pipe(Effect.provide(flaky))
  )

  it.effect("invalidates keys whose writes failed before serving reads again after recovery", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const control = yield* FlakyStore.FlakyControl
      yield* cache.set("user:1", { id: 1, name: "old" }, { schema: User })
      yield* control.setDown(true)
      // The source changed; the delete that should drop the old entry fails.
      assert.strictEqual((yield* cache.delete("user:1"))._tag, "Pending")
      for (let i = 0; i < 3; i++) yield* cache.get("other", User)
      assert.strictEqual((yield* cache.stats).breaker, "open")
      yield* control.setDown(false)
      // Still open until the reset delay has passed: reads are degraded, not served from the store.
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
      const stats = yield* cache.stats
      assert.strictEqual(stats.breaker, "closed")
      assert.strictEqual(stats.pendingInvalidations, 0)
      assert.isFalse(yield* (yield* CacheStore).exists("user:1"))
    }).pipe(Effect.provide(flaky))
  )
})
