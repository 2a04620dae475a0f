/**
 * Monitoring of a cache instance: a `snapshot` with the seed's stats fields (keys, memory, hits, misses, hit rate,
 * evictions, operations per second, uptime) plus store health, per-operation latency percentiles, the cache's own
 * counters and the sync consumer's; the same numbers as Prometheus metrics; and four alerts (low hit rate, high
 * memory, high error rate, store down) evaluated by a background fiber that logs each transition exactly once.
 *
 * Operation counts and latencies come from `layerInstrumented`, a `Cache` that delegates to the real one and
 * records each call (two `Clock` reads, a few array writes; about 0.6 µs a call); a program that does not use it
 * pays nothing. All time is read from Effect's monotonic `Clock`, so `TestClock` drives the sliding window, the
 * uptime and the evaluator.
 *
 * The rate alerts judge the recent past, not the whole life of the instance: operations are counted per second
 * over the window; hits, misses and errors (degraded reads + failed writes, the cache's own counters) are
 * differences against the newest evaluation at least a window old, so they cover between one window and one
 * window plus `evaluateEvery`. Every evaluation (the background one, `snapshot`, `prometheusText`) compares the
 * alerts with the previous ones and logs a change once: a warning when one fires, an info when it clears.
 */
import { Clock, Context, Duration, Effect, Layer, Metric, Option, Schedule, Schema, Semaphore } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { CacheStore, type StoreInfo } from "../src/CacheStore.ts"
import { Cache, type CacheStats } from "./Cache.ts"
import { SyncConsumer, type SyncStats } from "./SyncConsumer.ts"

/** The operations whose count and latency are recorded; structured reads and writes are grouped. */
export const Operation = Schema.Literals([
  "get",
  "set",
  "delete",
  "getOrLoad",
  "getMany",
  "invalidate",
  "read",
  "write"
])
export type Operation = typeof Operation.Type

const operations: ReadonlyArray<Operation> = Operation.literals

/** Latency percentiles of one operation in milliseconds, over its most recent samples (0 with no samples). */
export const LatencyPercentiles = Schema.Struct({
  p50: Schema.Number,
  p95: Schema.Number,
  p99: Schema.Number,
  /** How many recent samples the percentiles are taken over (at most `latencySamples`). */
  samples: Schema.Number
})
export type LatencyPercentiles = typeof LatencyPercentiles.Type

/** Which alert conditions hold. */
export const Alerts = Schema.Struct({
  /** The hit rate over the window is below the threshold (once the window holds enough lookups). */
  low_hit_rate: Schema.Boolean,
  /** The store uses more than the threshold fraction of its memory limit. */
  high_memory: Schema.Boolean,
  /** Degraded reads and failed writes exceed the threshold fraction of the window's operations. */
  high_error_rate: Schema.Boolean,
  /** The store does not answer PING. */
  store_down: Schema.Boolean
})
export type Alerts = typeof Alerts.Type
/** The name of an alert. */
export type AlertName = keyof Alerts

const alertNames: ReadonlyArray<AlertName> = ["low_hit_rate", "high_memory", "high_error_rate", "store_down"]

/** What the sync consumer did, when the instance runs one. */
export const SyncSnapshot = Schema.Struct({
  received: Schema.Number,
  applied: Schema.Number,
  duplicates: Schema.Number,
  own: Schema.Number,
  malformed: Schema.Number,
  flushes: Schema.Number
})

/** The cache's own counters since it started. */
export const CacheCounters = Schema.Struct({
  loads: Schema.Number,
  load_failures: Schema.Number,
  shared_loads: Schema.Number,
  fills: Schema.Number,
  fenced_fills: Schema.Number,
  decode_failures: Schema.Number,
  degraded_reads: Schema.Number,
  failed_writes: Schema.Number,
  breaker: Schema.Literals(["closed", "open", "probing"]),
  breaker_opened: Schema.Number,
  /** Keys to invalidate when the store recovers (0 when `flush_on_recovery`). */
  pending_invalidations: Schema.Number,
  /** Too many keys failed to be remembered one by one: the whole store is flushed when it recovers. */
  flush_on_recovery: Schema.Boolean
})

/** The rates the alerts are computed from: the window's operations, lookups and errors. */
export const WindowSnapshot = Schema.Struct({
  /** The span the numbers cover: the configured window, or less while the instance is younger than it. */
  seconds: Schema.Number,
  operations: Schema.Number,
  lookups: Schema.Number,
  hit_rate: Schema.Number,
  /** Degraded reads plus failed writes. */
  errors: Schema.Number,
  error_rate: Schema.Number
})

/** The stats of an instance: the seed's fields first, then health, latency, counters and alerts. */
export const StatsSnapshot = Schema.Struct({
  instance_id: Schema.String,
  /** Keys in the store (Redis: DBSIZE). This and the other store fields keep their last value while it is down. */
  total_keys: Schema.Number,
  memory_used: Schema.Number,
  /** Bytes; 0 means unlimited (or a store without a limit, such as memory). */
  memory_limit: Schema.Number,
  /** `memory_used / memory_limit * 100`, 0 without a limit. */
  memory_usage_percent: Schema.Number,
  hits: Schema.Number,
  misses: Schema.Number,
  /** `hits / (hits + misses)` since start, a fraction in 0..1; 0 before any lookup. */
  hit_rate: Schema.Number,
  evictions: Schema.Number,
  /** Operations through the instrumented cache over the sliding window, per second. */
  operations_per_second: Schema.Number,
  uptime_seconds: Schema.Number,
  /** The store's kind by its last INFO; `redis` if it has never answered (a memory store always answers). */
  store: Schema.Literals(["redis", "memory"]),
  store_up: Schema.Boolean,
  tag_index_entries: Schema.Number,
  latency_ms: Schema.Struct({
    get: LatencyPercentiles,
    set: LatencyPercentiles,
    delete: LatencyPercentiles,
    getOrLoad: LatencyPercentiles,
    getMany: LatencyPercentiles,
    invalidate: LatencyPercentiles,
    read: LatencyPercentiles,
    write: LatencyPercentiles
  }),
  window: WindowSnapshot,
  cache: CacheCounters,
  /** Present when the instance runs a sync consumer. */
  sync: Schema.optionalKey(SyncSnapshot),
  alerts: Alerts
})
export type StatsSnapshot = typeof StatsSnapshot.Type

/** When the alerts fire. */
export interface AlertThresholds {
  /** `low_hit_rate` fires below this hit rate. Default 0.85. */
  readonly hitRate: number
  /** `high_memory` fires above this fraction of the memory limit. Default 0.9. */
  readonly memoryRatio: number
  /** `high_error_rate` fires above this fraction of failed or degraded operations. Default 0.01. */
  readonly errorRate: number
  /** `low_hit_rate` is evaluated only once the window holds this many lookups. Default 100. */
  readonly minLookups: number
  /** `high_error_rate` is evaluated only once the window holds this many operations. Default 100. */
  readonly minOperations: number
}

/** The default thresholds: the seed's 85% hit rate, 90% memory, 1% errors. */
export const defaultThresholds: AlertThresholds = {
  hitRate: 0.85,
  memoryRatio: 0.9,
  errorRate: 0.01,
  minLookups: 100,
  minOperations: 100
}

/** How stats are kept. */
export interface StatsOptions {
  /** This instance's identity, reported as `instance_id`. */
  readonly instanceId: string
  /** The sliding window of `operations_per_second` and of the rate alerts. Default 60 s. */
  readonly window?: Duration.Input | undefined
  /** How often the background fiber refreshes the gauges and evaluates the alerts. Default 10 s. */
  readonly evaluateEvery?: Duration.Input | undefined
  /** Recent latencies kept per operation for the percentiles. Default 1024. */
  readonly latencySamples?: number | undefined
  /** How long PING and INFO may take before the store counts as down. Default 2 s. */
  readonly probeTimeout?: Duration.Input | undefined
  readonly thresholds?: Partial<AlertThresholds> | undefined
}

/** The stats service. */
export class Stats extends Context.Service<
  Stats,
  {
    /** Fresh stats: reads the cache's counters, pings the store and reads its INFO; evaluates the alerts. */
    readonly snapshot: Effect.Effect<StatsSnapshot>
    /** Refreshes every gauge, then renders the whole metric registry in the Prometheus text format. */
    readonly prometheusText: Effect.Effect<string>
    /** Records one operation that took `durationMs`, for callers that time work outside `layerInstrumented`. */
    readonly record: (operation: Operation, durationMs: number) => Effect.Effect<void>
    /** Evaluates the alerts now (the background fiber does it every `evaluateEvery`); logs transitions. */
    readonly evaluate: Effect.Effect<Alerts>
  }
>()("embedded-cache/Stats") {}

/** Upper bounds of the `cache_operation_duration_ms` histogram buckets, in milliseconds. */
export const durationBoundaries: ReadonlyArray<number> = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
]

/** The counts and latencies of one operation: a ring of recent samples and cumulative histogram buckets. */
class OperationStats {
  readonly ring: Float64Array
  next = 0
  filled = 0
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly buckets: Float64Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE

  constructor(samples: number) {
    this.ring = new Float64Array(samples)
    this.buckets = new Float64Array(durationBoundaries.length + 1)
  }

  add(ms: number): void {
    this.ring[this.next] = ms
    this.next = this.next + 1 === this.ring.length ? 0 : this.next + 1
    if (this.filled < this.ring.length) this.filled++
    let i = 0
    while (i < durationBoundaries.length && ms > durationBoundaries[i]!) i++
    this.buckets[i]!++
    this.count++
    this.sum += ms
    if (ms < this.min) this.min = ms
    if (ms > this.max) this.max = ms
  }

  percentiles(): LatencyPercentiles {
    const n = this.filled
    if (n === 0) return { p50: 0, p95: 0, p99: 0, samples: 0 }
    // A copy (slice) sorted numerically, as typed arrays sort.
    // oxlint-disable-next-line unicorn/no-array-sort
    const sorted = this.ring.slice(0, n).sort()
    // Nearest rank: the smallest sample with at least p of the samples at or below it.
    const at = (p: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))]!
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), samples: n }
  }

  histogram(): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulative = 0
    for (let i = 0; i < durationBoundaries.length; i++) {
      cumulative += this.buckets[i]!
      buckets.push([durationBoundaries[i]!, cumulative])
    }
    return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
  }
}

/**
 * The hot-path recorder: per-operation stats and a ring of per-second operation counts. Time is monotonic
 * nanoseconds from the `Clock` (`TestClock` moves it with `adjust`).
 */
class Recorder {
  readonly byOperation: Record<Operation, OperationStats>
  readonly windowSeconds: number
  /** Operations counted in each second; `stamps` says which second a slot currently holds. */
  readonly counts: Float64Array
  readonly stamps: Float64Array

  constructor(windowSeconds: number, samples: number) {
    this.windowSeconds = windowSeconds
    this.counts = new Float64Array(windowSeconds)
    this.stamps = new Float64Array(windowSeconds).fill(-1)
    const byOperation = {} as Record<Operation, OperationStats>
    for (const operation of operations) byOperation[operation] = new OperationStats(samples)
    this.byOperation = byOperation
  }

  /** Counts one operation ending at `endNanos` that took `ms`. */
  add(stats: OperationStats, ms: number, endNanos: bigint): void {
    stats.add(ms)
    const second = Math.floor(Number(endNanos) / 1e9)
    const slot = second % this.windowSeconds
    if (this.stamps[slot] !== second) {
      this.stamps[slot] = second
      this.counts[slot] = 0
    }
    this.counts[slot]!++
  }

  /** Operations in the `windowSeconds` seconds ending with the current one. */
  inWindow(nowNanos: bigint): number {
    const now = Math.floor(Number(nowNanos) / 1e9)
    let total = 0
    for (let i = 0; i < this.windowSeconds; i++) {
      const stamp = this.stamps[i]!
      if (stamp > now - this.windowSeconds && stamp <= now) total += this.counts[i]!
    }
    return total
  }
}

/** The cache's cumulative counters at one refresh, the baselines of the window's rates. */
interface Sample {
  readonly atMs: number
  readonly hits: number
  readonly misses: number
  readonly errors: number
}

/** The last refreshed numbers, read by the metric hooks at scrape time. */
interface Latest {
  snapshot: StatsSnapshot
}

const emptyInfo: StoreInfo = { kind: "redis", keys: 0, usedMemory: 0, maxMemory: 0, evictedKeys: 0, tagIndexEntries: 0 }

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })
const gauge = (name: string, description: string) => Metric.gauge(name, { description })

/** The metrics this module exports (read from the last refresh at scrape time). */
export const metrics = {
  hits: counter("cache_hits_total", "lookups answered from the cache"),
  misses: counter("cache_misses_total", "lookups not answered from the cache"),
  loads: counter("cache_loads_total", "loads run by getOrLoad and getMany"),
  loadFailures: counter("cache_load_failures_total", "loads that failed"),
  fills: counter("cache_fills_total", "loaded values written back"),
  fencedFills: counter("cache_fenced_fills_total", "fills refused because the key was invalidated while loading"),
  decodeFailures: counter("cache_decode_failures_total", "stored entries that no longer decoded"),
  degradedReads: counter("cache_degraded_reads_total", "reads answered without the store because it failed"),
  failedWrites: counter("cache_failed_writes_total", "writes and deletes that failed soft"),
  breakerOpened: counter("cache_breaker_opened_total", "times the circuit breaker opened"),
  evictions: counter("cache_evictions_total", "keys the store evicted under memory pressure"),
  hitRate: gauge("cache_hit_rate", "hits / (hits + misses) since start, 0..1"),
  keys: gauge("cache_keys", "keys in the store"),
  memoryUsed: gauge("cache_memory_used_bytes", "memory the store uses"),
  memoryLimit: gauge("cache_memory_limit_bytes", "memory limit of the store, 0 when unlimited"),
  operationsPerSecond: gauge("cache_operations_per_second", "operations per second over the sliding window"),
  storeUp: gauge("cache_store_up", "1 when the store answers PING"),
  breakerOpen: gauge("cache_breaker_open", "1 while the circuit breaker is open or probing"),
  uptime: gauge("cache_uptime_seconds", "seconds since the stats started"),
  tagIndexEntries: gauge("cache_tag_index_entries", "members across all tag indexes"),
  alert: gauge("cache_alert", "1 while the alert condition holds"),
  duration: Metric.histogram("cache_operation_duration_ms", {
    description: "duration of cache operations in milliseconds",
    boundaries: durationBoundaries
  })
}

const ratio = (part: number, whole: number) => (whole > 0 ? part / whole : 0)

/** Builds the stats and the recorder that `layerInstrumented` feeds. */
const makeParts = (options: StatsOptions) =>
  Effect.gen(function* () {
    const cache = yield* Cache
    const store = yield* CacheStore
    const consumer = Option.getOrUndefined(yield* Effect.serviceOption(SyncConsumer))
    const clock = yield* Clock.Clock
    const windowSeconds = Math.max(1, Math.round(Duration.toSeconds(options.window ?? "60 seconds")))
    const windowMs = windowSeconds * 1000
    const probeTimeout = options.probeTimeout ?? "2 seconds"
    const thresholds: AlertThresholds = { ...defaultThresholds, ...options.thresholds }
    const recorder = new Recorder(windowSeconds, Math.max(1, options.latencySamples ?? 1024))
    const nowMs = () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6
    const startedMs = nowMs()
    const samples: Array<Sample> = []
    let lastInfo: StoreInfo | undefined
    const alertState: Record<AlertName, boolean> = {
      low_hit_rate: false,
      high_memory: false,
      high_error_rate: false,
      store_down: false
    }
    const lock = yield* Semaphore.make(1)
    const latest: Latest = { snapshot: undefined as unknown as StatsSnapshot }

    const probe = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Option.Option<A>> =>
      effect.pipe(Effect.timeoutOption(probeTimeout), Effect.orElseSucceed(Option.none<A>))

    /** The window's deltas of the cache's counters, against the newest sample at least a window old. */
    const windowed = (now: number, current: Sample) => {
      if (samples.length === 0 || current.atMs - samples[samples.length - 1]!.atMs >= 1000) samples.push(current)
      let base = 0
      for (let i = samples.length - 1; i >= 0; i--) {
        if (samples[i]!.atMs <= now - windowMs) {
          base = i
          break
        }
      }
      if (base > 0) samples.splice(0, base)
      const baseline = samples[0]!
      return {
        hits: current.hits - baseline.hits,
        misses: current.misses - baseline.misses,
        errors: current.errors - baseline.errors
      }
    }

    const transition = (name: AlertName, firing: boolean, detail: Record<string, unknown>) => {
      if (alertState[name] === firing) return Effect.void
      alertState[name] = firing
      const log = firing
        ? Effect.logWarning(`cache alert fired: ${name}`)
        : Effect.logInfo(`cache alert cleared: ${name}`)
      return log.pipe(Effect.annotateLogs({ alert: name, instance_id: options.instanceId, ...detail }))
    }

    /** Reads everything, evaluates the alerts (logging transitions) and stores the result for the metric hooks. */
    const refresh: Effect.Effect<StatsSnapshot> = lock.withPermits(1)(
      Effect.gen(function* () {
        const counters: CacheStats = yield* cache.stats
        const up = Option.isSome(yield* probe(store.ping))
        const info = up ? yield* probe(store.info) : Option.none<StoreInfo>()
        if (Option.isSome(info)) lastInfo = info.value
        const known = lastInfo ?? emptyInfo
        const sync: SyncStats | undefined = consumer === undefined ? undefined : yield* consumer.stats
        const nowNanos = clock.monotonicTimeNanosUnsafe()
        const now = Number(nowNanos) / 1e6
        const errors = counters.degradedReads + counters.failedWrites
        const delta = windowed(now, { atMs: now, hits: counters.hits, misses: counters.misses, errors })
        const spanSeconds = Math.min(windowSeconds, Math.max(1, (now - startedMs) / 1000))
        const windowOps = recorder.inWindow(nowNanos)
        const lookups = delta.hits + delta.misses
        const denominator = Math.max(windowOps, lookups, delta.errors)
        const windowHitRate = ratio(delta.hits, lookups)
        const errorRate = ratio(delta.errors, denominator)
        const alerts: Alerts = {
          low_hit_rate: lookups >= thresholds.minLookups && windowHitRate < thresholds.hitRate,
          high_memory: known.maxMemory > 0 && known.usedMemory / known.maxMemory > thresholds.memoryRatio,
          high_error_rate: denominator >= thresholds.minOperations && errorRate > thresholds.errorRate,
          store_down: !up
        }
        const snapshot: StatsSnapshot = {
          instance_id: options.instanceId,
          total_keys: known.keys,
          memory_used: known.usedMemory,
          memory_limit: known.maxMemory,
          memory_usage_percent: known.maxMemory > 0 ? (known.usedMemory / known.maxMemory) * 100 : 0,
          hits: counters.hits,
          misses: counters.misses,
          hit_rate: ratio(counters.hits, counters.hits + counters.misses),
          evictions: known.evictedKeys,
          operations_per_second: windowOps / spanSeconds,
          uptime_seconds: Math.floor((now - startedMs) / 1000),
          store: known.kind,
          store_up: up,
          tag_index_entries: known.tagIndexEntries,
          latency_ms: {
            get: recorder.byOperation.get.percentiles(),
            set: recorder.byOperation.set.percentiles(),
            delete: recorder.byOperation.delete.percentiles(),
            getOrLoad: recorder.byOperation.getOrLoad.percentiles(),
            getMany: recorder.byOperation.getMany.percentiles(),
            invalidate: recorder.byOperation.invalidate.percentiles(),
            read: recorder.byOperation.read.percentiles(),
            write: recorder.byOperation.write.percentiles()
          },
          window: {
            seconds: spanSeconds,
            operations: windowOps,
            lookups,
            hit_rate: windowHitRate,
            errors: delta.errors,
            error_rate: errorRate
          },
          cache: {
            loads: counters.loads,
            load_failures: counters.loadFailures,
            shared_loads: counters.sharedLoads,
            fills: counters.fills,
            fenced_fills: counters.fencedFills,
            decode_failures: counters.decodeFailures,
            degraded_reads: counters.degradedReads,
            failed_writes: counters.failedWrites,
            breaker: counters.breaker,
            breaker_opened: counters.breakerOpened,
            pending_invalidations: Number.isFinite(counters.pendingInvalidations) ? counters.pendingInvalidations : 0,
            flush_on_recovery: !Number.isFinite(counters.pendingInvalidations)
          },
          ...(sync === undefined ? {} : { sync: { ...sync } }),
          alerts
        }
        latest.snapshot = snapshot
        yield* transition("low_hit_rate", alerts.low_hit_rate, {
          hit_rate: windowHitRate,
          lookups,
          threshold: thresholds.hitRate
        })
        yield* transition("high_memory", alerts.high_memory, {
          memory_used: known.usedMemory,
          memory_limit: known.maxMemory,
          threshold: thresholds.memoryRatio
        })
        yield* transition("high_error_rate", alerts.high_error_rate, {
          error_rate: errorRate,
          errors: delta.errors,
          operations: denominator,
          threshold: thresholds.errorRate
        })
        yield* transition("store_down", alerts.store_down, { store: known.kind })
        return snapshot
      })
    )

    yield* refresh

    // The metrics read the last refresh when the registry is snapshotted: nothing is pushed on the hot path,
    // the counters are the cache's own totals, and the series go away with the layer.
    const context = yield* Effect.context<never>()
    const s = () => latest.snapshot
    const counterOf = (metric: Metric.Counter<number>, read: () => number) =>
      Metric.registerUnsafe(metric, context, {
        get: () => ({ count: read(), incremental: true }),
        update: () => {},
        modify: () => {}
      })
    const gaugeOf = (metric: Metric.Gauge<number>, read: () => number) =>
      Metric.registerUnsafe(metric, context, { get: () => ({ value: read() }), update: () => {}, modify: () => {} })
    const registrations = [
      counterOf(metrics.hits, () => s().hits),
      counterOf(metrics.misses, () => s().misses),
      counterOf(metrics.loads, () => s().cache.loads),
      counterOf(metrics.loadFailures, () => s().cache.load_failures),
      counterOf(metrics.fills, () => s().cache.fills),
      counterOf(metrics.fencedFills, () => s().cache.fenced_fills),
      counterOf(metrics.decodeFailures, () => s().cache.decode_failures),
      counterOf(metrics.degradedReads, () => s().cache.degraded_reads),
      counterOf(metrics.failedWrites, () => s().cache.failed_writes),
      counterOf(metrics.breakerOpened, () => s().cache.breaker_opened),
      counterOf(metrics.evictions, () => s().evictions),
      gaugeOf(metrics.hitRate, () => s().hit_rate),
      gaugeOf(metrics.keys, () => s().total_keys),
      gaugeOf(metrics.memoryUsed, () => s().memory_used),
      gaugeOf(metrics.memoryLimit, () => s().memory_limit),
      gaugeOf(metrics.operationsPerSecond, () => s().operations_per_second),
      gaugeOf(metrics.storeUp, () => (s().store_up ? 1 : 0)),
      gaugeOf(metrics.breakerOpen, () => (s().cache.breaker === "closed" ? 0 : 1)),
      gaugeOf(metrics.uptime, () => s().uptime_seconds),
      gaugeOf(metrics.tagIndexEntries, () => s().tag_index_entries),
      ...alertNames.map((name) =>
        gaugeOf(Metric.withAttributes(metrics.alert, { alert: name }), () => (s().alerts[name] ? 1 : 0))
      ),
      ...operations.map((operation) =>
        Metric.registerUnsafe(Metric.withAttributes(metrics.duration, { operation }), context, {
          get: () => recorder.byOperation[operation].histogram(),
          update: () => {},
          modify: () => {}
        })
      )
    ]
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const registration of registrations) registration.remove()
      })
    )

    const every = options.evaluateEvery ?? "10 seconds"
    yield* refresh.pipe(Effect.repeat(Schedule.spaced(every)), Effect.delay(every), Effect.forkScoped)

    const service = Stats.of({
      snapshot: refresh,
      prometheusText: Effect.andThen(refresh, PrometheusMetrics.format()),
      record: (operation, durationMs) =>
        Effect.sync(() => recorder.add(recorder.byOperation[operation], durationMs, clock.monotonicTimeNanosUnsafe())),
      evaluate: Effect.map(refresh, (snapshot) => snapshot.alerts)
    })
    return { service, recorder, clock }
  })

/**
 * A `Cache` that delegates to `inner` and records, per call, its operation and duration: one `Clock` read before,
 * one after (when it ends, however it ends). Members it does not know pass through untouched.
 */
const instrument = (inner: Cache["Service"], recorder: Recorder, clock: Clock.Clock): Cache["Service"] => {
  const timed = <A, E, R>(operation: Operation, run: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const stats = recorder.byOperation[operation]
    return Effect.suspend(() => {
      const start = clock.monotonicTimeNanosUnsafe()
      return Effect.flatMap(Effect.exit(run()), (exit) => {
        const end = clock.monotonicTimeNanosUnsafe()
        recorder.add(stats, Number(end - start) / 1e6, end)
        return exit
      })
    })
  }
  return Cache.of({
    ...inner,
    get: (key, schema) => timed("get", () => inner.get(key, schema)),
    set: (key, value, options) => timed("set", () => inner.set(key, value, options)),
    delete: (key) => timed("delete", () => inner.delete(key)),
    exists: (key) => timed("read", () => inner.exists(key)),
    ttl: (key) => timed("read", () => inner.ttl(key)),
    getOrLoad: (key, load, options) => timed("getOrLoad", () => inner.getOrLoad(key, load, options)),
    getMany: (keys, options) => timed("getMany", () => inner.getMany(keys, options)),
    read: (key) => timed("read", () => inner.read(key)),
    write: (key, value, options) => timed("write", () => inner.write(key, value, options)),
    hashSet: (key, fields, options) => timed("write", () => inner.hashSet(key, fields, options)),
    hashGet: (key, field) => timed("read", () => inner.hashGet(key, field)),
    setAdd: (key, members, options) => timed("write", () => inner.setAdd(key, members, options)),
    setHas: (key, member) => timed("read", () => inner.setHas(key, member)),
    sortedSetAdd: (key, members, options) => timed("write", () => inner.sortedSetAdd(key, members, options)),
    sortedSetRange: (key, start, stop) => timed("read", () => inner.sortedSetRange(key, start, stop)),
    listPush: (key, values, options) => timed("write", () => inner.listPush(key, values, options)),
    listRange: (key, start, stop) => timed("read", () => inner.listRange(key, start, stop)),
    invalidate: (target) => timed("invalidate", () => inner.invalidate(target))
  })
}

/**
 * The stats of the `Cache` and `CacheStore` in context (and of the `SyncConsumer`, when there is one), with the
 * alert evaluator running in the layer's scope. Operation counts and latencies come only from `record`; use
 * `layerInstrumented` to have every cache call recorded.
 */
export const layer = (options: StatsOptions): Layer.Layer<Stats, never, Cache | CacheStore> =>
  Layer.effect(
    Stats,
    Effect.map(makeParts(options), (parts) => parts.service)
  )

/**
 * `Stats` plus an instrumented `Cache` that records every call's operation and duration, built over the `Cache`
 * in context. Provide it on top of a cache composition, so that programs get the instrumented cache:
 * `Stats.layerInstrumented(options).pipe(Layer.provideMerge(CacheLayers.layerMemory()))`.
 */
export const layerInstrumented = (options: StatsOptions): Layer.Layer<Stats | Cache, never, Cache | CacheStore> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const parts = yield* makeParts(options)
      const inner = yield* Cache
      return Context.make(Stats, parts.service).pipe(Context.add(Cache, instrument(inner, parts.recorder, parts.clock)))
    })
  )

/** A fresh snapshot from the stats in context. */
export const snapshot = Stats.use((stats) => stats.snapshot)
/** The Prometheus text of the registry, gauges refreshed first, from the stats in context. */
export const prometheusText = Stats.use((stats) => stats.prometheusText)
