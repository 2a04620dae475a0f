/**
 * The `embedded-cache` command line on `effect/cli`. `serve` runs the instance's cache sidecar (`Serve.ts`) until
 * SIGTERM/SIGINT, when it drains and shuts its embedded redis-server down; `sweep-queues` removes the SQS queues of
 * instances that died. The one-shot commands — `warm` (`WarmCommand.ts`), `stats`, `invalidate`, and `get`, `set`,
 * `del` (`EntryCommands.ts`) — talk to the sidecar running on this machine (`http://127.0.0.1:$CACHE_HTTP_PORT`,
 * 8080) or to `--url`; only `warm --offline` opens the configured store itself. Configuration comes from the
 * environment (`src/CacheConfig.ts`); output and exit codes are described in `CliOutput.ts`.
 */
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import * as QueueSweeper from "../bus/QueueSweeper.ts"
import * as SqsQueue from "../bus/SqsQueue.ts"
import * as ApiClient from "./ApiClient.ts"
import * as CliOutput from "./CliOutput.ts"
import * as EntryCommands from "./EntryCommands.ts"
import * as Serve from "./Serve.ts"
import * as WarmCommand from "./WarmCommand.ts"

/** `{pattern | tags | key, keys_invalidated}` for reading on a terminal. */
const describeInvalidation = (answer: unknown): string => {
  const { key, pattern, tags, keys_invalidated } = answer as {
    readonly key?: string
    readonly pattern?: string
    readonly tags?: ReadonlyArray<string>
    readonly keys_invalidated?: number
  }
  const what =
    key !== undefined ? `key ${key}` : pattern !== undefined ? `pattern ${pattern}` : `tags ${tags?.join(", ")}`
  return `invalidated ${CliOutput.count(keys_invalidated ?? 0, "key")} (${what})`
}

const stats = Command.make(
  "stats",
  { url: ApiClient.urlFlag, token: ApiClient.tokenFlag, json: CliOutput.jsonFlag },
  Effect.fnUntraced(function* ({ url, token, json }) {
    const body = yield* ApiClient.call({ url, token }, "GET", "/api/v1/cache/stats")
    yield* CliOutput.print(json, body, (stats) => CliOutput.table(stats as Record<string, unknown>))
  })
).pipe(Command.withDescription("Print the running instance's stats"))

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
    url: ApiClient.urlFlag,
    token: ApiClient.tokenFlag,
    json: CliOutput.jsonFlag
  },
  Effect.fnUntraced(function* ({ key, pattern, all, tags, url, token, json }) {
    const chosen = [key, pattern, tags].filter(Option.isSome).length
    if (chosen !== 1) return yield* CliOutput.failWith("invalidate needs exactly one of --key, --pattern or --tags")
    if (all && Option.isNone(pattern)) return yield* CliOutput.failWith("--all goes with --pattern")
    const body = Option.isSome(key)
      ? { invalidation_type: "key", key: key.value }
      : Option.isSome(pattern)
        ? { invalidation_type: "pattern", pattern: pattern.value, ...(all ? { all } : {}) }
        : { invalidation_type: "tag", tags: CliOutput.splitList(Option.getOrElse(tags, () => "")) }
    const answer = yield* ApiClient.call({ url, token }, "POST", "/api/v1/cache/invalidate", body)
    yield* CliOutput.print(json, answer, describeInvalidation)
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

const serve = Command.make("serve", {}, () => Serve.run).pipe(
  Command.withDescription("Run the cache sidecar (REST API, embedded Redis, sync) until SIGTERM or SIGINT")
)

/** The root command with its subcommands. */
export const command = Command.make("embedded-cache").pipe(
  Command.withDescription("Embedded local Redis cache for this application instance"),
  Command.withSubcommands([serve, WarmCommand.command, stats, invalidate, ...EntryCommands.commands, sweepQueues])
)
