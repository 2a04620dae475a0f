/**
 * The cache's own counters: plain mutable numbers bumped on the hot path (no Effect, no allocation) and read as a
 * snapshot by `Cache.stats`, `Stats` and the metrics.
 */

/** What the cache did, since it started. */
export interface Counters {
  hits: number
  misses: number
  /** Loads run by `getOrLoad`/`getMany` (shared calls count once). */
  loads: number
  loadFailures: number
  /** Callers that joined a load already in flight instead of starting one. */
  sharedLoads: number
  fills: number
  /** Fills refused because the key was deleted, written or re-leased while loading. */
  fencedFills: number
  /** Stored entries that no longer decoded with the caller's schema (deleted and treated as misses). */
  decodeFailures: number
  /** Reads answered without the store because it failed or the breaker was open. */
  degradedReads: number
  /** Writes and deletes that failed soft. */
  failedWrites: number
  /** Answers of a stale copy: fail-safe after a failed or timed-out load, a soft timeout, or a throttled retry. */
  staleAnswers: number
  /** Loads run in the background while callers had their answer: eager refreshes and loads past a soft timeout. */
  backgroundRefreshes: number
  /** Lookups answered "not found" from a negative entry, without calling the source. */
  negativeHits: number
  /** Loads abandoned at the hard timeout. */
  loadTimeouts: number
}

/** Fresh counters, all zero. */
export const make = (): Counters => ({
  hits: 0,
  misses: 0,
  loads: 0,
  loadFailures: 0,
  sharedLoads: 0,
  fills: 0,
  fencedFills: 0,
  decodeFailures: 0,
  degradedReads: 0,
  failedWrites: 0,
  staleAnswers: 0,
  backgroundRefreshes: 0,
  negativeHits: 0,
  loadTimeouts: 0
})
