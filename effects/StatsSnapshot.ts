/**
 * The shape of a cache instance's stats, as Schemas: the snapshot the REST API answers at `/api/v1/cache/stats`
 * and `PromiseCache.stats()` resolves with (the seed's fields first, then health, latency, counters, alerts), and
 * the alert thresholds. It holds no state and imports only `effect`, so clients can decode a snapshot without the
 * stats machinery.
 */
import { Schema } from "effect"

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

/** Every operation, in the order the snapshot lists them. */
export const operations: ReadonlyArray<Operation> = Operation.literals

/** Latency percentiles of one operation in milliseconds, over its most recent samples (0 with no samples). */
export const LatencyPercentiles = Schema.Struct({
  p50: Schema.Finite,
  p95: Schema.Finite,
  p99: Schema.Finite,
  /** How many recent samples the percentiles are taken over (at most `latencySamples`). */
  samples: Schema.Finite
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

/** Every alert, in the order the snapshot lists them. */
export const alertNames: ReadonlyArray<AlertName> = ["low_hit_rate", "high_memory", "high_error_rate", "store_down"]

/** What the sync consumer did, when the instance runs one. */
export const SyncSnapshot = Schema.Struct({
  received: Schema.Finite,
  applied: Schema.Finite,
  duplicates: Schema.Finite,
  own: Schema.Finite,
  malformed: Schema.Finite,
  /** Events the store could not apply yet, left unacknowledged to be redelivered. */
  deferred: Schema.Finite,
  flushes: Schema.Finite
})
export type SyncSnapshot = typeof SyncSnapshot.Type

/** The cache's own counters since it started. */
export const CacheCounters = Schema.Struct({
  loads: Schema.Finite,
  load_failures: Schema.Finite,
  shared_loads: Schema.Finite,
  fills: Schema.Finite,
  fenced_fills: Schema.Finite,
  decode_failures: Schema.Finite,
  degraded_reads: Schema.Finite,
  failed_writes: Schema.Finite,
  breaker: Schema.Literals(["closed", "open", "probing"]),
  breaker_opened: Schema.Finite,
  /** Keys to invalidate when the store recovers (0 when `flush_on_recovery`). */
  pending_invalidations: Schema.Finite,
  /** Too many keys failed to be remembered one by one: the whole store is flushed when it recovers. */
  flush_on_recovery: Schema.Boolean,
  /** Lookups the in-process L1 answered without the store (0 without an L1); they count as hits too. */
  l1_hits: Schema.Finite,
  /** Lookups the L1 did not answer. */
  l1_misses: Schema.Finite,
  /** Entries and bytes of JSON text in the L1 now. */
  l1_entries: Schema.Finite,
  l1_bytes: Schema.Finite,
  /** Answers of a stale copy (fail-safe after a failed or timed-out load, a soft timeout, a throttled retry). */
  stale_answers: Schema.Finite,
  /** Loads run in the background after the caller had its answer: eager refreshes, loads past a soft timeout. */
  background_refreshes: Schema.Finite,
  /** Lookups answered "not found" from a negative entry, without calling the source. */
  negative_hits: Schema.Finite,
  /** Loads abandoned at the hard timeout. */
  load_timeouts: Schema.Finite
})
export type CacheCounters = typeof CacheCounters.Type

/** The rates the alerts are computed from: the window's operations, lookups and errors. */
export const WindowSnapshot = Schema.Struct({
  /** The span the numbers cover: the configured window, or less while the instance is younger than it. */
  seconds: Schema.Finite,
  operations: Schema.Finite,
  lookups: Schema.Finite,
  hit_rate: Schema.Finite,
  /** Degraded reads plus failed writes. */
  errors: Schema.Finite,
  error_rate: Schema.Finite
})
export type WindowSnapshot = typeof WindowSnapshot.Type

/** The stats of an instance: the seed's fields first, then health, latency, counters and alerts. */
export const StatsSnapshot = Schema.Struct({
  instance_id: Schema.String,
  /** Keys in the store (Redis: DBSIZE). This and the other store fields keep their last value while it is down. */
  total_keys: Schema.Finite,
  memory_used: Schema.Finite,
  /** Bytes; 0 means unlimited (or a store without a limit, such as memory). */
  memory_limit: Schema.Finite,
  /** `memory_used / memory_limit * 100`, 0 without a limit. */
  memory_usage_percent: Schema.Finite,
  hits: Schema.Finite,
  misses: Schema.Finite,
  /** `hits / (hits + misses)` since start, a fraction in 0..1; 0 before any lookup. */
  hit_rate: Schema.Finite,
  evictions: Schema.Finite,
  /** Operations through the instrumented cache over the sliding window, per second. */
  operations_per_second: Schema.Finite,
  uptime_seconds: Schema.Finite,
  /** The store's kind by its last INFO; `redis` if it has never answered (a memory store always answers). */
  store: Schema.Literals(["redis", "memory"]),
  store_up: Schema.Boolean,
  tag_index_entries: Schema.Finite,
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
