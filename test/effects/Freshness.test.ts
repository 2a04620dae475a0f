/**
 * The fail-safe family on the memory store and the TestClock: fail-safe with its bound and throttle, soft and hard
 * timeouts, eager refresh, negative caching and refreshing warm-ups — and, for each, that an invalidation removes
 * the stale copy or fences the background load, so an invalidated value is never answered.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "../../effects/Cache.ts"
import * as Warm from "../../effects/Warm.ts"
import * as MemoryStore from "../../layers/store/MemoryStore.ts"
import * as MemoryDataSource from "../../layers/source/MemoryDataSource.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import * as DataSource from "../../src/DataSource.ts"
import type { Target } from "../../src/InvalidationEvent.ts"
import * as FlakyStore from "../utils/FlakyStore.ts"

/** Lets every fiber that can run, run (the clock is a TestClock: nothing sleeps). */
const settle = Effect.yieldNow.pipe(Effect.repeat({ times: 50 }))

/** A source the test steers: it answers its current value, fails, takes `delayMs`, or waits at a gate. */
const steered = (initial: string) => {
  const state = {
    value: Option.some(initial) as Option.Option<string>,
    failing: false,
    delayMs: 0,
    gate: undefined as Deferred.Deferred<void> | undefined,
    calls: 0
  }
  const load = Effect.suspend(() => {
    state.calls++
    const answer = state.failing
      ? Effect.fail(new DataSource.LoadError({ key: "k", message: "the source is down" }))
      : Effect.succeed(state.value)
    const gated = state.gate === undefined ? answer : Effect.andThen(Deferred.await(state.gate), answer)
    return state.delayMs > 0 ? Effect.andThen(Effect.sleep(state.delayMs), gated) : gated
  })
  return { state, load, value: Effect.map(load, Option.getOrThrow) }
}

const withCache =
  (options: Cache.CacheOptions) =>
  <A, E>(effect: Effect.Effect<A, E, Cache.Cache | CacheStore>) =>
    Effect.provide(effect, Layer.fresh(Cache.layer(options).pipe(Layer.provideMerge(MemoryStore.layer))))

const options = { schema: Schema.String, ttl: "10 seconds", tags: ["users"] } as const
const failSafe: Cache.CacheOptions = { failSafe: { maxStale: "1 minute", throttle: "5 seconds" } }

/** What `fetch` answers for a value. */
const found = (value: string, stale = false) => ({ _tag: "Found", value, stale }) as const

/** Fills `k` from `source`, then lets its TTL pass: the store holds it as a stale copy (under fail-safe). */
const filledThenExpired = (cache: Cache.Cache["Service"], source: ReturnType<typeof steered>) =>
  Effect.andThen(cache.fetch("k", source.load, options), TestClock.adjust("11 seconds"))

/** Every way an entry can be invalidated on this instance. */
const invalidations: ReadonlyArray<readonly [string, (cache: Cache.Cache["Service"]) => Effect.Effect<unknown>]> = [
  ["a key invalidation", (cache) => Effect.orDie(cache.invalidate({ invalidation_type: "key", key: "k" }))],
  [
    "a pattern invalidation",
    (cache) => Effect.orDie(cache.invalidate({ invalidation_type: "pattern", pattern: "k*" }))
  ],
  ["a tag invalidation", (cache) => Effect.orDie(cache.invalidate({ invalidation_type: "tag", tags: ["users"] }))],
  ["a peer's event", (cache) => cache.invalidateLocally({ invalidation_type: "key", key: "k" } satisfies Target)],
  ["a delete", (cache) => Effect.orDie(cache.delete("k"))],
  ["a flush", (cache) => cache.flushLocally]
]

describe("fail-safe", () => {
  it.effect("answers the stale copy when the load fails, flagged stale, and asks the source once a throttle", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v1"))
      yield* TestClock.adjust("11 seconds")
      source.state.failing = true
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v1", true))
      assert.strictEqual(source.state.calls, 2)
      // Within the throttle the copy is answered without asking the source; getOrLoad answers it too.
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v1", true))
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v1")
      assert.strictEqual(source.state.calls, 2)
      // Plain reads answer fresh values only.
      assert.isTrue(Option.isNone(yield* cache.get("k", Schema.String)))
      yield* TestClock.adjust("6 seconds")
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v1", true))
      assert.strictEqual(source.state.calls, 3, "the throttle ended: the source is asked again")
      source.state.failing = false
      source.state.value = Option.some("v2")
      yield* TestClock.adjust("6 seconds")
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v2"))
      const stats = yield* cache.stats
      assert.strictEqual(stats.staleAnswers, 4)
      assert.strictEqual(stats.loadFailures, 2)
    }).pipe(withCache(failSafe))
  })

  it.effect("fails once the copy is older than maxStale", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.fetch("k", source.load, options)
      yield* TestClock.adjust("71 seconds")
      source.state.failing = true
      const exit = yield* Effect.exit(cache.fetch("k", source.load, options))
      assert.isTrue(exit._tag === "Failure", "no copy past its bound")
      assert.strictEqual((yield* cache.stats).staleAnswers, 0)
    }).pipe(withCache(failSafe))
  })

  it.effect("without fail-safe, a failed load fails and the expired entry is not kept", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* filledThenExpired(cache, source)
      source.state.failing = true
      assert.strictEqual((yield* Effect.exit(cache.fetch("k", source.load, options)))._tag, "Failure")
      assert.isUndefined(yield* (yield* CacheStore).get("k"), "stored plain, expired with its TTL")
    }).pipe(withCache({}))
  })

  for (const [name, invalidate] of invalidations) {
    it.effect(`${name} removes the stale copy: a failed load then fails`, () => {
      const source = steered("v1")
      return Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* filledThenExpired(cache, source)
        yield* invalidate(cache)
        source.state.failing = true
        assert.strictEqual((yield* Effect.exit(cache.fetch("k", source.load, options)))._tag, "Failure")
        assert.strictEqual((yield* cache.stats).staleAnswers, 0)
      }).pipe(withCache(failSafe))
    })

    it.effect(`${name} while the load runs fences the stale answer: the load's failure is the answer`, () => {
      const source = steered("v1")
      return Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* filledThenExpired(cache, source)
        source.state.failing = true
        source.state.gate = yield* Deferred.make<void>()
        const caller = yield* Effect.forkChild(cache.fetch("k", source.load, options))
        yield* settle
        assert.strictEqual(source.state.calls, 2, "the load is running")
        yield* invalidate(cache)
        yield* Deferred.succeed(source.state.gate, undefined)
        assert.strictEqual((yield* Effect.exit(Fiber.join(caller)))._tag, "Failure")
        assert.isUndefined(yield* (yield* CacheStore).get("k"), "nothing was written back")
      }).pipe(withCache(failSafe))
    })
  }
})

describe("fail-safe with a failing store", () => {
  it.effect(
    "an invalidation the store could not apply leaves no copy to answer, while pending and once applied",
    () => {
      const source = steered("v1")
      return Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const control = yield* FlakyStore.FlakyControl
        yield* filledThenExpired(cache, source)
        yield* control.setDown(true)
        const outcome = yield* Effect.orDie(cache.invalidate({ invalidation_type: "key", key: "k" }))
        assert.strictEqual(outcome._tag, "Pending")
        yield* control.setDown(false)
        source.state.failing = true
        // Pending: the key's reads miss without reaching the store, so there is no copy to fall back on.
        assert.strictEqual((yield* Effect.exit(cache.fetch("k", source.load, options)))._tag, "Failure")
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual((yield* cache.stats).pendingInvalidations, 0, "the retry applied it")
        assert.strictEqual((yield* Effect.exit(cache.fetch("k", source.load, options)))._tag, "Failure")
        assert.strictEqual((yield* cache.stats).staleAnswers, 0)
      }).pipe(
        Effect.provide(Layer.fresh(Cache.layer(failSafe).pipe(Layer.provideMerge(FlakyStore.layer(MemoryStore.layer)))))
      )
    }
  )
})

describe("soft and hard timeouts", () => {
  const timeouts: Cache.CacheOptions = { ...failSafe, sourceTimeouts: { soft: "100 millis", hard: "2 seconds" } }

  it.effect("past the soft timeout a caller gets the stale copy, and the load lands in the background", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* filledThenExpired(cache, source)
      source.state.value = Option.some("v2")
      source.state.delayMs = 1000
      const caller = yield* Effect.forkChild(cache.fetch("k", source.load, options))
      yield* settle
      yield* TestClock.adjust("100 millis")
      assert.deepStrictEqual(yield* Fiber.join(caller), found("v1", true))
      yield* TestClock.adjust("1 second")
      yield* settle
      source.state.delayMs = 0
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v2"))
      assert.strictEqual(source.state.calls, 2, "the background load was the only reload")
      const stats = yield* cache.stats
      assert.strictEqual(stats.backgroundRefreshes, 1)
      assert.strictEqual(stats.staleAnswers, 1)
    }).pipe(withCache(timeouts))
  })

  it.effect("a copy invalidated during the wait is not answered: the caller waits for the load", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* filledThenExpired(cache, source)
      source.state.value = Option.some("v2")
      source.state.delayMs = 1000
      const caller = yield* Effect.forkChild(cache.fetch("k", source.load, options))
      yield* settle
      yield* Effect.orDie(cache.invalidate({ invalidation_type: "key", key: "k" }))
      yield* TestClock.adjust("100 millis")
      yield* settle
      assert.isUndefined(caller.pollUnsafe(), "still waiting past the soft timeout")
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(caller), found("v2"))
      assert.strictEqual((yield* cache.stats).staleAnswers, 0)
    }).pipe(withCache(timeouts))
  })

  it.effect("past the hard timeout the load fails with LoadTimeoutError, or answers stale under fail-safe", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      source.state.delayMs = 5000
      const cold = yield* Effect.forkChild(Effect.flip(cache.fetch("cold", source.load, options)))
      yield* settle
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(cold)
      assert.strictEqual(error._tag, "LoadTimeoutError")
      source.state.delayMs = 0
      yield* filledThenExpired(cache, source)
      source.state.delayMs = 5000
      const stale = yield* Effect.forkChild(cache.getOrLoad("k", source.value, options))
      yield* settle
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(stale), "v1")
      assert.strictEqual((yield* cache.stats).loadTimeouts, 2)
    }).pipe(withCache({ ...failSafe, sourceTimeouts: { hard: "2 seconds" } }))
  })
})

describe("eager refresh", () => {
  const eager: Cache.CacheOptions = { eagerRefresh: 0.5 }

  it.effect("a hit past the fraction answers at once and starts one background reload", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.getOrLoad("k", source.value, options)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v1")
      assert.strictEqual(source.state.calls, 1, "not due yet")
      yield* TestClock.adjust("2 seconds")
      source.state.value = Option.some("v2")
      source.state.gate = yield* Deferred.make<void>()
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v1")
      yield* settle
      assert.strictEqual(source.state.calls, 2, "one reload for five hits")
      yield* Deferred.succeed(source.state.gate, undefined)
      yield* settle
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v2")
      assert.strictEqual((yield* cache.stats).backgroundRefreshes, 1)
    }).pipe(withCache(eager))
  })

  it.effect("the same through the L1", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.getOrLoad("k", source.value, options)
      yield* TestClock.adjust("6 seconds")
      source.state.value = Option.some("v2")
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v1")
      yield* settle
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v2")
      const stats = yield* cache.stats
      assert.strictEqual(stats.backgroundRefreshes, 1)
      assert.isAbove(stats.l1Hits, 0)
    }).pipe(withCache({ ...eager, l1: { maxEntries: 100 } }))
  })

  for (const [name, invalidate] of invalidations) {
    it.effect(`${name} during a background reload fences it`, () => {
      const source = steered("v1")
      return Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* cache.getOrLoad("k", source.value, options)
        yield* TestClock.adjust("6 seconds")
        source.state.value = Option.some("v2")
        source.state.gate = yield* Deferred.make<void>()
        yield* cache.getOrLoad("k", source.value, options)
        yield* settle
        yield* invalidate(cache)
        yield* Deferred.succeed(source.state.gate, undefined)
        yield* settle
        assert.isUndefined(yield* (yield* CacheStore).get("k"), "the reload did not write back")
        assert.strictEqual((yield* cache.stats).fencedFills, 1)
      }).pipe(withCache(eager))
    })
  }

  it.effect("a failed background reload keeps the value and waits a throttle before the next", () => {
    const source = steered("v1")
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.getOrLoad("k", source.value, options)
      yield* TestClock.adjust("6 seconds")
      source.state.failing = true
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v1")
      yield* settle
      assert.strictEqual(yield* cache.getOrLoad("k", source.value, options), "v1")
      yield* settle
      assert.strictEqual(source.state.calls, 2, "one failed reload, then the backoff")
    }).pipe(withCache({ ...eager, failSafe: { maxStale: "1 minute", throttle: "30 seconds" } }))
  })
})

describe("negative caching", () => {
  it.effect("a burst of lookups of a key the source lacks costs one load, until the negative TTL ends", () => {
    const source = steered("v1")
    source.state.value = Option.none()
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      for (let i = 0; i < 100; i++) {
        assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), { _tag: "NotFound" })
      }
      assert.strictEqual(source.state.calls, 1)
      assert.strictEqual((yield* cache.stats).negativeHits, 99)
      assert.isFalse(yield* cache.exists("k"), "a negative entry is not an entry")
      assert.isUndefined(yield* cache.read("k"))
      yield* TestClock.adjust("6 seconds")
      yield* cache.fetch("k", source.load, options)
      assert.strictEqual(source.state.calls, 2)
    }).pipe(withCache({ negativeTtl: "5 seconds" }))
  })

  for (const [name, invalidate] of invalidations) {
    it.effect(`${name} removes a negative entry`, () => {
      const source = steered("v1")
      source.state.value = Option.none()
      return Effect.gen(function* () {
        const cache = yield* Cache.Cache
        yield* cache.fetch("k", source.load, options)
        yield* invalidate(cache)
        source.state.value = Option.some("v2")
        assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v2"))
      }).pipe(withCache({ negativeTtl: "5 seconds" }))
    })
  }

  it.effect("getOrLoad does not take a negative entry for an answer: it loads", () => {
    const source = steered("v1")
    source.state.value = Option.none()
    return Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.fetch("k", source.load, options)
      assert.strictEqual(yield* cache.getOrLoad("k", Effect.succeed("v2"), options), "v2")
      assert.deepStrictEqual(yield* cache.fetch("k", source.load, options), found("v2"))
    }).pipe(withCache({ negativeTtl: "5 seconds" }))
  })
})

describe("refreshing warm-ups", () => {
  const source = MemoryDataSource.make([
    ["a", "a1"],
    ["b", "b1"]
  ]).source

  const provide = <A, E>(effect: Effect.Effect<A, E, Cache.Cache | CacheStore | DataSource.DataSource>) =>
    effect.pipe(
      Effect.provideService(DataSource.DataSource, source),
      Effect.provide(Layer.fresh(Cache.layer({ defaultTtl: "1 hour" }).pipe(Layer.provideMerge(MemoryStore.layer))))
    )

  it.effect("reloads present keys in refresh mode, and only missing keys otherwise", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("a", "a0", { schema: Schema.Json })
      const missing = yield* Warm.warm(["a", "b"])
      assert.strictEqual(missing.alreadyCached, 1)
      assert.deepStrictEqual(yield* cache.get("a", Schema.Json), Option.some("a0"))
      const refresh = yield* Warm.warm(["a", "b"], { mode: "refresh" })
      assert.strictEqual(refresh.warmed, 2)
      assert.strictEqual(refresh.alreadyCached, 0)
      assert.deepStrictEqual(yield* cache.get("a", Schema.Json), Option.some("a1"))
    }).pipe(provide)
  )

  it.effect("keeps the old value readable until the reload lands; an invalidation meanwhile fences it", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("a", "a0", { schema: Schema.Json })
      yield* cache.set("b", "b0", { schema: Schema.Json })
      const gate = yield* Deferred.make<void>()
      const slow: DataSource.DataSourceShape = DataSource.make({
        load: (key) => Effect.andThen(Deferred.await(gate), source.load(key))
      })
      const warm = yield* Effect.forkChild(
        Warm.warm(["a", "b"], { mode: "refresh", batchSize: 2 }).pipe(
          Effect.provideService(DataSource.DataSource, slow)
        )
      )
      yield* settle
      assert.deepStrictEqual(yield* cache.get("a", Schema.Json), Option.some("a0"), "readable during the reload")
      yield* Effect.orDie(cache.invalidate({ invalidation_type: "key", key: "b" }))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(warm)
      assert.deepStrictEqual(yield* cache.get("a", Schema.Json), Option.some("a1"))
      assert.isTrue(Option.isNone(yield* cache.get("b", Schema.Json)), "the invalidated key's reload was fenced")
    }).pipe(provide)
  )

  it.effect("a key the source no longer has is removed by a refresh", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("gone", "old", { schema: Schema.Json })
      const report = yield* Warm.warm(["gone"], { mode: "refresh" })
      assert.strictEqual(report.missing, 1)
      assert.isTrue(Option.isNone(yield* cache.get("gone", Schema.Json)))
    }).pipe(provide)
  )
})
