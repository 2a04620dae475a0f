/**
 * The pure half of a stats refresh: the baselines of the window's rates, and the snapshot (with its alerts) built
 * from one reading of the cache, the store and the recorder. No effects and no clock of its own: the caller passes
 * the time, so the same reading always gives the same snapshot.
 */
import type { StoreInfo } from "../../src/CacheStore.ts"
import type { CacheStats } from "../Cache.ts"
import type { AlertThresholds, StatsSnapshot } from "../StatsSnapshot.ts"
import type { SyncStats } from "../SyncConsumer.ts"
import type { Recorder } from "./Recorder.ts"

/** The cache's cumulative counters at one refresh. */
export interface Sample {
  readonly atMs: number
  readonly hits: number
  readonly misses: number
  readonly errors: number
}

/** What changed over the window. */
export interface Delta {
  readonly hits: number
  readonly misses: number
  readonly errors: number
}

/**
 * The samples the window's rates are differences against: one kept per second at most, and none older than the
 * newest one at least a window old.
 */
export class RateWindow {
  private readonly samples: Array<Sample> = []
  private readonly windowMs: number

  constructor(windowMs: number) {
    this.windowMs = windowMs
  }

  /** Adds `current` and answers its difference against the newest sample at least a window old (or the oldest). */
  delta(current: Sample): Delta {
    const samples = this.samples
    if (samples.length === 0 || current.atMs - samples[samples.length - 1]!.atMs >= 1000) samples.push(current)
    let base = 0
    for (let i = samples.length - 1; i >= 0; i--) {
      if (samples[i]!.atMs <= current.atMs - this.windowMs) {
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
}

/** One reading of everything a snapshot reports. */
export interface Reading {
  readonly instanceId: string
  readonly counters: CacheStats
  readonly up: boolean
  /** The store's last known INFO. */
  readonly info: StoreInfo
  readonly sync: SyncStats | undefined
  readonly nowMs: number
  readonly startedMs: number
  readonly windowSeconds: number
  /** Operations the recorder counted in the window. */
  readonly windowOps: number
  readonly delta: Delta
}

/** `part / whole`, 0 when `whole` is 0. */
export const ratio = (part: number, whole: number) => (whole > 0 ? part / whole : 0)

/** The window's numbers, from the reading. */
const windowOf = (reading: Reading) => {
  const { delta, windowOps } = reading
  const lookups = delta.hits + delta.misses
  const denominator = Math.max(windowOps, lookups, delta.errors)
  return {
    seconds: Math.min(reading.windowSeconds, Math.max(1, (reading.nowMs - reading.startedMs) / 1000)),
    operations: windowOps,
    lookups,
    hit_rate: ratio(delta.hits, lookups),
    errors: delta.errors,
    error_rate: ratio(delta.errors, denominator),
    /** What the error rate is a fraction of (not reported in the snapshot). */
    denominator
  }
}

/** The cache's counters in snake case; an infinite pending count means "flush when the store recovers". */
const countersOf = (counters: CacheStats): StatsSnapshot["cache"] => ({
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
  flush_on_recovery: !Number.isFinite(counters.pendingInvalidations),
  l1_hits: counters.l1Hits,
  l1_misses: counters.l1Misses,
  l1_entries: counters.l1Entries,
  l1_bytes: counters.l1Bytes,
  stale_answers: counters.staleAnswers,
  background_refreshes: counters.backgroundRefreshes,
  negative_hits: counters.negativeHits,
  load_timeouts: counters.loadTimeouts
})

/** The latency percentiles of every operation. */
const latencyOf = (recorder: Recorder): StatsSnapshot["latency_ms"] => ({
  get: recorder.byOperation.get.percentiles(),
  set: recorder.byOperation.set.percentiles(),
  delete: recorder.byOperation.delete.percentiles(),
  getOrLoad: recorder.byOperation.getOrLoad.percentiles(),
  getMany: recorder.byOperation.getMany.percentiles(),
  invalidate: recorder.byOperation.invalidate.percentiles(),
  read: recorder.byOperation.read.percentiles(),
  write: recorder.byOperation.write.percentiles()
})

/** The snapshot of a reading, with its alerts, and the details each alert's transition is logged with. */
export const evaluate = (reading: Reading, recorder: Recorder, thresholds: AlertThresholds) => {
  const { counters, info } = reading
  const { denominator, ...window } = windowOf(reading)
  const alerts: StatsSnapshot["alerts"] = {
    low_hit_rate: window.lookups >= thresholds.minLookups && window.hit_rate < thresholds.hitRate,
    high_memory: info.maxMemory > 0 && info.usedMemory / info.maxMemory > thresholds.memoryRatio,
    high_error_rate: denominator >= thresholds.minOperations && window.error_rate > thresholds.errorRate,
    store_down: !reading.up
  }
  const snapshot: StatsSnapshot = {
    instance_id: reading.instanceId,
    total_keys: info.keys,
    memory_used: info.usedMemory,
    memory_limit: info.maxMemory,
    memory_usage_percent: info.maxMemory > 0 ? (info.usedMemory / info.maxMemory) * 100 : 0,
    hits: counters.hits,
    misses: counters.misses,
    hit_rate: ratio(counters.hits, counters.hits + counters.misses),
    evictions: info.evictedKeys,
    operations_per_second: reading.windowOps / window.seconds,
    uptime_seconds: Math.floor((reading.nowMs - reading.startedMs) / 1000),
    store: info.kind,
    store_up: reading.up,
    tag_index_entries: info.tagIndexEntries,
    latency_ms: latencyOf(recorder),
    window,
    cache: countersOf(counters),
    ...(reading.sync === undefined ? {} : { sync: { ...reading.sync } }),
    alerts
  }
  const details = {
    low_hit_rate: { hit_rate: window.hit_rate, lookups: window.lookups, threshold: thresholds.hitRate },
    high_memory: { memory_used: info.usedMemory, memory_limit: info.maxMemory, threshold: thresholds.memoryRatio },
    high_error_rate: {
      error_rate: window.error_rate,
      errors: window.errors,
      operations: denominator,
      threshold: thresholds.errorRate
    },
    store_down: { store: info.kind }
  }
  return { snapshot, details }
}
