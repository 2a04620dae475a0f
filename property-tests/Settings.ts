/**
 * Run settings shared by the property tests: the run count scales with `PROPERTY_RUNS_FACTOR` (e.g. 10 for a
 * soak), a failing seed is replayed with `PROPERTY_SEED` (and `PROPERTY_PATH`), and every failure prints its
 * seed and path, which fast-check includes in the error it throws.
 */
import type * as fc from "fast-check"

/** fast-check parameters for `numRuns` runs at the default factor. */
export const settings = (numRuns: number): fc.Parameters<unknown> => {
  const factor = Number(process.env["PROPERTY_RUNS_FACTOR"] ?? "1")
  const seed = process.env["PROPERTY_SEED"]
  const path = process.env["PROPERTY_PATH"]
  return {
    numRuns: Math.max(1, Math.round(numRuns * factor)),
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path }),
    verbose: 1
  }
}
