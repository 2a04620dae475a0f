/**
 * The `embedded-cache` command line on `effect/cli`. `serve` runs the instance's cache sidecar: its embedded
 * redis-server (or the configured store) under supervision until SIGTERM/SIGINT, when the server is shut down
 * with it. Configuration comes from the environment (see `src/CacheConfig.ts`).
 */
import { Console, Effect, Layer, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../effects/Cache.ts"
import * as CacheConfig from "../src/CacheConfig.ts"
import { CacheStore, type CacheStoreError } from "../src/CacheStore.ts"
import { EmbeddedRedis, type RedisServerError } from "../src/EmbeddedRedis.ts"
import * as CacheLayers from "./CacheLayers.ts"
import * as EmbeddedRedisServer from "./EmbeddedRedisServer.ts"
import * as MemoryStore from "./MemoryStore.ts"
import * as RedisStore from "./RedisStore.ts"
import * as SnsSqsBus from "./SnsSqsBus.ts"

/** Whether `redis-server` can be run from PATH. */
export const redisServerOnPath = (): boolean => spawnSync("redis-server", ["--version"]).status === 0

/** The store layer the configuration asks for, resolving `auto` (the embedded server comes with it). */
const storeFromConfig = (config: CacheConfig.CacheConfig, instanceId: string) =>
  Effect.gen(function* () {
    let kind = config.store
    if (kind === "auto") {
      kind = redisServerOnPath() ? "embedded" : "memory"
      if (kind === "memory") yield* Effect.logWarning("redis-server is not on PATH: using the in-process memory store")
    }
    switch (kind) {
      case "memory":
        return MemoryStore.layer as Layer.Layer<CacheStore, CacheStoreError | RedisServerError>
      case "external":
        if (Option.isNone(config.redisUrl)) {
          return yield* new CacheConfig.InvalidConfigError({
            variable: "CACHE_REDIS_URL",
            message: "CACHE_STORE=external needs CACHE_REDIS_URL (a redis:// URL or a unix socket path)"
          })
        }
        return RedisStore.layer({ connection: config.redisUrl.value })
      default: {
        const dataDir = Option.getOrElse(config.dataDir, () => path.join(".embedded-cache", instanceId))
        return RedisStore.layerEmbedded().pipe(
          Layer.provideMerge(
            EmbeddedRedisServer.layer({
              dataDir,
              maxmemory: config.maxmemory,
              evictionPolicy: config.evictionPolicy,
              persistence: config.persistence,
              appendfsync: config.appendfsync
            })
          )
        )
      }
    }
  })

/** The bus layer the configuration asks for, if any. */
const busFromConfig = (config: CacheConfig.CacheConfig, instanceId: string) =>
  Effect.gen(function* () {
    if (config.bus === "none") return undefined
    if (Option.isNone(config.snsTopicArn) && Option.isNone(config.snsTopicName)) {
      return yield* new CacheConfig.InvalidConfigError({
        variable: "CACHE_SNS_TOPIC_ARN",
        message: "CACHE_BUS=sns-sqs needs CACHE_SNS_TOPIC_ARN or CACHE_SNS_TOPIC_NAME"
      })
    }
    return SnsSqsBus.layer({
      instanceId,
      topicArn: Option.getOrUndefined(config.snsTopicArn),
      topicName: Option.getOrUndefined(config.snsTopicName),
      queueUrl: Option.getOrUndefined(config.sqsQueueUrl),
      queuePrefix: config.sqsQueuePrefix
    })
  })

/** The cache the configuration asks for: its store, and its bus when instances are synchronised. */
export const layerFromConfig = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* CacheConfig.CacheConfig
    const instanceId = Option.getOrElse(config.instanceId, () => `${os.hostname()}-${process.pid}`)
    const cache: Cache.CacheOptions = { defaultTtl: `${config.defaultTtlSeconds} seconds` }
    const store = yield* storeFromConfig(config, instanceId)
    const bus = yield* busFromConfig(config, instanceId)
    return bus === undefined
      ? Cache.layer(cache).pipe(Layer.provideMerge(store))
      : CacheLayers.layerSynced({ store, bus, cache })
  })
)

const sweepQueues = Command.make(
  "sweep-queues",
  {
    prefix: Flag.String("prefix").pipe(
      Flag.withDescription("queue name prefix of the instances' queues"),
      Flag.withDefault(SnsSqsBus.defaultQueuePrefix)
    ),
    olderThan: Flag.Int("older-than-minutes").pipe(
      Flag.withDescription("a queue whose heartbeat is older than this is an orphan"),
      Flag.withDefault(30)
    ),
    topicArn: Flag.String("topic-arn").pipe(Flag.withDescription("unsubscribe orphans from this topic"), Flag.optional)
  },
  Effect.fnUntraced(function* ({ prefix, olderThan, topicArn }) {
    const swept = yield* SnsSqsBus.sweepOrphanQueues({
      prefix,
      olderThan: `${olderThan} minutes`,
      topicArn: Option.getOrUndefined(topicArn)
    })
    yield* Console.log(JSON.stringify({ swept: swept.map((queue) => queue.queueUrl) }))
  })
).pipe(Command.withDescription("Delete the SQS queues (and subscriptions, DLQs) of instances that died"))

const serve = Command.make(
  "serve",
  {},
  Effect.fnUntraced(
    function* () {
      const store = yield* CacheStore
      const info = yield* store.info
      const embedded = yield* Effect.serviceOption(EmbeddedRedis)
      yield* Effect.logInfo("embedded-cache is serving").pipe(
        Effect.annotateLogs({
          store: info.kind,
          maxmemory: info.maxMemory,
          socket: Option.match(embedded, { onNone: () => "none", onSome: (server) => server.socketPath })
        })
      )
      return yield* Effect.never
    },
    (effect) => Effect.provide(effect, layerFromConfig)
  )
).pipe(Command.withDescription("Run the cache sidecar until SIGTERM or SIGINT"))

/** The root command with its subcommands. */
export const command = Command.make("embedded-cache").pipe(
  Command.withDescription("Embedded local Redis cache for this application instance"),
  Command.withSubcommands([serve, sweepQueues])
)
