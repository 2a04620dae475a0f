/**
 * The `embedded-cache` command line on `effect/cli`. `serve` runs the instance's cache sidecar (layers/Service.ts)
 * until SIGTERM/SIGINT, when it drains and shuts its embedded redis-server down; `sweep-queues` removes the SQS
 * queues of instances that died; `warm`, `stats` and `invalidate` are one-shot operations, through a running
 * instance's REST API (`--url`) or, for `warm` without `--url`, on the configured store directly. Configuration
 * comes from the environment (see `src/CacheConfig.ts`).
 *
 * Output contract: each one-shot command prints one JSON document as its last line on stdout; errors go to stderr.
 * Exit codes: 0 success, 1 bad arguments or a failed request, 2 `warm` failed more keys than `--max-failure-ratio`.
 */
import { Clock, Config, Console, Data, Duration, Effect, Layer, Option, Redacted, Runtime, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import * as Cache from "../../effects/Cache.ts"
import * as Warm from "../../effects/Warm.ts"
import * as CacheConfig from "../../src/CacheConfig.ts"
import * as HttpDataSource from "../source/HttpDataSource.ts"
import * as KeysFile from "./KeysFile.ts"
import * as Service from "./Serve.ts"
import * as QueueSweeper from "../bus/QueueSweeper.ts"
import * as SqsQueue from "../bus/SqsQueue.ts"

/** A command that stops with `message` on stderr and the exit code `code` (already reported, not logged again). */
export class CliFailure extends Data.TaggedError("CliFailure")<{ readonly message: string; readonly code: number }> {
  override get [Runtime.errorExitCode](): number {
    return this.code
  }
  override readonly [Runtime.errorReported] = false
}

/** Prints `error: message` on stderr and fails with exit code `code`. */
const failWith = (message: string, code = 1) =>
  Effect.andThen(Console.error(`error: ${message}`), Effect.fail(new CliFailure({ message, code })))

/** A comma-separated list, trimmed, without empty items. */
const splitList = (text: string): ReadonlyArray<string> =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0)

const defaultUrl = "http://127.0.0.1:8080"

const urlFlag = Flag.String("url").pipe(
  Flag.withDescription(`base URL of a running instance's REST API (e.g. ${defaultUrl})`)
)
const tokenFlag = Flag.Redacted("token").pipe(
  Flag.withDescription("API token sent as Authorization: Bearer (default: CACHE_API_TOKEN)"),
  Flag.optional
)

/** The bearer token: `--token`, else `CACHE_API_TOKEN`. */
const tokenOf = (
  token: Option.Option<Redacted.Redacted<string>>
): Effect.Effect<Option.Option<Redacted.Redacted<string>>> =>
  Option.isSome(token)
    ? Effect.succeed(token)
    : Effect.gen(function* () {
        return yield* Config.option(Config.Redacted("CACHE_API_TOKEN"))
      }).pipe(Effect.orElseSucceed(() => Option.none()))

/** Calls the REST API; a transport failure or a non-2xx answer fails with its message (exit code 1). */
const callApi = (
  base: string,
  token: Option.Option<Redacted.Redacted<string>>,
  method: "GET" | "POST",
  path: string,
  body?: unknown
) =>
  Effect.gen(function* () {
    const bearer = yield* tokenOf(token)
    const url = `${base.replace(/\/+$/, "")}${path}`
    const headers: Record<string, string> = {}
    if (body !== undefined) headers["content-type"] = "application/json"
    if (Option.isSome(bearer)) headers["authorization"] = `Bearer ${Redacted.value(bearer.value)}`
    const answer = yield* Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(url, {
          method,
          headers,
          signal,
          ...(body === undefined ? {} : { body: JSON.stringify(body) })
        })
        return { status: response.status, text: await response.text() }
      },
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) =>
        failWith(`cannot reach ${url}: ${cause instanceof Error ? (cause.cause ?? cause).toString() : String(cause)}`)
      )
    )
    if (answer.status < 200 || answer.status >= 300) {
      return yield* failWith(`${method} ${url} answered ${answer.status}: ${answer.text.trim()}`)
    }
    return yield* Effect.try({ try: () => JSON.parse(answer.text) as unknown, catch: (cause) => cause }).pipe(
      Effect.catch(() => failWith(`${method} ${url} answered something that is not JSON: ${answer.text.slice(0, 200)}`))
    )
  })

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

/** The instance's `/warm` answer, checked against the summary schema. */
const warmAnswer = (answer: unknown) =>
  Schema.decodeUnknownEffect(Warm.WarmSummary)(answer).pipe(
    Effect.catch((error) => failWith(`the instance answered /warm with an unexpected body: ${error.message}`))
  )

const warm = Command.make(
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
    tags: Flag.String("tags").pipe(Flag.withDescription("comma-separated tags of warmed entries"), Flag.optional),
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withDescription("batches (requests, or source calls) in flight at most"),
      Flag.withDefault(4)
    ),
    batchSize: Flag.Int("batch-size").pipe(Flag.withDescription("keys per batch"), Flag.withDefault(100)),
    url: urlFlag.pipe(
      Flag.withDescription("warm through this instance's REST API; without it the configured store is warmed"),
      Flag.optional
    ),
    token: tokenFlag,
    source: Flag.String("source").pipe(
      Flag.withDescription('data source name: "default" or the configured one (CACHE_SOURCE)'),
      Flag.withDefault("default")
    ),
    maxFailureRatio: Flag.Finite("max-failure-ratio").pipe(
      Flag.withDescription("exit with code 2 when failed/total is above this ratio"),
      Flag.withDefault(0)
    )
  },
  Effect.fnUntraced(function* (flags) {
    const chosen = [flags.keys, flags.keysFile, flags.pattern].filter(Option.isSome).length
    if (chosen !== 1) return yield* failWith("warm needs exactly one of --keys, --keys-file or --pattern")
    if (flags.concurrency < 1) return yield* failWith("--concurrency must be at least 1")
    if (flags.batchSize < 1) return yield* failWith("--batch-size must be at least 1")
    if (flags.maxFailureRatio < 0 || flags.maxFailureRatio > 1) {
      return yield* failWith("--max-failure-ratio must be between 0 and 1")
    }
    if (Option.isSome(flags.ttl) && flags.ttl.value < 1) return yield* failWith("--ttl must be at least 1 second")
    const tags = Option.map(flags.tags, splitList)
    let keys: ReadonlyArray<string> | undefined
    if (Option.isSome(flags.keys)) keys = splitList(flags.keys.value)
    if (Option.isSome(flags.keysFile)) {
      const file = flags.keysFile.value
      keys = yield* KeysFile.read(file).pipe(
        Effect.catch((error) => failWith(`cannot read --keys-file ${file}: ${error.reason}`))
      )
    }
    const pattern = Option.getOrUndefined(flags.pattern)
    const progress = progressBar()
    const startedAt = yield* Clock.currentTimeMillis

    const warmed = yield* Option.isSome(flags.url)
      ? warmRemote(flags.url.value, flags, keys, pattern, Option.getOrUndefined(tags), progress)
      : warmLocal(flags, keys, pattern, Option.getOrUndefined(tags), progress)
    yield* progress.end
    const summary = { ...warmed, duration_ms: (yield* Clock.currentTimeMillis) - startedAt }
    yield* Console.log(JSON.stringify(summary))
    const ratio = summary.total === 0 ? 0 : summary.failed / summary.total
    if (ratio > flags.maxFailureRatio) {
      return yield* failWith(
        `${summary.failed} of ${summary.total} keys failed (ratio ${ratio.toFixed(3)} > --max-failure-ratio ${flags.maxFailureRatio})`,
        2
      )
    }
  })
).pipe(
  Command.withDescription(
    "Warm keys from the data source: through a running instance (--url) or directly into the configured store"
  )
)

interface WarmFlags {
  readonly ttl: Option.Option<number>
  readonly concurrency: number
  readonly batchSize: number
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly source: string
}

/** Warms through `POST /api/v1/cache/warm`, a batch of keys per request so progress can be shown. */
const warmRemote = Effect.fnUntraced(function* (
  url: string,
  flags: WarmFlags,
  keys: ReadonlyArray<string> | undefined,
  pattern: string | undefined,
  tags: ReadonlyArray<string> | undefined,
  progress: ReturnType<typeof progressBar>
) {
  const options = {
    source: flags.source,
    ...(Option.isSome(flags.ttl) ? { ttl: flags.ttl.value } : {}),
    ...(tags === undefined ? {} : { tags })
  }
  if (pattern !== undefined) {
    // The instance lists the keys itself: one request, no intermediate progress.
    const answer = yield* warmAnswer(
      yield* callApi(url, flags.token, "POST", "/api/v1/cache/warm", { pattern, ...options })
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
        yield* callApi(url, flags.token, "POST", "/api/v1/cache/warm", { keys: batch, ...options })
      )
      summary = combine(summary, answer)
      done += batch.length
      yield* progress.update(done, distinct.length)
    }),
    { concurrency: flags.concurrency, discard: true }
  )
  return summary
})

/**
 * Warms the configured store directly (same environment as `serve`), through a cache without a publisher: a warm
 * fills absent keys only and announces nothing to other instances.
 */
const warmLocal = Effect.fnUntraced(function* (
  flags: WarmFlags,
  keys: ReadonlyArray<string> | undefined,
  pattern: string | undefined,
  tags: ReadonlyArray<string> | undefined,
  progress: ReturnType<typeof progressBar>
) {
  const config = yield* CacheConfig.CacheConfig
  const service = yield* CacheConfig.ServiceConfig
  if (service.source === "none") {
    return yield* failWith("no data source configured to warm from: set CACHE_SOURCE=http and CACHE_SOURCE_URL")
  }
  if (flags.source !== "default" && flags.source !== service.source) {
    return yield* failWith(`unknown data source "${flags.source}"; use "default" or "${service.source}"`)
  }
  const store = yield* Service.storeFromConfig(config, Service.instanceIdOf(config))
  const cache = Cache.layer({ defaultTtl: Duration.seconds(config.defaultTtlSeconds) }).pipe(Layer.provide(store))
  const options: Warm.WarmOptions = {
    ttl: Option.isSome(flags.ttl) ? Duration.seconds(flags.ttl.value) : undefined,
    tags,
    concurrency: flags.concurrency,
    batchSize: flags.batchSize,
    onProgress: progress.update
  }
  const report = yield* (
    pattern !== undefined
      ? Warm.warmByPattern(pattern, options).pipe(
          Effect.catchTags({
            KeyListingUnsupportedError: (error) => failWith(error.message),
            LoadError: (error) => failWith(`listing the source's keys failed: ${error.message}`)
          })
        )
      : Warm.warm(keys ?? [], options)
  ).pipe(Effect.provide(Layer.mergeAll(cache, HttpDataSource.layerConfig)))
  return Warm.summary(report)
})

const stats = Command.make(
  "stats",
  { url: urlFlag.pipe(Flag.withDefault(defaultUrl)), token: tokenFlag },
  Effect.fnUntraced(function* ({ url, token }) {
    const body = yield* callApi(url, token, "GET", "/api/v1/cache/stats")
    yield* Console.log(JSON.stringify(body))
  })
).pipe(Command.withDescription("Print a running instance's stats as JSON"))

const invalidate = Command.make(
  "invalidate",
  {
    key: Flag.String("key").pipe(Flag.withDescription("invalidate this key"), Flag.optional),
    pattern: Flag.String("pattern").pipe(Flag.withDescription("invalidate the keys matching this glob"), Flag.optional),
    all: Flag.Boolean("all").pipe(
      Flag.withDescription("with --pattern: also the keys of every data type (see the API)"),
      Flag.withDefault(false)
    ),
    tags: Flag.String("tags").pipe(
      Flag.withDescription("invalidate the keys carrying any of these comma-separated tags"),
      Flag.optional
    ),
    url: urlFlag.pipe(Flag.withDefault(defaultUrl)),
    token: tokenFlag
  },
  Effect.fnUntraced(function* ({ key, pattern, all, tags, url, token }) {
    const chosen = [key, pattern, tags].filter(Option.isSome).length
    if (chosen !== 1) return yield* failWith("invalidate needs exactly one of --key, --pattern or --tags")
    if (all && Option.isNone(pattern)) return yield* failWith("--all goes with --pattern")
    const body = Option.isSome(key)
      ? { invalidation_type: "key", key: key.value }
      : Option.isSome(pattern)
        ? { invalidation_type: "pattern", pattern: pattern.value, ...(all ? { all } : {}) }
        : { invalidation_type: "tag", tags: splitList(Option.getOrElse(tags, () => "")) }
    const answer = yield* callApi(url, token, "POST", "/api/v1/cache/invalidate", body)
    yield* Console.log(JSON.stringify(answer))
  })
).pipe(Command.withDescription("Invalidate a key, a pattern or tags on a running instance (and, synced, everywhere)"))

const sweepQueues = Command.make(
  "sweep-queues",
  {
    prefix: Flag.String("prefix").pipe(
      Flag.withDescription("queue name prefix of the instances' queues"),
      Flag.withDefault(SqsQueue.defaultQueuePrefix)
    ),
    olderThan: Flag.Int("older-than-minutes").pipe(
      Flag.withDescription("a queue whose heartbeat is older than this is an orphan"),
      Flag.withDefault(30)
    ),
    topicArn: Flag.String("topic-arn").pipe(Flag.withDescription("unsubscribe orphans from this topic"), Flag.optional)
  },
  Effect.fnUntraced(function* ({ prefix, olderThan, topicArn }) {
    const swept = yield* QueueSweeper.sweepOrphanQueues({
      prefix,
      olderThan: `${olderThan} minutes`,
      topicArn: Option.getOrUndefined(topicArn)
    })
    yield* Console.log(JSON.stringify({ swept: swept.map((queue) => queue.queueUrl) }))
  })
).pipe(Command.withDescription("Delete the SQS queues (and subscriptions, DLQs) of instances that died"))

const serve = Command.make("serve", {}, () => Layer.launch(Service.layer)).pipe(
  Command.withDescription("Run the cache sidecar (REST API, embedded Redis, sync) until SIGTERM or SIGINT")
)

/** The root command with its subcommands. */
export const command = Command.make("embedded-cache").pipe(
  Command.withDescription("Embedded local Redis cache for this application instance"),
  Command.withSubcommands([serve, warm, stats, invalidate, sweepQueues])
)
