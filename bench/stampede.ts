/**
 * `stampede_ms`: 1,000 concurrent `getOrLoad` calls of one cold key whose loader takes 20 ms, timed from the first
 * call until every caller has its value — the ideal is the loader's 20 ms plus one store read, one lease and one
 * fill. Each round uses a fresh key; the median, the range and the client CPU per caller are reported.
 */
import { Effect, Schema } from "effect"
import type * as Cache from "../effects/Cache.ts"

const callers = 1000
const loaderMs = 20

/** One pile-up on a cold key: wall milliseconds until all resolve, and CPU µs per caller. */
const once = (cache: Cache.Cache["Service"], key: string) =>
  Effect.gen(function* () {
    let loads = 0
    const load = Effect.as(
      Effect.andThen(
        Effect.sync(() => loads++),
        Effect.sleep(loaderMs)
      ),
      "loaded"
    )
    const cpu = process.cpuUsage()
    const start = performance.now()
    yield* Effect.forEach(
      Array.from({ length: callers }),
      () => cache.getOrLoad(key, load, { schema: Schema.String }),
      { concurrency: "unbounded", discard: true }
    )
    const ms = performance.now() - start
    const used = process.cpuUsage(cpu)
    return { ms, cpuUsPerCaller: (used.user + used.system) / callers, loads }
  })

const median = (xs: ReadonlyArray<number>) => {
  // oxlint-disable-next-line unicorn/no-array-sort -- sorts a fresh copy
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Runs `rounds` pile-ups (after one warm-up) on `cache`. */
export const runStampede = async (cache: Cache.Cache["Service"], rounds: number) => {
  const tag = `${process.pid}:${Date.now()}`
  await Effect.runPromise(once(cache, `stampede:warmup:${tag}`))
  const results: Array<{ ms: number; cpuUsPerCaller: number; loads: number }> = []
  for (let round = 0; round < Math.max(rounds, 5); round++) {
    results.push(await Effect.runPromise(once(cache, `stampede:${round}:${tag}`)))
  }
  const ms = results.map((r) => r.ms)
  const summary = {
    medianMs: Number(median(ms).toFixed(1)),
    rangeMs: [Number(Math.min(...ms).toFixed(1)), Number(Math.max(...ms).toFixed(1))],
    cpuUsPerCaller: Number(median(results.map((r) => r.cpuUsPerCaller)).toFixed(1)),
    loadsPerRound: Math.max(...results.map((r) => r.loads)),
    callers,
    loaderMs
  }
  console.log(
    `stampede_ms ${summary.medianMs} (${summary.rangeMs.join("–")}): ${callers} callers of one cold key, ` +
      `${loaderMs} ms loader; ${summary.cpuUsPerCaller} µs CPU per caller, ${summary.loadsPerRound} load(s) per round`
  )
  return summary
}
