/**
 * How a cache behaves: its default TTL, lease, breaker and pending bounds, the optional L1, and the fail-safe family
 * (fail-safe, source timeouts, eager refresh, negative caching). Public through `Cache`, which re-exports it. Every
 * field has a production default; everything optional is off unless set.
 */
import type * as Ttl from "../../src/Ttl.ts"

/** How the cache behaves; every field has a production default. */
export interface CacheOptions {
  /** TTL of written and loaded entries when a call gives none; absent means no expiry. */
  readonly defaultTtl?: Ttl.Input | undefined
  /** How long a load's lease lives; bounds what a crashed loader leaves behind. Default 30 s. */
  readonly leaseTtl?: Ttl.Input | undefined
  /** Consecutive outage failures that open the breaker. Default 5. */
  readonly failureThreshold?: number | undefined
  /** How long the breaker stays open before a recovery probe. Default 1 s. */
  readonly resetAfter?: Ttl.Input | undefined
  /** Keys remembered for invalidation after an outage; past this the whole store is flushed on recovery. */
  readonly maxPendingInvalidations?: number | undefined
  /** Keys a pattern invalidation's SCAN looks at per step. Default 1000. */
  readonly scanCount?: number | undefined
  /** An in-process near-cache of string entries in front of the store; none when absent (or `maxEntries` is 0). */
  readonly l1?: L1Options | undefined
  /**
   * Fail-safe: a loaded entry is kept `maxStale` past its TTL, and a load that fails (or times out) answers that stale
   * copy instead of failing. Off when absent (or `maxStale` is 0). An invalidation removes the stale copy too.
   */
  readonly failSafe?: FailSafeOptions | undefined
  /** Soft and hard timeouts of a load (`getOrLoad`, `fetch`). None when absent. */
  readonly sourceTimeouts?: SourceTimeouts | undefined
  /**
   * Eager refresh: a hit on an entry older than this fraction of its TTL (0 < f < 1) starts one background reload,
   * fenced like any fill; the caller gets the current value at once. Off when absent.
   */
  readonly eagerRefresh?: number | undefined
  /** How long `fetch` remembers that the source does not have a key (a negative entry). Off when absent or 0. */
  readonly negativeTtl?: Ttl.Input | undefined
  /**
   * For the property tests only: breaks one coherence rule on purpose — a loaded value enters the L1 before its
   * fenced fill, or fail-safe writes its stale copy back with a plain write instead of under the load's lease (so
   * the copy outlives an invalidation) — so a test can show the property catches it. Never set it otherwise.
   */
  readonly brokenForTests?:
    | { readonly l1FillBeforeFence?: boolean; readonly staleWriteBackUnfenced?: boolean }
    | undefined
}

/** When a stale copy may stand in for a failed load. */
export interface FailSafeOptions {
  /** How long past its TTL an entry may still be answered when its load fails. */
  readonly maxStale: Ttl.Input
  /** After a failed load answered stale, how long the stale copy is answered before the source is tried again. Default 30 s. */
  readonly throttle?: Ttl.Input | undefined
}

/** How long a load may take. */
export interface SourceTimeouts {
  /** Past this, a caller with a stale copy gets it and the load goes on in the background (its fill still fenced). */
  readonly soft?: Ttl.Input | undefined
  /** Past this, the load is abandoned: `LoadTimeoutError`, or the stale copy under fail-safe. */
  readonly hard?: Ttl.Input | undefined
}

/** The bounds of the L1. */
export interface L1Options {
  /** Entries it holds at most. */
  readonly maxEntries: number
  /** Bytes of stored JSON text it holds at most; unbounded when absent. */
  readonly maxBytes?: number | undefined
  /** Longest an entry lives in it (never longer than the store entry either); unbounded when absent. */
  readonly ttl?: Ttl.Input | undefined
}
