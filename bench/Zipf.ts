/**
 * A Zipf(s) sampler over `n` ranks (rank 0 the most frequent), by inverse CDF on a precomputed table, seeded so
 * every run draws the same sequence; the benches' skewed key traffic.
 */

/** Draws ranks in `[0, n)` with probability ∝ 1 / (rank + 1)^s. */
export const zipf = (n: number, s: number, seed = 42): (() => number) => {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / Math.pow(i + 1, s)
  for (let i = 0; i < n; i++) cdf[i]! /= sum
  let state = seed >>> 0
  const random = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return () => {
    const u = random()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}
