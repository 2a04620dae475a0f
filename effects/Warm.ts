/**
 * Warming: loading keys from the `DataSource` into the cache ahead of demand, at startup, on a schedule or as a
 * one-shot job. Keys go through the cache's own batched read path (`getMany`: one MGET, one `loadMany` for the
 * misses, leased and filled fenced), so a warm never publishes an invalidation and never writes back a value that
 * an invalidation overtook. A run continues past failures: a failing batch is retried key by key to isolate the
 * bad keys, and the report counts warmed, missing (the source has no such key) and failed keys.
 *
 * In `"missing"` mode (the default) keys already cached are left as they are (counted in `alreadyCached`). In
 * `"refresh"` mode every key is reloaded (`Cache.refreshMany`) through a refresh lease: the old value stays readable
 * until the new one lands, a failed load leaves it in place, and an invalidation meanwhile fences the reload.
 */
import { Cause, Clock, Effect, Exit, Schema, Semaphore, Stream } from "effect"
import * as CacheKey from "../src/CacheKey.ts"
import { DataSource, type DataSourceShape, type LoadError } from "../src/DataSource.ts"
import type * as Ttl from "../src/Ttl.ts"
import { Cache, type ValueSchema } from "./Cache.ts"

/** Which keys a warm loads: only those missing, or every key (refreshing present ones). */
export type WarmMode = "missing" | "refresh"

/** How to warm. */
export interface WarmOptions<A = unknown> {
  /** The schema values are checked against and stored with; default any JSON value, stored as its JSON. */
  readonly schema?: ValueSchema<A> | undefined
  /** TTL of the warmed entries; the cache's default when absent. */
  readonly ttl?: Ttl.Input | undefined
  /** Tags recorded with the warmed entries. */
  readonly tags?: ReadonlyArray<string> | undefined
  /**
   * `"missing"` (default): load only the keys the cache does not hold. `"refresh"`: reload present keys too, through
   * a refresh lease that keeps the old value readable until the new one lands (and fences it by any invalidation).
   */
  readonly mode?: WarmMode | undefined
  /** Keys per `loadMany` call. Default 100. */
  readonly batchSize?: number | undefined
  /** Batches in flight at most (and so calls to the source at most). Default 8. */
  readonly concurrency?: number | undefined
  /**
   * Called after each batch with the keys done so far and the total (for `warmByPattern`, the keys listed so
   * far).
   */
  readonly onProgress?: ((done: number, total: number) => Effect.Effect<void>) | undefined
}

/** A key that could not be warmed, and why. */
export interface WarmFailure {
  readonly key: string
  readonly message: string
}

/** What a warm run did. `warmed + missing + failed = total`. */
export interface WarmReport {
  /** Distinct keys asked for. */
  readonly total: number
  /** Keys the cache holds after the run: loaded and filled, or already cached. */
  readonly warmed: number
  /** Of `warmed`, keys found in the cache (or in a load already in flight) and so not loaded again. */
  readonly alreadyCached: number
  /** Keys the source does not have. */
  readonly missing: number
  /** Invalid keys, keys whose load failed, and values that do not decode with the schema. */
  readonly failed: number
  readonly durationMs: number
  /** The first {@link maxFailuresReported} failures. */
  readonly failures: ReadonlyArray<WarmFailure>
}

/**
 * A warm report as the REST API answers it and the CLI prints it: the seed's `keys_warmed, failed, missing,
 * status` first, then the rest in snake_case. One definition, so the two never drift apart.
 */
export const WarmSummary = Schema.Struct({
  keys_warmed: Schema.Int,
  failed: Schema.Int,
  missing: Schema.Int,
  status: Schema.Literal("success"),
  total: Schema.Int,
  already_cached: Schema.Int,
  duration_ms: Schema.Finite
})
export type WarmSummary = typeof WarmSummary.Type

/** The summary of a report. */
export const summary = (report: WarmReport): WarmSummary => ({
  keys_warmed: report.warmed,
  failed: report.failed,
  missing: report.missing,
  status: "success",
  total: report.total,
  already_cached: report.alreadyCached,
  duration_ms: report.durationMs
})

/** How many failures a report lists (all are counted). */
export const maxFailuresReported = 100

/** `warmByPattern` on a source that cannot list its keys. */
export class KeyListingUnsupportedError extends Schema.TaggedError<KeyListingUnsupportedError>()(
  "KeyListingUnsupportedError",
  { pattern: Schema.String, message: Schema.String }
) {}

/** The default schema: any JSON value. */
const anyJson: ValueSchema<unknown> = Schema.Json

const messageOf = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/** The mutable tally of one run. */
interface Tally {
  total: number
  done: number
  warmed: number
  alreadyCached: number
  missing: number
  failed: number
  readonly failures: Array<WarmFailure>
}

const fail = (tally: Tally, key: string, message: string) => {
  tally.failed++
  if (tally.failures.length < maxFailuresReported) tally.failures.push({ key, message })
}

/** Sets up a run: the tally and the function that warms one batch of valid, distinct keys. */
const start = Effect.fnUntraced(function* <A>(options: WarmOptions<A>) {
  const cache = yield* Cache
  const source = yield* DataSource
  const concurrency = Math.max(1, options.concurrency ?? 8)
  const startedAt = yield* Clock.currentTimeMillis
  const tally: Tally = { total: 0, done: 0, warmed: 0, alreadyCached: 0, missing: 0, failed: 0, failures: [] }
  // Calls to the source, batches and per-key fallbacks together, stay within `concurrency`.
  const slots = yield* Semaphore.make(concurrency)
  const loadOptions = { schema: options.schema ?? (anyJson as ValueSchema<A>), ttl: options.ttl, tags: options.tags }

  /**
   * Runs `getMany` on `keys` with a source that records which keys it was asked for and which it found, so the
   * answer can be told apart: filled, already cached, missing, or found but not decodable. Answers undefined
   * when done, or the failure with whether this run's own load failed (as opposed to a joined one).
   */
  const attempt = (
    keys: ReadonlyArray<string>,
    load: DataSourceShape["loadMany"]
  ): Effect.Effect<{ readonly cause: Cause.Cause<unknown>; readonly own: boolean } | undefined> => {
    const asked = new Set<string>()
    const found = new Set<string>()
    const recording: DataSourceShape = {
      ...source,
      loadMany: (batch) =>
        Effect.map(slots.withPermits(1)(load(batch)), (loaded) => {
          for (const key of loaded.keys()) found.add(key)
          return loaded
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              for (const key of batch) asked.add(key)
            })
          )
        )
    }
    const run = options.mode === "refresh" ? cache.refreshMany(keys, loadOptions) : cache.getMany(keys, loadOptions)
    return run.pipe(
      Effect.provideService(DataSource, recording),
      Effect.exit,
      Effect.flatMap((exit) => {
        if (Exit.isFailure(exit)) {
          // An interrupted run stops (an interrupts-only cause carries no error, so it is a Cause<never>); any
          // other failure is the source's, or a defect in it.
          return Cause.hasInterruptsOnly(exit.cause)
            ? Effect.failCause(exit.cause as Cause.Cause<never>)
            : Effect.succeed({ cause: exit.cause, own: keys.every((key) => asked.has(key)) })
        }
        for (const key of keys) {
          if (exit.value.has(key)) {
            tally.warmed++
            if (!asked.has(key)) tally.alreadyCached++
          } else if (found.has(key)) fail(tally, key, "the source's value does not decode with the schema")
          else tally.missing++
        }
        return Effect.succeed(undefined)
      })
    )
  }

  /** One key at a time through `load`, isolating the keys that make a batch fail. */
  const loadOne: DataSourceShape["loadMany"] = (keys) =>
    Effect.map(
      Effect.forEach(keys, (key) => Effect.map(source.load(key), (value) => [key, value] as const)),
      (loaded) => {
        const found = new Map<string, unknown>()
        for (const [key, value] of loaded) if (value._tag === "Some") found.set(key, value.value)
        return found
      }
    )

  /**
   * Warms `key` alone. A failure counts only when this run's own load of the key failed: a key can join a load
   * already in flight (the failed batch's, while the cache is still retiring it, or a caller's), whose failure
   * says nothing about the key, so that is tried again a few times.
   */
  const warmOne = (key: string, tries = 3): Effect.Effect<void> =>
    Effect.flatMap(attempt([key], loadOne), (failure) => {
      if (failure === undefined) return Effect.void
      if (!failure.own && tries > 1) return Effect.andThen(Effect.yieldNow, warmOne(key, tries - 1))
      fail(tally, key, messageOf(failure.cause))
      return Effect.void
    })

  const warmBatch = Effect.fnUntraced(function* (keys: ReadonlyArray<string>): Effect.fn.Return<void> {
    const failure = yield* attempt(keys, source.loadMany)
    if (failure !== undefined) {
      yield* Effect.logWarning("warm batch failed; loading its keys one by one").pipe(
        Effect.annotateLogs({ keys: keys.length, error: messageOf(failure.cause) })
      )
      yield* Effect.forEach(keys, (key) => warmOne(key), { concurrency, discard: true })
    }
    tally.done += keys.length
    if (options.onProgress !== undefined) yield* options.onProgress(tally.done, tally.total)
  })

  /** Counts `key` in the run; answers whether it should be loaded (valid, not seen before). */
  const seen = new Set<string>()
  const admit = (key: string): boolean => {
    if (seen.has(key)) return false
    seen.add(key)
    tally.total++
    const invalid = CacheKey.validate(key)
    if (invalid === undefined) return true
    fail(tally, key, invalid)
    tally.done++
    return false
  }

  const report = Effect.map(Clock.currentTimeMillis, (now): WarmReport => ({
    total: tally.total,
    warmed: tally.warmed,
    alreadyCached: tally.alreadyCached,
    missing: tally.missing,
    failed: tally.failed,
    durationMs: now - startedAt,
    failures: tally.failures
  }))

  const logged = (what: string, extra: Record<string, unknown>) =>
    Effect.tap(report, (r) =>
      Effect.logInfo(`${what} finished`).pipe(
        Effect.annotateLogs({
          ...extra,
          total: r.total,
          warmed: r.warmed,
          alreadyCached: r.alreadyCached,
          missing: r.missing,
          failed: r.failed,
          durationMs: r.durationMs
        })
      )
    )

  return { admit, warmBatch, concurrency, report, logged }
})

const batchSizeOf = (options: WarmOptions<unknown>) => Math.max(1, options.batchSize ?? 100)

/**
 * Loads `keys` into the cache in the context, from the `DataSource`, in batches, without publishing anything.
 * Never fails: every key ends up warmed, missing or failed in the report; a summary is logged.
 */
export const warm = Effect.fn("Warm.warm")(function* <A = unknown>(
  keys: Iterable<string>,
  options: WarmOptions<A> = {}
): Effect.fn.Return<WarmReport, never, Cache | DataSource> {
  const run = yield* start(options)
  const valid = [...keys].filter(run.admit)
  const size = batchSizeOf(options as WarmOptions<unknown>)
  const batches: Array<ReadonlyArray<string>> = []
  for (let i = 0; i < valid.length; i += size) batches.push(valid.slice(i, i + size))
  yield* Effect.forEach(batches, run.warmBatch, { concurrency: run.concurrency, discard: true })
  return yield* run.logged("warm", {})
})

/**
 * Warms every key the `DataSource` lists for the glob `pattern`, as `warm` does, batching keys as they are listed.
 * Fails when the source cannot list keys, or when listing itself fails (the keys warmed until then stay warm).
 */
export const warmByPattern = Effect.fn("Warm.warmByPattern")(function* <A = unknown>(
  pattern: string,
  options: WarmOptions<A> = {}
): Effect.fn.Return<WarmReport, KeyListingUnsupportedError | LoadError, Cache | DataSource> {
  const source = yield* DataSource
  if (source.keys === undefined) {
    return yield* new KeyListingUnsupportedError({
      pattern,
      message: "this data source cannot list its keys; warm a list of keys instead"
    })
  }
  const run = yield* start(options)
  yield* source.keys(pattern).pipe(
    Stream.filter(run.admit),
    Stream.grouped(batchSizeOf(options as WarmOptions<unknown>)),
    Stream.mapEffect(run.warmBatch, { concurrency: run.concurrency }),
    Stream.runDrain,
    Effect.tapError((error) =>
      Effect.flatMap(run.report, (r) =>
        Effect.logWarning("warm by pattern stopped: listing keys failed").pipe(
          Effect.annotateLogs({ pattern, error: error.message, warmed: r.warmed, failed: r.failed })
        )
      )
    )
  )
  return yield* run.logged("warm by pattern", { pattern })
})
