/**
 * Writing `bench/results/latest.json` by merging: each bench adds or replaces only its own keys, so benches run
 * separately (or by other people) keep theirs.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** The results file. */
export const resultsFile = path.join(import.meta.dirname, "results", "latest.json")

/** Merges `results` into the results file, keeping every other key. */
export const mergeResults = (results: Record<string, unknown>): void => {
  fs.mkdirSync(path.dirname(resultsFile), { recursive: true })
  let current: Record<string, unknown> = {}
  try {
    current = JSON.parse(fs.readFileSync(resultsFile, "utf8")) as Record<string, unknown>
  } catch {
    // no results yet
  }
  fs.writeFileSync(resultsFile, `${JSON.stringify({ ...current, ...results }, null, 2)}\n`)
}
