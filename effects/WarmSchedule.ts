/**
 * Scheduled warm-up: re-warms a list of keys on a `Schedule` (or a cron expression) for the lifetime of the layer's
 * scope. Runs never overlap: a tick that comes while the previous run is still going is skipped and counted
 * (`cache_warm_skipped_total`), so a slow source cannot pile runs up; the next tick after the run ends starts the
 * next run. Each run is logged, recorded in Effect metrics and kept as `lastRun` of the `WarmSchedule` service.
 * Runs refresh by default (`mode: "refresh"`): present keys are reloaded too, so a scheduled warm keeps them fresh.
 */
import { Cause, Clock, Context, Cron, Effect, Layer, Metric, Option, Ref, Result, Schedule } from "effect"
import { InvalidConfigError } from "../src/CacheConfig.ts"
import type { DataSource } from "../src/DataSource.ts"
import type { Cache } from "./Cache.ts"
import * as Warm from "./Warm.ts"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** When the last scheduled run ended, in seconds since the epoch. */
export const lastRunTimestamp = Metric.gauge("cache_warm_last_run_timestamp_seconds", {
  description: "end of the last scheduled warm-up run, seconds since the epoch"
})
/** How long the last scheduled run took. */
export const lastDuration = Metric.gauge("cache_warm_last_duration_ms", {
  description: "duration of the last scheduled warm-up run in milliseconds"
})
export const warmedTotal = counter("cache_warm_warmed_total", "keys warmed by scheduled warm-up runs")
export const failedTotal = counter("cache_warm_failed_total", "keys that failed in scheduled warm-up runs")
export const missingTotal = counter("cache_warm_missing_total", "keys the source did not have in scheduled runs")
export const runsTotal = counter("cache_warm_runs_total", "scheduled warm-up runs finished")
export const skippedTotal = counter("cache_warm_skipped_total", "ticks skipped because the previous run was going")

/** One finished run: its report, or why its keys could not be read. */
export interface ScheduledRun {
  readonly startedAtMs: number
  readonly durationMs: number
  /** The warm report; undefined when reading the keys failed. */
  readonly report: Warm.WarmReport | undefined
  /** Why the keys could not be read, when they could not. */
  readonly error: string | undefined
}

/** The running schedule, for inspection. */
export class WarmSchedule extends Context.Service<
  WarmSchedule,
  {
    /** The last finished run, if any. */
    readonly lastRun: Effect.Effect<Option.Option<ScheduledRun>>
    /** Runs finished so far. */
    readonly runs: Effect.Effect<number>
    /** Ticks skipped because a run was still going. */
    readonly skipped: Effect.Effect<number>
    /** Whether a run is going right now. */
    readonly running: Effect.Effect<boolean>
  }
>()("embedded-cache/WarmSchedule") {}

/** What to warm, when, and how. */
export interface Options<A = unknown> extends Omit<Warm.WarmOptions<A>, "onProgress"> {
  /** The keys, or an effect read again at every run (e.g. a file re-read). A failure skips that run's warm. */
  readonly keys: ReadonlyArray<string> | Effect.Effect<ReadonlyArray<string>, unknown>
  /** When to run: the schedule's delays between ticks (the first run is at the first tick, not at once). */
  readonly schedule: Schedule.Schedule<unknown>
  /** `"refresh"` (default here): reload present keys too; `"missing"`: load only the keys the cache lacks. */
  readonly mode?: Warm.WarmMode | undefined
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** Starts re-warming `options.keys` on `options.schedule` in the current scope; answers the running schedule. */
const make = Effect.fnUntraced(function* <A>(options: Options<A>) {
  const scope = yield* Effect.scope
  const last = yield* Ref.make(Option.none<ScheduledRun>())
  let runs = 0
  let skipped = 0
  let running = false
  const { keys, schedule, ...rest } = options
  const warmOptions: Warm.WarmOptions<A> = { ...rest, mode: options.mode ?? "refresh" }
  const readKeys = Array.isArray(keys)
    ? Effect.succeed(keys as ReadonlyArray<string>)
    : (keys as Effect.Effect<ReadonlyArray<string>, unknown>)

  const run = Effect.gen(function* () {
    const startedAtMs = yield* Clock.currentTimeMillis
    const read = yield* Effect.result(readKeys)
    const report = Result.isSuccess(read) ? yield* Warm.warm(read.success, warmOptions) : undefined
    const endedAtMs = yield* Clock.currentTimeMillis
    const finished: ScheduledRun = {
      startedAtMs,
      durationMs: endedAtMs - startedAtMs,
      report,
      error: Result.isFailure(read) ? messageOf(read.failure) : undefined
    }
    yield* Ref.set(last, Option.some(finished))
    runs++
    yield* Metric.update(runsTotal, 1)
    yield* Metric.update(lastRunTimestamp, endedAtMs / 1000)
    yield* Metric.update(lastDuration, finished.durationMs)
    if (report === undefined) {
      yield* Effect.logWarning("scheduled warm-up could not read its keys").pipe(
        Effect.annotateLogs({ error: finished.error })
      )
      return
    }
    yield* Metric.update(warmedTotal, report.warmed)
    yield* Metric.update(failedTotal, report.failed)
    yield* Metric.update(missingTotal, report.missing)
    yield* Effect.logInfo("scheduled warm-up finished").pipe(
      Effect.annotateLogs({
        total: report.total,
        warmed: report.warmed,
        alreadyCached: report.alreadyCached,
        missing: report.missing,
        failed: report.failed,
        durationMs: finished.durationMs,
        skipped
      })
    )
  }).pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logError("scheduled warm-up failed").pipe(Effect.annotateLogs({ cause: Cause.pretty(cause) }))
    ),
    Effect.ensuring(Effect.sync(() => void (running = false)))
  )

  // A tick is instantaneous: it starts a run in the background, or counts a skip when one is still going, so
  // the schedule keeps its cadence however long runs take.
  const tick = Effect.suspend(() => {
    if (running) {
      skipped++
      return Effect.andThen(
        Metric.update(skippedTotal, 1),
        Effect.logWarning("scheduled warm-up tick skipped: the previous run is still going")
      )
    }
    running = true
    return Effect.asVoid(Effect.forkIn(run, scope))
  })
  yield* Effect.forkScoped(Effect.schedule(tick, schedule))

  return WarmSchedule.of({
    lastRun: Ref.get(last),
    runs: Effect.sync(() => runs),
    skipped: Effect.sync(() => skipped),
    running: Effect.sync(() => running)
  })
})

/** Re-warms `options.keys` on `options.schedule` while the layer's scope is open; see the module header. */
export const layer = <A = unknown>(options: Options<A>): Layer.Layer<WarmSchedule, never, Cache | DataSource> =>
  Layer.effect(WarmSchedule, make(options))

/** Parses a cron expression; an invalid one is an `InvalidConfigError` naming `variable`. */
export const parseCron = (
  expression: string,
  options: { readonly timeZone?: string | undefined; readonly variable?: string | undefined } = {}
): Effect.Effect<Cron.Cron, InvalidConfigError> =>
  Result.match(Cron.parse(expression, options.timeZone), {
    onSuccess: Effect.succeed,
    onFailure: (error) =>
      Effect.suspend(() => {
        const variable = options.variable ?? "CACHE_WARM_SCHEDULE"
        return Effect.fail(
          new InvalidConfigError({
            variable,
            message: `${variable}=${JSON.stringify(expression)} is not a valid cron expression: ${error.message}`
          })
        )
      })
  })

/**
 * `layer` on a cron expression (five fields, or six with seconds; the process's time zone unless `timeZone`).
 * An invalid expression fails the layer with an `InvalidConfigError` naming `CACHE_WARM_SCHEDULE` (or `variable`).
 */
export const layerCron = <A = unknown>(
  expression: string,
  options: Omit<Options<A>, "schedule"> & {
    readonly timeZone?: string | undefined
    readonly variable?: string | undefined
  }
): Layer.Layer<WarmSchedule, InvalidConfigError, Cache | DataSource> =>
  Layer.unwrap(
    Effect.map(parseCron(expression, options), (cron) => {
      const { timeZone: _timeZone, variable: _variable, ...rest } = options
      // A parsed cron cannot fail to step; its error channel is only for unparsed expressions.
      const schedule = Schedule.cron(cron) as Schedule.Schedule<unknown, unknown, never>
      return layer<A>({ ...rest, schedule })
    })
  )
