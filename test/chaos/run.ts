/**
 * `npm run chaos`: runs the chaos scenarios one after the other and prints one line per scenario and then exactly
 * `N passed, M failed`; exits 0 only when none failed. `CHAOS_SECONDS` (default 25) sets each scenario's traffic
 * time, `CHAOS_SCENARIOS=a,b` runs a subset, `CHAOS_VERBOSE=1` prints fault events and sample violations to stderr.
 * An interrupt SIGKILLs every process of the running cluster and unmounts its tmpfs before exiting.
 */
import { type ScenarioResult, failures, formatLine, summaryLine } from "./checker.ts"
import { noTraffic, running, runScenario, scenarios } from "./scenarios.ts"

const seconds = Number(process.env["CHAOS_SECONDS"] ?? "25")
const wanted = (process.env["CHAOS_SCENARIOS"] ?? "")
  .split(",")
  .map((name) => name.trim())
  .filter((name) => name !== "")
const unknown = wanted.filter((name) => !scenarios.some((scenario) => scenario.name === name))
if (unknown.length > 0 || !(seconds > 0)) {
  process.stderr.write(
    `unknown scenario(s) ${unknown.join(", ") || "(none)"} or bad CHAOS_SECONDS; ` +
      `scenarios: ${scenarios.map((s) => s.name).join(", ")}\n`
  )
  process.exit(2)
}
const verbose = process.env["CHAOS_VERBOSE"] === "1"

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const abort of running) abort()
    process.stderr.write(`chaos: ${sig}, cluster killed\n`)
    process.exit(130)
  })
}

const results: Array<ScenarioResult> = []
for (const scenario of scenarios.filter((s) => wanted.length === 0 || wanted.includes(s.name))) {
  const started = performance.now()
  const log = (message: string) => {
    if (verbose)
      process.stderr.write(`  [${scenario.name} +${Math.round(performance.now() - started)} ms] ${message}\n`)
  }
  try {
    const result = await runScenario(scenario, seconds, log)
    results.push(result)
    process.stdout.write(`${formatLine(result)}\n`)
  } catch (error) {
    process.stdout.write(`${scenario.name.padEnd(22)} error: ${String(error).split("\n")[0]} FAIL\n`)
    if (verbose) process.stderr.write(`${String((error as Error).stack ?? error)}\n`)
    results.push(noTraffic(scenario))
  }
}
process.stdout.write(`${summaryLine(results)}\n`)
process.exit(failures(results) === 0 ? 0 : 1)
