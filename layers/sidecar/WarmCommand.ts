/**
 * `embedded-cache warm`: loads keys from the data source into a cache. By default through the running sidecar's
 * REST API (the local one, or `--url`), a batch of keys per request so progress can be shown; only with
 * `--offline` into the configured store directly, and then a data dir held by a running sidecar is one line saying
 * so. The summary is `Warm.WarmSummary` (decoded from the API's answer); exit code 2 past `--max-failure-ratio` or
 * `--max-missing-ratio`.
 */
import { Clock, Duration, Effect, Layer, Option, type Redacted, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import * as Cache from "../../effects/Cache.ts"
import * as Warm from "../../effects/Warm.ts"
import * as CacheConfig from "../../src/CacheConfig.ts"
import * as HttpDataSource from "../source/HttpDataSource.ts"
import * as SqlDataSource from "../source/SqlDataSource.ts"
import * as StoreChoice from "../store/StoreChoice.ts"
import * as ApiClient from "./ApiClient.ts"
import * as CliOutput from "./CliOutput.ts"
import * as KeysFile from "./KeysFile.ts"
import * as Serve from "./Serve.ts"
import * as ServeLog from "./ServeLog.ts"

/** A progress bar on stderr when it is a terminal; nothing otherwise. */
const progressBar = () => {
  const tty = process.stderr.isTTY === true
  let drawn = false
  return {
    update: (done: number, total: number) =>
      Effect.sync(() => {
        if (!tty) return
        const width = 30
        const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width))
        process.stderr.write(`\rwarming [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}`)
        drawn = true
      }),
    end: Effect.sync(() => {
      if (tty && drawn) process.stderr.write("\n")
    })
  }
}

type Progress = ReturnType<typeof progressBar>

const noneWarmed: Warm.WarmSummary = {
  keys_warmed: 0,
  failed: 0,
  missing: 0,
  status: "success",
  total: 0,
  already_cached: 0,
  duration_ms: 0
}

/** Two summaries as one (batches of one run). */
const combine = (a: Warm.WarmSummary, b: Warm.WarmSummary): Warm.WarmSummary => ({
  keys_warmed: a.keys_warmed + b.keys_warmed,
  failed: a.failed + b.failed,
  missing: a.missing + b.missing,
  status: "success",
  total: a.total + b.total,
  already_cached: a.already_cached + b.already_cached,
  duration_ms: a.duration_ms + b.duration_ms
})

/** A summary for reading on a terminal. */
export const describeSummary = (summary: Warm.WarmSummary): string =>
  `warmed ${summary.keys_warmed} of ${CliOutput.count(summary.total, "key")}: ${summary.missing} missing, ` +
  `${summary.failed} failed, ${summary.already_cached} already cached (${summary.duration_ms} ms)`

/** The instance's `/warm` answer, checked against the summary schema. */
const warmAnswer = (answer: unknown) =>
  Schema.decodeUnknownEffect(Warm.WarmSummary)(answer).pipe(
    Effect.catch((error) => CliOutput.failWith(`the instance answered /warm with an unexpected body: ${error.message}`))
  )

interface WarmFlags {
  readonly ttl: Option.Option<number>
  readonly concurrency: number
  readonly batchSize: number
  readonly url: Option.Option<string>
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly source: string
  readonly mode: Option.Option<Warm.WarmMode>
}

/** Warms through `POST /api/v1/cache/warm`, a batch of keys per request so progress can be shown. */
const warmRemote = Effect.fnUntraced(function* (
  flags: WarmFlags,
  keys: ReadonlyArray<string> | undefined,
  pattern: string | undefined,
  tags: ReadonlyArray<string> | undefined,
  progress: Progress
) {
  const target = { url: flags.url, token: flags.token }
  const options = {
    source: flags.source,
    ...(Option.isSome(flags.ttl) ? { ttl: flags.ttl.value } : {}),
    ...(tags === undefined ? {} : { tags }),
    ...(Option.isSome(flags.mode) ? { mode: flags.mode.value } : {})
  }
  if (pattern !== undefined) {
    // The instance lists the keys itself: one request, no intermediate progress.
    const answer = yield* warmAnswer(
      yield* ApiClient.call(target, "POST", "/api/v1/cache/warm", { pattern, ...options })
    )
    yield* progress.update(answer.total, answer.total)
    return answer
  }
  let summary = noneWarmed
  const distinct = [...new Set(keys)]
  const batches: Array<ReadonlyArray<string>> = []
  for (let i = 0; i < distinct.length; i += flags.batchSize) batches.push(distinct.slice(i, i + flags.batchSize))
  let done = 0
  yield* progress.update(0, distinct.length)
  yield* Effect.forEach(
    batches,
    Effect.fnUntraced(function* (batch) {
      const answer = yield* warmAnswer(
        yield* ApiClient.call(target, "POST", "/api/v1/cache/warm", { keys: batch, ...options })
      )
      summary = combine(summary, answer)
      done += batch.length
      yield* progress.update(done, distinct.length)
    }),
    { concurrency: flags.concurrency, discard: true }
  )
  return summary
})

/** The one line for a failure to open the configured store offline. */
const describeOfflineFailure = (error: unknown): string => {
  const tagged = error as { readonly _tag?: string; readonly reason?: string; readonly message?: string }
  if (tagged._tag === "RedisServerError" && tagged.reason === "Locked") {
    return `the ${tagged.message} (a running sidecar?): warm through it (without --offline, or with --url), or stop it`
  }
  return ServeLog.describeFailure(error)
}

/**
 * Warms the configured store directly (same environment as `serve`), through a cache without a publisher: a warm
 * fills absent keys (or, with `--mode refresh`, reloads present ones too) and announces nothing to other instances.
 */
const warmOffline = Effect.fnUntraced(function* (
  flags: WarmFlags,
  keys: ReadonlyArray<string> | undefined,
  pattern: string | undefined,
  tags: ReadonlyArray<string> | undefined,
  progress: Progress
) {
  const config = yield* CacheConfig.CacheConfig
  const service = yield* CacheConfig.ServiceConfig
  if (service.source === "none") {
    return yield* CliOutput.failWith(
      "no data source configured to warm from: set CACHE_SOURCE (http with CACHE_SOURCE_URL, or sql)"
    )
  }
  if (flags.source !== "default" && flags.source !== "database" && flags.source !== service.source) {
    return yield* CliOutput.failWith(`unknown data source "${flags.source}"; use "default" or "${service.source}"`)
  }
  const choice = yield* Serve.storeChoiceOf(config, Serve.instanceIdOf(config))
  // The sidecar's entry layout: with fail-safe on, a warmed entry is kept past its TTL like a loaded one.
  const cache = Cache.layer({
    defaultTtl: Duration.seconds(config.defaultTtlSeconds),
    ...(yield* CacheConfig.loadOptions(config))
  }).pipe(Layer.provide(StoreChoice.layer(choice)))
  const source = service.source === "sql" ? SqlDataSource.layerConfig : HttpDataSource.layerConfig
  const options: Warm.WarmOptions = {
    ttl: Option.isSome(flags.ttl) ? Duration.seconds(flags.ttl.value) : undefined,
    tags,
    mode: Option.getOrUndefined(flags.mode),
    concurrency: flags.concurrency,
    batchSize: flags.batchSize,
    onProgress: progress.update
  }
  const report = yield* (
    pattern !== undefined
      ? Warm.warmByPattern(pattern, options).pipe(
          Effect.catchTags({
            KeyListingUnsupportedError: (error) => CliOutput.failWith(error.message),
            LoadError: (error) => CliOutput.failWith(`listing the source's keys failed: ${error.message}`)
          })
        )
      : Warm.warm(keys ?? [], options)
  ).pipe(Effect.provide(Layer.mergeAll(cache, source)))
  return Warm.summary(report)
})

/** Fails with exit code 2 when `part` of the summary's total is above `max`. */
const checkRatio = (what: string, part: number, total: number, max: number, flag: string) => {
  const ratio = total === 0 ? 0 : part / total
  return ratio > max
    ? CliOutput.failWith(`${part} of ${total} keys ${what} (ratio ${ratio.toFixed(3)} > ${flag} ${max})`, 2)
    : Effect.void
}

const ratioFlag = (name: string, description: string, fallback: number) =>
  Flag.Finite(name).pipe(Flag.withDescription(description), Flag.withDefault(fallback))

/** The `warm` subcommand. */
export const command = Command.make(
  "warm",
  {
    keys: Flag.String("keys").pipe(Flag.withDescription("comma-separated keys to warm"), Flag.optional),
    keysFile: Flag.String("keys-file").pipe(
      Flag.withDescription("file of keys to warm, one per line (# comments)"),
      Flag.optional
    ),
    pattern: Flag.String("pattern").pipe(
      Flag.withDescription("glob of the source's keys to warm (the source must list keys)"),
      Flag.optional
    ),
    ttl: Flag.Int("ttl").pipe(Flag.withDescription("TTL of warmed entries in seconds"), Flag.optional),
    mode: Flag.Literals("mode", ["missing", "refresh"]).pipe(
      Flag.withDescription("missing (default): load only keys the cache lacks; refresh: reload present keys too"),
      Flag.optional
    ),
    tags: Flag.String("tags").pipe(Flag.withDescription("comma-separated tags of warmed entries"), Flag.optional),
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withDescription("batches (requests, or source calls) in flight at most"),
      Flag.withDefault(4)
    ),
    batchSize: Flag.Int("batch-size").pipe(Flag.withDescription("keys per batch"), Flag.withDefault(100)),
    url: ApiClient.urlFlag,
    offline: Flag.Boolean("offline").pipe(
      Flag.withDescription(
        "warm the configured store directly (CACHE_STORE, CACHE_DATA_DIR, CACHE_SOURCE), not through a running sidecar"
      ),
      Flag.withDefault(false)
    ),
    token: ApiClient.tokenFlag,
    source: Flag.String("source").pipe(
      Flag.withDescription('data source name: "default", "database" or the configured one (CACHE_SOURCE)'),
      Flag.withDefault("default")
    ),
    maxFailureRatio: ratioFlag("max-failure-ratio", "exit with code 2 when failed/total is above this ratio", 0),
    maxMissingRatio: ratioFlag(
      "max-missing-ratio",
      "exit with code 2 when missing/total (keys the source does not have) is above this ratio",
      1
    ),
    json: CliOutput.jsonFlag
  },
  Effect.fnUntraced(function* (flags) {
    const chosen = [flags.keys, flags.keysFile, flags.pattern].filter(Option.isSome).length
    if (chosen !== 1) return yield* CliOutput.failWith("warm needs exactly one of --keys, --keys-file or --pattern")
    if (flags.offline && Option.isSome(flags.url)) {
      return yield* CliOutput.failWith("--offline warms the configured store directly: it does not take --url")
    }
    if (flags.concurrency < 1) return yield* CliOutput.failWith("--concurrency must be at least 1")
    if (flags.batchSize < 1) return yield* CliOutput.failWith("--batch-size must be at least 1")
    for (const [flag, ratio] of [
      ["--max-failure-ratio", flags.maxFailureRatio],
      ["--max-missing-ratio", flags.maxMissingRatio]
    ] as const) {
      if (ratio < 0 || ratio > 1) return yield* CliOutput.failWith(`${flag} must be between 0 and 1`)
    }
    if (Option.isSome(flags.ttl) && flags.ttl.value < 1) {
      return yield* CliOutput.failWith("--ttl must be at least 1 second")
    }
    const tags = Option.getOrUndefined(Option.map(flags.tags, CliOutput.splitList))
    let keys: ReadonlyArray<string> | undefined
    if (Option.isSome(flags.keys)) keys = CliOutput.splitList(flags.keys.value)
    if (Option.isSome(flags.keysFile)) {
      const file = flags.keysFile.value
      keys = yield* KeysFile.read(file).pipe(
        Effect.catch((error) => CliOutput.failWith(`cannot read --keys-file ${file}: ${error.reason}`))
      )
    }
    const pattern = Option.getOrUndefined(flags.pattern)
    const progress = progressBar()
    const startedAt = yield* Clock.currentTimeMillis
    const warmed = yield* flags.offline
      ? warmOffline(flags, keys, pattern, tags, progress).pipe(
          Effect.catch((error) =>
            error._tag === "CliFailure" ? Effect.fail(error) : CliOutput.failWith(describeOfflineFailure(error))
          )
        )
      : warmRemote(flags, keys, pattern, tags, progress)
    yield* progress.end
    const summary = { ...warmed, duration_ms: (yield* Clock.currentTimeMillis) - startedAt }
    yield* CliOutput.print(flags.json, summary, describeSummary)
    yield* checkRatio("failed", summary.failed, summary.total, flags.maxFailureRatio, "--max-failure-ratio")
    yield* checkRatio("are missing", summary.missing, summary.total, flags.maxMissingRatio, "--max-missing-ratio")
  })
).pipe(
  Command.withDescription(
    "Warm keys from the data source through the running sidecar (local, or --url), or into the configured store with --offline"
  )
)
