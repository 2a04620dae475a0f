/**
 * The `CACHE_L1_*` settings, the fail-safe family's (`CACHE_FAIL_SAFE_*`, source timeouts, eager refresh, negative
 * TTL) and `CACHE_WARM_MODE`: off or defaulted when unset, mapped to the options the cache and the warm-ups take,
 * and one clear failure naming the variable for an invalid value.
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

const readService = (env: Record<string, string>) =>
  Effect.provideService(CacheConfig.ServiceConfig, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

const loadOptionsOf = (env: Record<string, string>) => Effect.flatMap(read(env), CacheConfig.loadOptions)

const isSeconds = (duration: Duration.Duration | undefined, seconds: number) =>
  duration !== undefined && Duration.equals(duration, Duration.seconds(seconds))

describe("CacheConfig fail-safe family settings", () => {
  it.effect("leave fail-safe, timeouts, eager refresh and negative caching off by default", () =>
    Effect.gen(function* () {
      const config = yield* read({})
      assert.strictEqual(config.failSafeMaxStaleSeconds, 0)
      assert.strictEqual(config.failSafeThrottleSeconds, 30)
      assert.deepStrictEqual(yield* CacheConfig.loadOptions(config), {})
      assert.deepStrictEqual(
        yield* loadOptionsOf({
          CACHE_FAIL_SAFE_MAX_STALE: "0",
          CACHE_SOURCE_SOFT_TIMEOUT_MS: "0",
          CACHE_SOURCE_TIMEOUT_MS: "0",
          CACHE_EAGER_REFRESH: "0",
          CACHE_NEGATIVE_TTL: "0"
        }),
        {}
      )
    })
  )

  it.effect("map each setting to its CacheOptions field, in seconds or milliseconds as named", () =>
    Effect.gen(function* () {
      const options = yield* loadOptionsOf({
        CACHE_FAIL_SAFE_MAX_STALE: "3600",
        CACHE_FAIL_SAFE_THROTTLE: "10",
        CACHE_SOURCE_SOFT_TIMEOUT_MS: "100",
        CACHE_SOURCE_TIMEOUT_MS: "2000",
        CACHE_EAGER_REFRESH: "0.8",
        CACHE_NEGATIVE_TTL: "5"
      })
      assert.isTrue(isSeconds(options.failSafe?.maxStale, 3600))
      assert.isTrue(isSeconds(options.failSafe?.throttle, 10))
      assert.isTrue(Duration.equals(options.sourceTimeouts!.soft!, Duration.millis(100)))
      assert.isTrue(Duration.equals(options.sourceTimeouts!.hard!, Duration.millis(2000)))
      assert.strictEqual(options.eagerRefresh, 0.8)
      assert.isTrue(isSeconds(options.negativeTtl, 5))
    })
  )

  it.effect("give fail-safe the default 30 s throttle, and take either timeout alone", () =>
    Effect.gen(function* () {
      const failSafe = yield* loadOptionsOf({ CACHE_FAIL_SAFE_MAX_STALE: "60" })
      assert.isTrue(isSeconds(failSafe.failSafe?.maxStale, 60))
      assert.isTrue(isSeconds(failSafe.failSafe?.throttle, 30))
      const hard = yield* loadOptionsOf({ CACHE_SOURCE_TIMEOUT_MS: "500" })
      assert.deepStrictEqual(Object.keys(hard.sourceTimeouts!), ["hard"])
      const soft = yield* loadOptionsOf({ CACHE_SOURCE_SOFT_TIMEOUT_MS: "50" })
      assert.deepStrictEqual(Object.keys(soft.sourceTimeouts!), ["soft"])
    })
  )

  it.effect("refuse a soft timeout that is not below the hard one, naming the variable", () =>
    Effect.gen(function* () {
      for (const soft of ["2000", "3000"]) {
        const error = yield* Effect.flip(
          loadOptionsOf({ CACHE_SOURCE_SOFT_TIMEOUT_MS: soft, CACHE_SOURCE_TIMEOUT_MS: "2000" })
        )
        assert.strictEqual(error._tag, "InvalidConfigError")
        if (error._tag === "InvalidConfigError") {
          assert.strictEqual(error.variable, "CACHE_SOURCE_SOFT_TIMEOUT_MS")
          assert.include(error.message, "CACHE_SOURCE_TIMEOUT_MS=2000")
        }
      }
    })
  )

  it.effect("refuse each invalid value with a failure naming its variable", () =>
    Effect.gen(function* () {
      const invalid: ReadonlyArray<readonly [string, string]> = [
        ["CACHE_FAIL_SAFE_MAX_STALE", "-1"],
        ["CACHE_FAIL_SAFE_MAX_STALE", "1.5"],
        ["CACHE_FAIL_SAFE_MAX_STALE", "an hour"],
        ["CACHE_FAIL_SAFE_THROTTLE", "0"],
        ["CACHE_FAIL_SAFE_THROTTLE", "-5"],
        ["CACHE_SOURCE_SOFT_TIMEOUT_MS", "-1"],
        ["CACHE_SOURCE_SOFT_TIMEOUT_MS", "2.5"],
        ["CACHE_SOURCE_TIMEOUT_MS", "-100"],
        ["CACHE_SOURCE_TIMEOUT_MS", "soon"],
        ["CACHE_EAGER_REFRESH", "1"],
        ["CACHE_EAGER_REFRESH", "1.5"],
        ["CACHE_EAGER_REFRESH", "-0.1"],
        ["CACHE_EAGER_REFRESH", "80%"],
        ["CACHE_NEGATIVE_TTL", "-1"],
        ["CACHE_NEGATIVE_TTL", "0.5"]
      ]
      for (const [variable, value] of invalid) {
        const error = yield* Effect.flip(read({ [variable]: value }))
        assert.include(String(error), variable, `${variable}=${value}`)
      }
    })
  )
})

describe("CacheConfig CACHE_WARM_MODE", () => {
  it.effect("defaults to missing at startup and refresh on the schedule", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(CacheConfig.warmModesOf(yield* readService({})), {
        startup: "missing",
        scheduled: "refresh"
      })
    })
  )

  it.effect("sets the mode of both warm-ups when given", () =>
    Effect.gen(function* () {
      for (const mode of ["missing", "refresh"] as const) {
        assert.deepStrictEqual(CacheConfig.warmModesOf(yield* readService({ CACHE_WARM_MODE: mode })), {
          startup: mode,
          scheduled: mode
        })
      }
    })
  )

  it.effect("refuses any other mode, naming the variable", () =>
    Effect.gen(function* () {
      for (const mode of ["eager", "REFRESH", "all"]) {
        const error = yield* Effect.flip(readService({ CACHE_WARM_MODE: mode }))
        assert.include(String(error), "CACHE_WARM_MODE", JSON.stringify(mode))
      }
    })
  )
})
