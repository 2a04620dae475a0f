/**
 * The `CACHE_L1_*` settings: off by default, bounds and maximum TTL as `CacheOptions.l1` takes them, and one clear
 * failure naming the variable for an invalid value.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import * as CacheConfig from "../../src/CacheConfig.ts"

const read = (env: Record<string, string>) =>
  Effect.provideService(CacheConfig.CacheConfig, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

describe("CacheConfig L1 settings", () => {
  it.effect("leave the L1 off by default and with CACHE_L1_MAX_ENTRIES=0", () =>
    Effect.gen(function* () {
      assert.isUndefined(CacheConfig.l1Options(yield* read({})))
      assert.isUndefined(CacheConfig.l1Options(yield* read({ CACHE_L1_MAX_ENTRIES: "0" })))
    })
  )

  it.effect("turn it on with its entry bound, byte bound (with a unit) and maximum TTL in seconds", () =>
    Effect.gen(function* () {
      const l1 = CacheConfig.l1Options(
        yield* read({ CACHE_L1_MAX_ENTRIES: "10000", CACHE_L1_MAX_BYTES: "64mb", CACHE_L1_TTL: "30" })
      )
      assert.strictEqual(l1?.maxEntries, 10_000)
      assert.strictEqual(l1?.maxBytes, 64 * 1024 * 1024)
      assert.isTrue(Duration.equals(l1!.ttl!, Duration.seconds(30)))
      assert.deepStrictEqual(CacheConfig.l1Options(yield* read({ CACHE_L1_MAX_ENTRIES: "5" })), { maxEntries: 5 })
    })
  )

  it.effect("refuse a negative entry count, naming the variable", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(read({ CACHE_L1_MAX_ENTRIES: "-1" }))
      assert.include(String(error), "CACHE_L1_MAX_ENTRIES")
    })
  )
})
