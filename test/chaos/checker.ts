/**
 * The history checker: a read that starts more than `boundMs` after an invalidation of its key returned 200, and
 * answers a version older than the one the source had when that invalidation was issued, is a violation. It also
 * measures, per instance, the longest such staleness observed (within the bound or not), and formats a scenario's
 * result as the one line the suite prints.
 */
import type { History, Obligation, Read } from "./traffic.ts"

/** A read that answered a value older than an invalidation that had returned before it started. */
export interface Violation {
  readonly read: Read
  readonly obligation: Obligation
  readonly staleMs: number
}

/** What the checker found. */
export interface Verdict {
  readonly violations: ReadonlyArray<Violation>
  /** Per instance: the longest time after an invalidation returned that an older version was still answered. */
  readonly maxStaleMs: ReadonlyMap<string, number>
}

/** Checks every read against the obligations of its key. */
export const check = (history: History, boundMs: number, instances: ReadonlyArray<string>): Verdict => {
  const byKey = new Map<string, Array<Obligation>>()
  for (const obligation of history.obligations) {
    const list = byKey.get(obligation.key) ?? []
    list.push(obligation)
    byKey.set(obligation.key, list)
  }
  for (const list of byKey.values()) list.sort((a, b) => a.at - b.at)
  const maxStaleMs = new Map<string, number>(instances.map((id) => [id, 0]))
  const violations: Array<Violation> = []
  for (const read of history.reads) {
    if (read.version === undefined) continue
    // The earliest invalidation, returned before the read started, that this read's answer is older than.
    const broken = byKey.get(read.key)?.find((o) => o.at <= read.start && o.version > read.version!)
    if (broken === undefined) continue
    const staleMs = read.start - broken.at
    maxStaleMs.set(read.instance, Math.max(maxStaleMs.get(read.instance) ?? 0, staleMs))
    if (staleMs > boundMs) violations.push({ read, obligation: broken, staleMs })
  }
  return { violations, maxStaleMs }
}

/** One scenario's outcome, as printed. */
export interface ScenarioResult {
  readonly name: string
  readonly skipped?: string
  readonly boundMs: number
  readonly reads: number
  readonly writes: number
  readonly violations: number
  readonly maxStaleMs: ReadonlyMap<string, number>
  readonly status5xx: number
  readonly status503: number
  readonly errors: number
  readonly restarts: number
  /** Exits of a `serve` process the harness did not cause. */
  readonly crashes: number
  readonly flushes: number
  readonly hostile: number
  readonly hostileBad: number
  readonly passed: boolean
}

/** Whether a scenario passed: no violation, no crash, no 5xx but store-down 503s, every hostile request a 4xx. */
export const passed = (result: Omit<ScenarioResult, "passed">): boolean =>
  result.skipped === undefined &&
  result.reads > 0 &&
  result.violations === 0 &&
  result.crashes === 0 &&
  result.status5xx === result.status503 &&
  result.hostileBad === 0

/** The line printed for a scenario. */
export const formatLine = (result: ScenarioResult): string => {
  if (result.skipped !== undefined) return `${result.name.padEnd(22)} skipped: ${result.skipped}`
  const stale = [...result.maxStaleMs].map(([id, ms]) => `${id}:${Math.round(ms)}`).join(",")
  return [
    result.name.padEnd(22),
    `reads=${result.reads}`,
    `writes=${result.writes}`,
    `violations=${result.violations}`,
    `max_stale_ms=${stale}`,
    `bound_ms=${result.boundMs}`,
    `5xx=${result.status5xx}(503=${result.status503})`,
    `errors=${result.errors}`,
    `restarts=${result.restarts}`,
    `crashes=${result.crashes}`,
    `flushes=${result.flushes}`,
    ...(result.hostile > 0 ? [`hostile=${result.hostile}(non4xx=${result.hostileBad})`] : []),
    result.passed ? "PASS" : "FAIL"
  ].join(" ")
}

/** Scenarios that ran and failed (a skipped one neither passed nor failed). */
export const failures = (results: ReadonlyArray<ScenarioResult>): number =>
  results.filter((r) => !r.passed && r.skipped === undefined).length

/** The final line: exactly `N passed, M failed`. */
export const summaryLine = (results: ReadonlyArray<ScenarioResult>): string =>
  `${results.filter((r) => r.passed).length} passed, ${failures(results)} failed`

/** Matches a well-formed scenario line (for the smoke test). */
export const linePattern =
  /^\S+\s+reads=\d+ writes=\d+ violations=\d+ max_stale_ms=(i\d+:\d+,?)+ bound_ms=\d+ 5xx=\d+\(503=\d+\) errors=\d+ restarts=\d+ crashes=\d+ flushes=\d+( hostile=\d+\(non4xx=\d+\))? (PASS|FAIL)$/
