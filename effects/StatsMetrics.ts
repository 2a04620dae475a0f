/**
 * The Prometheus metrics of the stats, as Effect `Metric`s, and their registration. Nothing is pushed on the hot
 * path: each series is registered with a hook that reads the last refreshed snapshot (or the recorder's histogram)
 * when the registry is snapshotted, and every registration is removed when the registering scope closes.
 */
import { Effect, Metric, type Scope } from "effect"
import { durationBoundaries, type Recorder } from "./internal/Recorder.ts"
import { alertNames, operations, type StatsSnapshot } from "./StatsSnapshot.ts"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })
const gauge = (name: string, description: string) => Metric.gauge(name, { description })

/** The metrics the stats export (read from the last refresh at scrape time). */
export const metrics = {
  hits: counter("cache_hits_total", "lookups answered from the cache"),
  misses: counter("cache_misses_total", "lookups not answered from the cache"),
  l1Hits: counter("cache_l1_hits_total", "lookups the in-process L1 answered without the store"),
  l1Misses: counter("cache_l1_misses_total", "lookups the in-process L1 did not answer"),
  l1Entries: gauge("cache_l1_entries", "entries in the in-process L1"),
  l1Bytes: gauge("cache_l1_bytes", "bytes of JSON text in the in-process L1"),
  loads: counter("cache_loads_total", "loads run by getOrLoad and getMany"),
  loadFailures: counter("cache_load_failures_total", "loads that failed"),
  fills: counter("cache_fills_total", "loaded values written back"),
  fencedFills: counter("cache_fenced_fills_total", "fills refused because the key was invalidated while loading"),
  decodeFailures: counter("cache_decode_failures_total", "stored entries that no longer decoded"),
  degradedReads: counter("cache_degraded_reads_total", "reads answered without the store because it failed"),
  failedWrites: counter("cache_failed_writes_total", "writes and deletes that failed soft"),
  staleAnswers: counter(
    "cache_stale_answers_total",
    "answers of a stale copy while the source failed, was slow or throttled"
  ),
  backgroundRefreshes: counter(
    "cache_background_refreshes_total",
    "loads run in the background after the caller had its answer (eager refresh, soft timeout)"
  ),
  negativeHits: counter(
    "cache_negative_hits_total",
    "lookups answered not found from a negative entry, without the source"
  ),
  loadTimeouts: counter("cache_load_timeouts_total", "loads abandoned at the hard timeout"),
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

/**
 * Registers every metric in the current registry, read from `latest()` and `recorder` at scrape time; the
 * registrations go away with the scope.
 */
export const register = Effect.fnUntraced(function* (
  latest: () => StatsSnapshot,
  recorder: Recorder
): Effect.fn.Return<void, never, Scope.Scope> {
  const context = yield* Effect.context<never>()
  const s = latest
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
    counterOf(metrics.l1Hits, () => s().cache.l1_hits),
    counterOf(metrics.l1Misses, () => s().cache.l1_misses),
    gaugeOf(metrics.l1Entries, () => s().cache.l1_entries),
    gaugeOf(metrics.l1Bytes, () => s().cache.l1_bytes),
    counterOf(metrics.loads, () => s().cache.loads),
    counterOf(metrics.loadFailures, () => s().cache.load_failures),
    counterOf(metrics.fills, () => s().cache.fills),
    counterOf(metrics.fencedFills, () => s().cache.fenced_fills),
    counterOf(metrics.decodeFailures, () => s().cache.decode_failures),
    counterOf(metrics.degradedReads, () => s().cache.degraded_reads),
    counterOf(metrics.failedWrites, () => s().cache.failed_writes),
    counterOf(metrics.staleAnswers, () => s().cache.stale_answers),
    counterOf(metrics.backgroundRefreshes, () => s().cache.background_refreshes),
    counterOf(metrics.negativeHits, () => s().cache.negative_hits),
    counterOf(metrics.loadTimeouts, () => s().cache.load_timeouts),
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
})
