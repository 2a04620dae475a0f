import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as fc from "fast-check"
import type * as Cache from "../effects/Cache.ts"
import * as MemoryStore from "../layers/store/MemoryStore.ts"
import * as RedisStore from "../layers/store/RedisStore.ts"
import type { CacheStore } from "../src/CacheStore.ts"
import * as EmbeddedServer from "../test/utils/EmbeddedServer.ts"
import * as FencedFill from "./FencedFill.ts"
import { settings } from "./Settings.ts"

let run = 0
const freshKey = (name: string) => `prop:${name}:${run++}`

const withL1: Cache.CacheOptions = { l1: { maxEntries: 16 } }
const brokenL1: Cache.CacheOptions = { ...withL1, brokenForTests: { l1FillBeforeFence: true } }

/** The fenced-fill property over `store`, with the cache built with `options`. */
const noStaleValue = <E>(store: () => ManagedRuntime.ManagedRuntime<CacheStore, E>, options: Cache.CacheOptions) =>
  fc.asyncProperty(FencedFill.steps, async (interleaving) => {
    const failures = await store().runPromise(FencedFill.replay(freshKey("fence"), interleaving, options))
    expect(failures).toEqual([])
  })

const check = <E>(name: string, store: () => ManagedRuntime.ManagedRuntime<CacheStore, E>, numRuns: number) =>
  describe(`fenced fill on ${name}`, () => {
    it("never stores or answers a value loaded before the latest delete or write, for any interleaving", async () => {
      await fc.assert(noStaleValue(store, {}), settings(numRuns))
    })

    it("with an L1: never answers a value loaded before the latest delete or write, for any interleaving", async () => {
      await fc.assert(noStaleValue(store, withL1), settings(numRuns))
    })

    it("catches a broken rule: an L1 filled before the fenced fill answers a stale value in some interleaving", async () => {
      const outcome = await fc.check(noStaleValue(store, brokenL1), { ...settings(numRuns), verbose: 0 })
      expect(outcome.failed, "the property must fail when the rule is broken").toBe(true)
    })

    it("runs the loader once for K concurrent callers of a key, and all get its value", async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 2, max: 64 }), async (k) => {
          const key = freshKey("k")
          const { runs, values } = await store().runPromise(FencedFill.concurrentCallers(key, k))
          expect(runs).toBe(1)
          expect(values).toEqual(Array.from({ length: k }, () => `value of ${key}`))
        }),
        settings(Math.ceil(numRuns / 4))
      )
    })
  })

const memory = ManagedRuntime.make(MemoryStore.layer)
const redis = ManagedRuntime.make(RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedServer.layer())))
afterAll(() => Effect.runPromise(Effect.promise(() => Promise.all([memory.dispose(), redis.dispose()]))))

check("MemoryStore", () => memory, 1000)
check("RedisStore", () => redis, 200)
