/**
 * The hot-path recorder of the stats: per operation a ring of recent latencies (for percentiles) and cumulative
 * histogram buckets (for Prometheus), plus a ring of per-second operation counts (for the sliding window).
 * Recording is a few array writes, no allocation and no fiber; memory is fixed at construction.
 */
import type { Metric } from "effect"
import { type LatencyPercentiles, type Operation, operations } from "../StatsSnapshot.ts"

/** Upper bounds of the `cache_operation_duration_ms` histogram buckets, in milliseconds. */
export const durationBoundaries: ReadonlyArray<number> = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
]

/** The counts and latencies of one operation: a ring of recent samples and cumulative histogram buckets. */
export class OperationStats {
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

  /** Records one sample of `ms` milliseconds. */
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

  /** p50, p95 and p99 over the samples in the ring. */
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

  /** The histogram as a metric reads it: cumulative buckets, count, min, max, sum. */
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
export class Recorder {
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
