import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as fc from "fast-check"
import type * as Cache from "../effects/Cache.ts"
import * as MemoryStore from "../layers/store/MemoryStore.ts"
import * as RedisStore from "../layers/store/RedisStore.ts"
import type { CacheStore } from "../src/CacheStore.ts"
import * as EmbeddedServer from "../test/utils/EmbeddedServer.ts"
import * as Freshness from "./Freshness.ts"
import { settings } from "./Settings.ts"

let run = 0
const freshKey = () => `prop:freshness:${run++}`

const withL1: Cache.CacheOptions = { ...Freshness.allOn, l1: { maxEntries: 16 } }
const broken: Cache.CacheOptions = { ...Freshness.allOn, brokenForTests: { staleWriteBackUnfenced: true } }

/** The freshness property over `store`, with the cache built with `options`. */
const noInvalidatedValue = <E>(
  store: () => ManagedRuntime.ManagedRuntime<CacheStore, E>,
  options: Cache.CacheOptions
) =>
  fc.asyncProperty(Freshness.steps, async (interleaving) => {
    const failures = await store().runPromise(Freshness.replay(freshKey(), interleaving, options))
    expect(failures).toEqual([])
  })

const check = <E>(name: string, store: () => ManagedRuntime.ManagedRuntime<CacheStore, E>, numRuns: number) =>
  describe(`fail-safe, timeouts, eager refresh, negative entries and refreshing warm-ups on ${name}`, () => {
    it("never answer or store a value (stale or not) or a 'not found' older than the latest change", async () => {
      await fc.assert(noInvalidatedValue(store, Freshness.allOn), settings(numRuns))
    })

    it("the same with an L1", async () => {
      await fc.assert(noInvalidatedValue(store, withL1), settings(numRuns))
    })

    it("catches a broken rule: a stale copy written back unfenced outlives an invalidation", async () => {
      // Finding it takes a particular order (a fill, expiry, a reload, a change, then the reload failing), which random
      // runs reach only now and then: that interleaving is among the examples, tried first.
      const outcome = await fc.check(noInvalidatedValue(store, broken), {
        ...settings(numRuns),
        examples: [[Freshness.staleCopyRace]],
        verbose: 0
      })
      expect(outcome.failed, "the property must fail when the rule is broken").toBe(true)
    })
  })

const memory = ManagedRuntime.make(MemoryStore.layer)
const redis = ManagedRuntime.make(RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedServer.layer())))
afterAll(() => Effect.runPromise(Effect.promise(() => Promise.all([memory.dispose(), redis.dispose()]))))

check("MemoryStore", () => memory, 500)
check("RedisStore", () => redis, 150)
