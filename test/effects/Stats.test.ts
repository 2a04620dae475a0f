import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Metric, Option, References, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "../../effects/Cache.ts"
import * as Stats from "../../effects/Stats.ts"
import { SyncConsumer } from "../../effects/SyncConsumer.ts"
import * as MemoryStore from "../../layers/store/MemoryStore.ts"
import { CacheStore, type StoreInfo } from "../../src/CacheStore.ts"
import * as FlakyStore from "../utils/FlakyStore.ts"

const Num = Schema.Number

/** A log line as a test reads it. */
interface Line {
  readonly level: string
  readonly message: string
  readonly alert: unknown
}

/** A logger that appends every line to `lines`. */
const capture = (lines: Array<Line>) =>
  Logger.layer(
    [
      Logger.make(({ logLevel, message, fiber }) => {
        const text = Array.isArray(message) ? message.join(" ") : String(message)
        lines.push({ level: logLevel, message: text, alert: fiber.getRef(References.CurrentLogAnnotations)["alert"] })
      })
    ],
    { mergeWithExisting: false }
  )

/** Stats with an instrumented cache over `store`, fresh per test, in a fresh metric registry, logging to `lines`. */
const withStats =
  <S = CacheStore, E0 = never>(
    options: Partial<Stats.StatsOptions> = {},
    store: Layer.Layer<CacheStore | S, E0> = MemoryStore.layer as Layer.Layer<CacheStore | S, E0>,
    lines: Array<Line> = []
  ) =>
  <A, E>(effect: Effect.Effect<A, E, Stats.Stats | Cache.Cache | CacheStore | S>) =>
    effect.pipe(
      Effect.provide(
        Layer.fresh(
          Stats.layerInstrumented({ instanceId: "test-1", ...options }).pipe(
            Layer.provideMerge(Cache.layer().pipe(Layer.provideMerge(store)))
          )
        )
      ),
      Effect.provide(capture(lines)),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )

const snapshot = Stats.snapshot
const gets = (n: number, key: (i: number) => string) =>
  Cache.Cache.use((cache) =>
    Effect.forEach(
      Array.from({ length: n }, (_, i) => key(i)),
      (k) => cache.get(k, Num)
    )
  )

/** A memory store whose INFO reports `memory` (used and limit bytes) and whose PING can be switched off. */
const storeWithMemory = (memory: { used: number; limit: number }) =>
  Layer.effect(
    CacheStore,
    Effect.map(MemoryStore.make, (store) =>
      CacheStore.of({
        ...store,
        info: Effect.map(store.info, (info): StoreInfo => ({
          ...info,
          kind: "redis",
          usedMemory: memory.used,
          maxMemory: memory.limit
        }))
      })
    )
  )

const alertLines = (lines: ReadonlyArray<Line>, alert: string) =>
  lines.filter((line) => line.alert === alert).map((line) => `${line.level}: ${line.message}`)

describe("Stats.snapshot", () => {
  it.effect("operations_per_second rises as operations happen and falls back to 0 once they leave the window", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* snapshot).operations_per_second, 0)
      yield* gets(120, (i) => `k${i}`)
      // 120 operations in the first second of life: the rate is over the one second lived so far.
      assert.strictEqual((yield* snapshot).operations_per_second, 120)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* snapshot).operations_per_second, 4)
      yield* gets(180, (i) => `k${i}`)
      assert.strictEqual((yield* snapshot).operations_per_second, 10)
      yield* TestClock.adjust("29 seconds")
      // t = 59 s: the window (the 60 seconds 0..59) still holds both bursts.
      assert.strictEqual((yield* snapshot).operations_per_second, 300 / 59)
      yield* TestClock.adjust("1 second")
      // t = 60 s: the window is seconds 1..60, so the first burst (second 0) left it.
      assert.strictEqual((yield* snapshot).operations_per_second, 180 / 60)
      yield* TestClock.adjust("30 seconds")
      const later = yield* snapshot
      assert.strictEqual(later.operations_per_second, 0)
      assert.strictEqual(later.uptime_seconds, 90)
    }).pipe(withStats())
  )

  it.effect("hit_rate is hits / (hits + misses) as a fraction, and 0 before any lookup", () =>
    Effect.gen(function* () {
      const before = yield* snapshot
      assert.strictEqual(before.hit_rate, 0)
      const cache = yield* Cache.Cache
      yield* cache.set("a", 1, { schema: Num })
      yield* gets(3, () => "a")
      yield* gets(1, () => "missing")
      const after = yield* snapshot
      assert.strictEqual(after.hits, 3)
      assert.strictEqual(after.misses, 1)
      assert.strictEqual(after.hit_rate, 0.75)
      assert.strictEqual(after.total_keys, 1)
      assert.strictEqual(after.store, "memory")
      assert.isTrue(after.store_up)
      assert.strictEqual(after.instance_id, "test-1")
    }).pipe(withStats())
  )

  it.effect("latency percentiles are the nearest ranks of the recent samples, so p50 <= p95 <= p99", () =>
    Effect.gen(function* () {
      const stats = yield* Stats.Stats
      // 1..200 ms, shuffled: the percentiles do not depend on arrival order.
      const durations = Array.from({ length: 200 }, (_, i) => ((i * 37) % 200) + 1)
      yield* Effect.forEach(durations, (ms) => stats.record("get", ms))
      const { get, set } = (yield* snapshot).latency_ms
      assert.deepStrictEqual(get, { p50: 100, p95: 190, p99: 198, samples: 200 })
      assert.isTrue(get.p50 <= get.p95 && get.p95 <= get.p99)
      assert.deepStrictEqual(set, { p50: 0, p95: 0, p99: 0, samples: 0 })
    }).pipe(withStats())
  )

  it.effect("keeps only the most recent latencies, so percentiles follow a change in speed", () =>
    Effect.gen(function* () {
      const stats = yield* Stats.Stats
      yield* Effect.forEach(Array.from({ length: 16 }), () => stats.record("set", 500))
      yield* Effect.forEach(Array.from({ length: 16 }), () => stats.record("set", 2))
      assert.deepStrictEqual((yield* snapshot).latency_ms.set, { p50: 2, p95: 2, p99: 2, samples: 16 })
    }).pipe(withStats({ latencySamples: 16 }))
  )

  it.effect("records every call through the instrumented cache by operation, and answers as the real cache", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      assert.strictEqual((yield* cache.set("a", 1, { schema: Num }))._tag, "Written")
      assert.deepStrictEqual(yield* cache.get("a", Num), Option.some(1))
      assert.strictEqual(yield* cache.getOrLoad("b", Effect.succeed(2), { schema: Num }), 2)
      assert.deepStrictEqual(yield* cache.delete("a"), { _tag: "Deleted", removed: 1 })
      assert.deepStrictEqual(yield* cache.invalidate({ invalidation_type: "key", key: "b" }), {
        _tag: "Deleted",
        removed: 1
      })
      yield* cache.hashSet("h", { f: "v" })
      assert.strictEqual(yield* cache.hashGet("h", "f"), "v")
      const failed = yield* Effect.flip(cache.getOrLoad("c", Effect.fail("boom"), { schema: Num }))
      assert.strictEqual(failed, "boom")
      const s = yield* snapshot
      const samples = Object.fromEntries(Object.entries(s.latency_ms).map(([op, p]) => [op, p.samples]))
      assert.deepStrictEqual(samples, {
        get: 1,
        set: 1,
        delete: 1,
        getOrLoad: 2,
        getMany: 0,
        invalidate: 1,
        read: 1,
        write: 1
      })
      assert.strictEqual(s.window.operations, 8)
      assert.strictEqual(s.cache.fills, 1)
      assert.strictEqual(s.cache.load_failures, 1)
    }).pipe(withStats())
  )

  it.effect("memory_usage_percent is used / limit * 100 with a limit, and 0 without one", () =>
    Effect.gen(function* () {
      const limited = yield* snapshot.pipe(withStats({}, storeWithMemory({ used: 300, limit: 1200 })))
      assert.strictEqual(limited.memory_used, 300)
      assert.strictEqual(limited.memory_limit, 1200)
      assert.strictEqual(limited.memory_usage_percent, 25)
      const unlimited = yield* snapshot.pipe(withStats({}, storeWithMemory({ used: 300, limit: 0 })))
      assert.strictEqual(unlimited.memory_usage_percent, 0)
      assert.isFalse(unlimited.alerts.high_memory)
    })
  )

  describe("the sync section", () => {
    const counts = { received: 5, applied: 3, duplicates: 1, own: 1, malformed: 0, deferred: 2, flushes: 0 }
    const consumer = Layer.succeed(
      SyncConsumer,
      SyncConsumer.of({ stats: Effect.succeed(counts), check: Effect.void, caughtUp: Effect.succeed(true) })
    )
    const cacheWithConsumer = Cache.layer().pipe(Layer.provideMerge(MemoryStore.layer), Layer.provideMerge(consumer))
    const snapshotFrom = (stats: Layer.Layer<Stats.Stats, never, Cache.Cache | CacheStore | SyncConsumer>) =>
      snapshot.pipe(
        Effect.provide(Layer.fresh(stats.pipe(Layer.provide(cacheWithConsumer)))),
        Effect.provideService(Metric.MetricRegistry, new Map())
      )

    it.effect("layerInstrumentedSynced and layerSynced report the SyncConsumer's counters", () =>
      Effect.gen(function* () {
        const instrumented = yield* snapshotFrom(Stats.layerInstrumentedSynced({ instanceId: "synced" }))
        assert.deepStrictEqual(instrumented.sync, counts)
        const plain = yield* snapshotFrom(Stats.layerSynced({ instanceId: "synced" }))
        assert.deepStrictEqual(plain.sync, counts)
      })
    )

    it.effect("layerInstrumented and layer have no sync section, even with a SyncConsumer in context", () =>
      Effect.gen(function* () {
        const instrumented = yield* snapshotFrom(Stats.layerInstrumented({ instanceId: "alone" }))
        assert.isFalse("sync" in instrumented)
        const plain = yield* snapshotFrom(Stats.layer({ instanceId: "alone" }))
        assert.isFalse("sync" in plain)
      })
    )
  })

  it.effect("Stats.layer alone records no operations, and still reports the cache's counters", () =>
    Effect.gen(function* () {
      yield* gets(10, () => "x")
      const s = yield* snapshot
      assert.strictEqual(s.operations_per_second, 0)
      assert.strictEqual(s.misses, 10)
    }).pipe(
      Effect.provide(
        Layer.fresh(
          Stats.layer({ instanceId: "plain" }).pipe(
            Layer.provideMerge(Cache.layer().pipe(Layer.provideMerge(MemoryStore.layer)))
          )
        )
      ),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )
})

describe("Stats alerts", () => {
  it.effect("low_hit_rate fires once after enough lookups, logs one warning, and one info when it clears", () => {
    const lines: Array<Line> = []
    return Effect.gen(function* () {
      // 99 misses: below the 100 lookups needed to judge.
      yield* gets(99, (i) => `miss${i}`)
      yield* TestClock.adjust("10 seconds")
      assert.isFalse((yield* snapshot).alerts.low_hit_rate)
      yield* gets(1, () => "miss")
      // The background evaluation (every 10 s) sees it, with no snapshot asked for.
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(alertLines(lines, "low_hit_rate"), ["Warn: cache alert fired: low_hit_rate"])
      yield* TestClock.adjust("10 seconds")
      assert.isTrue((yield* snapshot).alerts.low_hit_rate)
      // Enough hits to lift the window's rate above 85%: 600 / 700.
      const cache = yield* Cache.Cache
      yield* cache.set("hot", 1, { schema: Num })
      yield* gets(600, () => "hot")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(alertLines(lines, "low_hit_rate").length, 2)
      yield* TestClock.adjust("60 seconds")
      assert.deepStrictEqual(alertLines(lines, "low_hit_rate"), [
        "Warn: cache alert fired: low_hit_rate",
        "Info: cache alert cleared: low_hit_rate"
      ])
      assert.isFalse((yield* snapshot).alerts.low_hit_rate)
    }).pipe(withStats({}, MemoryStore.layer, lines))
  })

  it.effect("low_hit_rate judges the window, so an old burst of misses stops counting once it leaves it", () => {
    const lines: Array<Line> = []
    return Effect.gen(function* () {
      yield* gets(200, (i) => `miss${i}`)
      yield* TestClock.adjust("10 seconds")
      assert.isTrue((yield* snapshot).alerts.low_hit_rate)
      yield* TestClock.adjust("60 seconds")
      const s = yield* snapshot
      assert.isFalse(s.alerts.low_hit_rate)
      // The cumulative rate still remembers the misses.
      assert.strictEqual(s.hit_rate, 0)
      assert.strictEqual(s.window.lookups, 0)
      assert.deepStrictEqual(alertLines(lines, "low_hit_rate"), [
        "Warn: cache alert fired: low_hit_rate",
        "Info: cache alert cleared: low_hit_rate"
      ])
    }).pipe(withStats({}, MemoryStore.layer, lines))
  })

  it.effect("high_memory fires above 90% of the limit and not at it", () =>
    Effect.gen(function* () {
      const memory = { used: 900, limit: 1000 }
      const lines: Array<Line> = []
      yield* Effect.gen(function* () {
        assert.isFalse((yield* snapshot).alerts.high_memory)
        memory.used = 901
        yield* TestClock.adjust("10 seconds")
        assert.isTrue((yield* snapshot).alerts.high_memory)
        memory.used = 100
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(alertLines(lines, "high_memory"), [
          "Warn: cache alert fired: high_memory",
          "Info: cache alert cleared: high_memory"
        ])
      }).pipe(withStats({}, storeWithMemory(memory), lines))
    })
  )

  it.effect("store_down follows PING: fires when the store stops answering and clears when it answers again", () => {
    const lines: Array<Line> = []
    return Effect.gen(function* () {
      const control = yield* FlakyStore.FlakyControl
      yield* control.setDown(true)
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("10 seconds")
      const down = yield* snapshot
      assert.isTrue(down.alerts.store_down)
      assert.isFalse(down.store_up)
      // The last INFO read while the store answered is kept.
      assert.strictEqual(down.store, "memory")
      yield* control.setDown(false)
      yield* TestClock.adjust("10 seconds")
      assert.isTrue((yield* snapshot).store_up)
      assert.deepStrictEqual(alertLines(lines, "store_down"), [
        "Warn: cache alert fired: store_down",
        "Info: cache alert cleared: store_down"
      ])
    }).pipe(withStats({}, FlakyStore.layer(MemoryStore.layer), lines))
  })

  it.effect("high_error_rate fires when degraded reads exceed 1% of the window's operations", () => {
    const lines: Array<Line> = []
    return Effect.gen(function* () {
      const control = yield* FlakyStore.FlakyControl
      yield* gets(1000, () => "k")
      assert.isFalse((yield* snapshot).alerts.high_error_rate)
      yield* control.setDown(true)
      // 11 degraded reads out of 1011 operations: just over 1%.
      yield* gets(11, () => "k")
      yield* control.setDown(false)
      const s = yield* snapshot
      assert.strictEqual(s.window.errors, 11)
      assert.strictEqual(s.window.operations, 1011)
      assert.isTrue(s.alerts.high_error_rate)
      // The counters' baseline is the newest evaluation at least a window old: the errors age out within
      // window + evaluateEvery.
      yield* TestClock.adjust("70 seconds")
      assert.isFalse((yield* snapshot).alerts.high_error_rate)
      assert.deepStrictEqual(alertLines(lines, "high_error_rate"), [
        "Warn: cache alert fired: high_error_rate",
        "Info: cache alert cleared: high_error_rate"
      ])
    }).pipe(withStats({}, FlakyStore.layer(MemoryStore.layer), lines))
  })
})

describe("Stats.prometheusText", () => {
  it.effect("renders the cache metrics with HELP and TYPE, counters ending in _total, gauges from the store", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("a", 1, { schema: Num })
      yield* gets(3, () => "a")
      yield* gets(1, () => "b")
      const text = yield* Stats.prometheusText
      const lines = text.trimEnd().split("\n")
      const types = new Map<string, string>()
      for (const line of lines) {
        const declared = /^# TYPE (\S+) (counter|gauge|histogram|summary)$/.exec(line)
        if (declared !== null) types.set(declared[1]!, declared[2]!)
      }
      // Every sample belongs to a family declared before it.
      for (const line of lines.filter((l) => !l.startsWith("#"))) {
        const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
        assert.isNotNull(match, line)
        const family = match![1]!.replace(/_(bucket|sum|count)$/, "")
        assert.isTrue(types.has(match![1]!) || types.get(family) === "histogram", line)
        assert.isFalse(Number.isNaN(Number(match![3]!.replace("+Inf", "Infinity"))), line)
      }
      for (const [name, type] of types) if (type === "counter") assert.match(name, /_total$/)
      const expected: Record<string, string> = {
        cache_hits_total: "counter",
        cache_misses_total: "counter",
        cache_l1_hits_total: "counter",
        cache_l1_misses_total: "counter",
        cache_l1_entries: "gauge",
        cache_stale_answers_total: "counter",
        cache_background_refreshes_total: "counter",
        cache_negative_hits_total: "counter",
        cache_load_timeouts_total: "counter",
        cache_evictions_total: "counter",
        cache_hit_rate: "gauge",
        cache_keys: "gauge",
        cache_memory_used_bytes: "gauge",
        cache_memory_limit_bytes: "gauge",
        cache_operations_per_second: "gauge",
        cache_store_up: "gauge",
        cache_alert: "gauge",
        cache_operation_duration_ms: "histogram"
      }
      for (const [name, type] of Object.entries(expected)) assert.strictEqual(types.get(name), type, name)
      assert.include(text, "# HELP cache_hits_total ")
      assert.include(lines, "cache_hits_total 3")
      assert.include(lines, "cache_misses_total 1")
      assert.include(lines, "cache_l1_hits_total 0", "no L1 configured")
      assert.include(lines, "cache_stale_answers_total 0", "no fail-safe configured")
      assert.include(text, "# HELP cache_negative_hits_total ")
      assert.include(lines, "cache_hit_rate 0.75")
      assert.include(lines, "cache_keys 1")
      assert.include(lines, "cache_store_up 1")
      assert.include(lines, 'cache_alert{alert="store_down"} 0')
      assert.include(lines, 'cache_operation_duration_ms_count{operation="get"} 4')
      assert.include(lines, 'cache_operation_duration_ms_bucket{operation="set",le="+Inf"} 1')
    }).pipe(withStats())
  )

  it.effect("reports the L1's hits, misses, entries and bytes in the snapshot and in /metrics", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("a", 1, { schema: Num })
      for (let i = 0; i < 3; i++) yield* cache.get("a", Num)
      const s = yield* snapshot
      assert.strictEqual(s.cache.l1_hits, 2)
      assert.strictEqual(s.cache.l1_misses, 1)
      assert.strictEqual(s.cache.l1_entries, 1)
      assert.strictEqual(s.cache.l1_bytes, 1)
      assert.strictEqual(s.hits, 3)
      const lines = (yield* Stats.prometheusText).split("\n")
      assert.include(lines, "cache_l1_hits_total 2")
      assert.include(lines, "cache_l1_misses_total 1")
      assert.include(lines, "cache_l1_entries 1")
    }).pipe(
      Effect.provide(
        Layer.fresh(
          Stats.layerInstrumented({ instanceId: "test-1" }).pipe(
            Layer.provideMerge(Cache.layer({ l1: { maxEntries: 10 } }).pipe(Layer.provideMerge(MemoryStore.layer)))
          )
        )
      ),
      Effect.provide(capture([])),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("reports the fail-safe family's counters in the snapshot and in /metrics", () =>
    Effect.gen(function* () {
      const s = yield* snapshot
      assert.strictEqual(s.cache.stale_answers, 4)
      assert.strictEqual(s.cache.background_refreshes, 3)
      assert.strictEqual(s.cache.negative_hits, 2)
      assert.strictEqual(s.cache.load_timeouts, 1)
      const lines = (yield* Stats.prometheusText).split("\n")
      assert.include(lines, "cache_stale_answers_total 4")
      assert.include(lines, "cache_background_refreshes_total 3")
      assert.include(lines, "cache_negative_hits_total 2")
      assert.include(lines, "cache_load_timeouts_total 1")
    }).pipe(
      Effect.provide(
        Layer.fresh(
          Stats.layerInstrumented({ instanceId: "test-1" }).pipe(
            Layer.provideMerge(
              // The cache's own counters, as its fail-safe, eager refresh, negative entries and timeouts count them.
              Layer.effect(
                Cache.Cache,
                Effect.map(Cache.make(), (cache) =>
                  Cache.Cache.of({
                    ...cache,
                    stats: Effect.map(cache.stats, (stats) => ({
                      ...stats,
                      staleAnswers: 4,
                      backgroundRefreshes: 3,
                      negativeHits: 2,
                      loadTimeouts: 1
                    }))
                  })
                )
              ).pipe(Layer.provideMerge(MemoryStore.layer))
            )
          )
        )
      ),
      Effect.provide(capture([])),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("exposes the alerts as 0/1 gauges, and removes its series when the layer closes", () =>
    Effect.gen(function* () {
      const registry = new Map()
      const alertValue = (alert: string) =>
        Metric.value(Metric.withAttributes(Stats.metrics.alert, { alert })).pipe(
          Effect.provideService(Metric.MetricRegistry, registry)
        )
      yield* Effect.gen(function* () {
        const control = yield* FlakyStore.FlakyControl
        yield* control.setDown(true)
        yield* Stats.Stats.use((stats) => stats.evaluate)
        assert.strictEqual((yield* alertValue("store_down")).value, 1)
        assert.strictEqual((yield* alertValue("low_hit_rate")).value, 0)
      }).pipe(
        Effect.provide(
          Layer.fresh(
            Stats.layerInstrumented({ instanceId: "test-1" }).pipe(
              Layer.provideMerge(Cache.layer().pipe(Layer.provideMerge(FlakyStore.layer(MemoryStore.layer))))
            )
          )
        ),
        Effect.provide(Logger.layer([])),
        Effect.provideService(Metric.MetricRegistry, registry)
      )
      const left = yield* Metric.snapshot.pipe(Effect.provideService(Metric.MetricRegistry, registry))
      assert.deepStrictEqual(
        left.filter((metric) => metric.id.startsWith("cache_")).map((metric) => metric.id),
        []
      )
    })
  )
})
