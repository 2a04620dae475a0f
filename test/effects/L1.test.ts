/**
 * The L1's coherence rules, one test each, on a memory store whose calls are counted and whose removals and reads can
 * be held at a gate: hits skip the store; every local write, delete, invalidation (key, pattern, tag) and flush
 * removes what it covers before it returns; a peer's event removes it before the store is touched; a read or fill
 * that raced an invalidation never brings the old value back; a fenced fill never enters; a pending key never
 * enters; an entry never outlives its store TTL nor the L1 maximum; values decode with the caller's schema.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "../../effects/Cache.ts"
import * as MemoryStore from "../../layers/store/MemoryStore.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import * as FlakyStore from "../utils/FlakyStore.ts"
import * as Loaders from "../utils/Loaders.ts"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
const ada = { id: 1, name: "ada" }
const grace = { id: 2, name: "grace" }

/** A hold on the next call of one store operation: `reached` once it is called, `release` lets it answer. */
interface Hold {
  readonly reached: Deferred.Deferred<void>
  readonly release: Effect.Effect<void>
}

/** Holds store calls: removals before they reach the store, reads after they read it (a reply still on its way). */
class Holds extends Context.Service<
  Holds,
  { readonly hold: (operation: "delete" | "deletePattern" | "deleteTagged" | "getWithTtl") => Effect.Effect<Hold> }
>()("test/Holds") {}

const holding = Layer.effectContext(
  Effect.gen(function* () {
    const store = yield* CacheStore
    const holds = new Map<string, { reached: Deferred.Deferred<void>; gate: Deferred.Deferred<void> }>()
    const take = (operation: string) => {
      const held = holds.get(operation)
      holds.delete(operation)
      return held
    }
    const before =
      <Args extends ReadonlyArray<unknown>, A, E>(operation: string, f: (...args: Args) => Effect.Effect<A, E>) =>
      (...args: Args): Effect.Effect<A, E> => {
        const held = take(operation)
        if (held === undefined) return f(...args)
        return Deferred.succeed(held.reached, undefined).pipe(
          Effect.andThen(Deferred.await(held.gate)),
          Effect.andThen(Effect.suspend(() => f(...args)))
        )
      }
    const getWithTtl: CacheStore["Service"]["getWithTtl"] = (key) => {
      const held = take("getWithTtl")
      if (held === undefined) return store.getWithTtl(key)
      return Effect.tap(store.getWithTtl(key), () =>
        Deferred.succeed(held.reached, undefined).pipe(Effect.andThen(Deferred.await(held.gate)))
      )
    }
    const wrapped = CacheStore.of({
      ...store,
      delete: before("delete", store.delete),
      deletePattern: before("deletePattern", store.deletePattern),
      deleteTagged: before("deleteTagged", store.deleteTagged),
      getWithTtl
    })
    return Context.make(CacheStore, wrapped).pipe(
      Context.add(Holds, {
        hold: (operation) =>
          Effect.gen(function* () {
            const reached = yield* Deferred.make<void>()
            const gate = yield* Deferred.make<void>()
            holds.set(operation, { reached, gate })
            return { reached, release: Effect.asVoid(Deferred.succeed(gate, undefined)) }
          })
      })
    )
  })
)

const withL1 = (l1: Cache.L1Options) =>
  Cache.layer({ l1 }).pipe(
    Layer.provideMerge(holding),
    Layer.provideMerge(FlakyStore.layer(MemoryStore.layer)),
    Layer.fresh
  )
const provideL1 = <A, E>(
  effect: Effect.Effect<A, E, Cache.Cache | CacheStore | Holds | FlakyStore.FlakyControl>,
  l1: Cache.L1Options = { maxEntries: 100 }
) => Effect.provide(effect, withL1(l1))

/** Store calls so far. */
const storeCalls = FlakyStore.FlakyControl.use((control) => control.calls)

/** Loads `key` (a fill) and reads it once more, so it is in the L1. */
const warm = (cache: Cache.Cache["Service"], key: string, value: typeof ada, tags?: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    yield* cache.getOrLoad(key, Effect.succeed(value), { schema: User, tags })
    assert.deepStrictEqual(yield* cache.get(key, User), Option.some(value))
  })

const l1Entries = (cache: Cache.Cache["Service"]) => Effect.map(cache.stats, (stats) => stats.l1Entries)

describe("L1", () => {
  it.effect("answers repeated reads from the L1 without a store round trip, counting L1 hits and misses", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const loader = Loaders.counting(ada)
        assert.deepStrictEqual(yield* cache.getOrLoad("user:1", loader.load, { schema: User }), ada)
        const calls = yield* storeCalls
        for (let i = 0; i < 5; i++) {
          assert.deepStrictEqual(yield* cache.getOrLoad("user:1", loader.load, { schema: User }), ada)
          assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
        }
        assert.strictEqual(yield* storeCalls, calls, "no store call for an L1 hit")
        const stats = yield* cache.stats
        assert.strictEqual(stats.l1Hits, 10)
        assert.strictEqual(stats.l1Misses, 1)
        assert.strictEqual(stats.hits, 10)
        assert.strictEqual(stats.l1Entries, 1)
        assert.strictEqual(stats.l1Bytes, JSON.stringify(ada).length)
        assert.strictEqual(loader.runs(), 1)
      })
    )
  )

  it.effect("a store hit enters the L1 with its remaining TTL, and readEntry answers L1 hits with that TTL", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* (yield* CacheStore).set("user:1", JSON.stringify(ada), { ttlMs: 60_000 })
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
        yield* TestClock.adjust("10 seconds")
        const calls = yield* storeCalls
        const read = yield* cache.readEntry("user:1")
        assert.deepStrictEqual(read, {
          _tag: "Found",
          value: { type: "string", value: JSON.stringify(ada) },
          ttlMs: 50_000
        })
        assert.strictEqual(yield* storeCalls, calls)
      })
    )
  )

  it.effect("a local set removes the key's L1 entry before it returns: the next read gets the new value", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* warm(cache, "user:1", ada)
        yield* cache.set("user:1", grace, { schema: User })
        assert.strictEqual(yield* l1Entries(cache), 0)
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(grace))
      })
    )
  )

  it.effect("an effect built before a write and run after it reads the new value: reads happen when run", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* warm(cache, "user:1", ada)
        const get = cache.get("user:1", User)
        const getOrLoad = cache.getOrLoad("user:1", Effect.succeed(ada), { schema: User })
        const fetch = cache.fetch("user:1", Effect.succeed(Option.some(ada)), { schema: User })
        const read = cache.read("user:1")
        yield* cache.set("user:1", grace, { schema: User })
        assert.deepStrictEqual(yield* read, { type: "string", value: JSON.stringify(grace) })
        assert.deepStrictEqual(yield* get, Option.some(grace))
        assert.deepStrictEqual(yield* getOrLoad, grace)
        assert.deepStrictEqual(yield* fetch, { _tag: "Found", value: grace, stale: false })
      })
    )
  )

  it.effect("a local delete and a local write of any data type remove the key's L1 entry before they return", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* warm(cache, "user:1", ada)
        yield* cache.delete("user:1")
        assert.strictEqual(yield* l1Entries(cache), 0)
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
        yield* warm(cache, "user:2", grace)
        yield* cache.write("user:2", { type: "string", value: JSON.stringify(ada) })
        assert.deepStrictEqual(yield* cache.get("user:2", User), Option.some(ada))
        yield* warm(cache, "user:3", grace)
        yield* cache.hashSet("user:3", { f: "v" }).pipe(Effect.ignore)
        assert.deepStrictEqual(yield* cache.get("user:3", User), Option.none())
      })
    )
  )

  it.effect("an invalidation by key, by pattern and by tag removes exactly the L1 entries it covers", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* warm(cache, "user:1", ada, ["team:a"])
        yield* warm(cache, "user:2", ada, ["team:b"])
        yield* warm(cache, "post:1", ada)
        yield* warm(cache, "post:2", ada)
        yield* cache.invalidate({ invalidation_type: "key", key: "post:2" })
        assert.strictEqual(yield* l1Entries(cache), 3)
        yield* cache.invalidate({ invalidation_type: "tag", tags: ["team:a"] })
        assert.strictEqual(yield* l1Entries(cache), 2)
        yield* cache.invalidate({ invalidation_type: "pattern", pattern: "post:*" })
        assert.strictEqual(yield* l1Entries(cache), 1)
        assert.deepStrictEqual(yield* cache.get("user:2", User), Option.some(ada), "uncovered entries stay")
        for (const key of ["user:1", "post:1", "post:2"]) {
          assert.deepStrictEqual(yield* cache.get(key, User), Option.none(), key)
        }
      })
    )
  )

  it.effect("flushLocally empties the L1 before it returns", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* warm(cache, "user:1", ada)
        yield* warm(cache, "user:2", grace)
        yield* cache.flushLocally
        const stats = yield* cache.stats
        assert.strictEqual(stats.l1Entries, 0)
        assert.strictEqual(stats.l1Bytes, 0)
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
      })
    )
  )

  it.effect("a peer's event removes the L1 entries it covers before the store is touched", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const holds = yield* Holds
        for (const [target, operation] of [
          [{ invalidation_type: "key", key: "user:1" }, "delete"],
          [{ invalidation_type: "pattern", pattern: "user:*" }, "deletePattern"],
          [{ invalidation_type: "tag", tags: ["t"] }, "deleteTagged"]
        ] as const) {
          yield* warm(cache, "user:1", ada, ["t"])
          const hold = yield* holds.hold(operation)
          const applying = yield* Effect.forkChild(cache.invalidateLocally(target))
          yield* Deferred.await(hold.reached)
          assert.strictEqual(yield* l1Entries(cache), 0, `${operation}: removed while the store is untouched`)
          yield* hold.release
          yield* Fiber.join(applying)
          assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none(), operation)
        }
      })
    )
  )

  it.effect("a store read that raced an invalidation does not bring the old value back into the L1", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* (yield* CacheStore).set("user:1", JSON.stringify(ada))
        for (const target of [
          { invalidation_type: "key", key: "user:1" },
          { invalidation_type: "pattern", pattern: "user:*" },
          { invalidation_type: "tag", tags: ["t"] }
        ] as const) {
          yield* (yield* CacheStore).set("user:1", JSON.stringify(ada), { tags: ["t"] })
          // The read has read the old value; its answer is still on its way when the invalidation runs.
          const hold = yield* (yield* Holds).hold("getWithTtl")
          const read = yield* Effect.forkChild(cache.get("user:1", User))
          yield* Deferred.await(hold.reached)
          yield* cache.invalidateLocally(target)
          yield* hold.release
          yield* Fiber.join(read)
          assert.strictEqual(yield* l1Entries(cache), 0, target.invalidation_type)
          assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none(), target.invalidation_type)
        }
        // …and a flush.
        yield* (yield* CacheStore).set("user:1", JSON.stringify(ada))
        const hold = yield* (yield* Holds).hold("getWithTtl")
        const read = yield* Effect.forkChild(cache.get("user:1", User))
        yield* Deferred.await(hold.reached)
        yield* cache.flushLocally
        yield* hold.release
        yield* Fiber.join(read)
        assert.strictEqual(yield* l1Entries(cache), 0, "flush")
      })
    )
  )

  it.effect("a read while an invalidation is removing from the store leaves nothing in the L1 once it returns", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const holds = yield* Holds
        for (const [target, operation] of [
          [{ invalidation_type: "key", key: "user:1" }, "delete"],
          [{ invalidation_type: "pattern", pattern: "user:*" }, "deletePattern"],
          [{ invalidation_type: "tag", tags: ["t"] }, "deleteTagged"]
        ] as const) {
          yield* (yield* CacheStore).set("user:1", JSON.stringify(ada), { tags: ["t"] })
          const hold = yield* holds.hold(operation)
          const applying = yield* Effect.forkChild(cache.invalidateLocally(target))
          yield* Deferred.await(hold.reached)
          // The store has not removed it yet: this read may answer it, and offers it to the L1.
          yield* cache.get("user:1", User)
          yield* hold.release
          yield* Fiber.join(applying)
          assert.strictEqual(yield* l1Entries(cache), 0, operation)
          assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none(), operation)
        }
      })
    )
  )

  it.effect("a fill enters the L1 only after its fenced fill succeeded: a fenced fill never does", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const stale = yield* Loaders.gated({ id: 1, name: "before the delete" })
        const early = yield* Effect.forkChild(cache.getOrLoad("user:1", stale.load, { schema: User }))
        yield* Deferred.await(stale.started)
        yield* cache.delete("user:1")
        yield* stale.open
        assert.deepStrictEqual(yield* Fiber.join(early), { id: 1, name: "before the delete" })
        assert.strictEqual((yield* cache.stats).fencedFills, 1)
        assert.strictEqual(yield* l1Entries(cache), 0, "the fenced fill did not enter the L1")
        const fresh = Loaders.counting(ada)
        assert.deepStrictEqual(yield* cache.getOrLoad("user:1", fresh.load, { schema: User }), ada)
        assert.strictEqual(fresh.runs(), 1)
        assert.strictEqual(yield* l1Entries(cache), 1, "a fill the store took enters")
      })
    )
  )

  it.effect("a key with a pending invalidation never enters the L1 nor answers from it", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const control = yield* FlakyStore.FlakyControl
        yield* warm(cache, "user:1", ada)
        yield* control.setDown(true)
        assert.strictEqual((yield* cache.set("user:1", grace, { schema: User }))._tag, "NotWritten")
        yield* control.setDown(false)
        // The store still holds ada (the write failed): the key is pending, so reads miss and nothing enters.
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
        assert.deepStrictEqual(yield* cache.getOrLoad("user:1", Effect.succeed(grace), { schema: User }), grace)
        assert.strictEqual(yield* l1Entries(cache), 0)
      })
    )
  )

  it.effect("an L1 entry never outlives the store entry's remaining TTL", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* cache.getOrLoad("user:1", Effect.succeed(ada), { schema: User, ttl: "10 seconds" })
        yield* TestClock.adjust(9_999)
        const calls = yield* storeCalls
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
        assert.strictEqual(yield* storeCalls, calls, "still an L1 hit")
        yield* TestClock.adjust(1)
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.none())
        assert.strictEqual(yield* l1Entries(cache), 0)
      })
    )
  )

  it.effect("an L1 entry never outlives the L1 maximum TTL", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* cache.getOrLoad("user:1", Effect.succeed(ada), { schema: User, ttl: "1 hour" })
        yield* TestClock.adjust(999)
        let calls = yield* storeCalls
        yield* cache.get("user:1", User)
        assert.strictEqual(yield* storeCalls, calls, "an L1 hit within its maximum TTL")
        yield* TestClock.adjust(1)
        calls = yield* storeCalls
        assert.deepStrictEqual(yield* cache.get("user:1", User), Option.some(ada))
        assert.strictEqual(yield* storeCalls, calls + 1, "read from the store once the L1 TTL passed")
      }),
      { maxEntries: 100, ttl: "1 second" }
    )
  )

  it.effect("a value read from the L1 decodes with the caller's schema, as a store read does", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const AsText = Schema.Struct({ at: Schema.String })
        const AsDate = Schema.Struct({ at: Schema.DateFromString })
        const loaded = yield* cache.getOrLoad("event:1", Effect.succeed({ at: "2026-12-02T00:00:00.000Z" }), {
          schema: AsText
        })
        const calls = yield* storeCalls
        const same = yield* cache.get("event:1", AsText)
        assert.strictEqual(Option.getOrThrow(same), loaded, "the same schema gets the decoded value as is")
        const asDate = Option.getOrThrow(yield* cache.get("event:1", AsDate))
        assert.instanceOf(asDate.at, Date)
        assert.strictEqual(asDate.at.toISOString(), "2026-12-02T00:00:00.000Z")
        assert.strictEqual(yield* storeCalls, calls, "both from the L1")
        // A schema the text does not fit reads the store, which drops the entry as undecodable: a miss.
        assert.deepStrictEqual(yield* cache.get("event:1", User), Option.none())
        assert.strictEqual((yield* cache.stats).decodeFailures, 1)
      })
    )
  )

  it.effect("holds at most maxEntries entries and maxBytes bytes of JSON text", () =>
    provideL1(
      Effect.gen(function* () {
        const cache = yield* Cache.Cache
        for (let i = 0; i < 10; i++) yield* cache.getOrLoad(`user:${i}`, Effect.succeed(ada), { schema: User })
        const stats = yield* cache.stats
        assert.isAtMost(stats.l1Entries, 3)
        assert.isAtMost(stats.l1Bytes, 3 * JSON.stringify(ada).length)
        assert.isAtLeast(stats.l1Entries, 1)
        const bytesBound = yield* Effect.provide(
          Effect.gen(function* () {
            const small = yield* Cache.Cache
            for (let i = 0; i < 10; i++) yield* small.getOrLoad(`user:${i}`, Effect.succeed(ada), { schema: User })
            return yield* small.stats
          }),
          withL1({ maxEntries: 100, maxBytes: 2 * JSON.stringify(ada).length })
        )
        assert.isAtMost(bytesBound.l1Bytes, 2 * JSON.stringify(ada).length)
        assert.isAtLeast(bytesBound.l1Entries, 1)
      }),
      { maxEntries: 3 }
    )
  )

  it.effect("is off without the option: no L1 counters move", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* warm(cache, "user:1", ada)
      const stats = yield* cache.stats
      assert.strictEqual(stats.l1Hits + stats.l1Misses + stats.l1Entries, 0)
    }).pipe(Effect.provide(Cache.layer().pipe(Layer.provideMerge(MemoryStore.layer), Layer.fresh)))
  )
})
