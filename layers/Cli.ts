/**
 * The `embedded-cache` command line on `effect/cli`. `serve` runs the instance's cache sidecar: its embedded
 * redis-server (or the configured store) under supervision until SIGTERM/SIGINT, when the server is shut down
 * with it. Configuration comes from the environment (see `src/CacheConfig.ts`).
 */
import { Effect, Layer, Option } from "effect"
import { Command } from "effect/cli"
import { spawnSync } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../effects/Cache.ts"
import { CacheConfig } from "../src/CacheConfig.ts"
import { CacheStore } from "../src/CacheStore.ts"
import { EmbeddedRedis } from "../src/EmbeddedRedis.ts"
import * as CacheLayers from "./CacheLayers.ts"
import * as RedisStore from "./RedisStore.ts"

/** Whether `redis-server` can be run from PATH. */
export const redisServerOnPath = (): boolean => spawnSync("redis-server", ["--version"]).status === 0

/** The cache layer the configuration asks for, resolving `auto`. */
export const layerFromConfig = Layer.unwrap(Effect.gen(function*() {
  const config = yield* CacheConfig
  const instanceId = Option.getOrElse(config.instanceId, () => `${os.hostname()}-${process.pid}`)
  const cache: Cache.CacheOptions = { defaultTtl: `${config.defaultTtlSeconds} seconds` }
  let kind = config.store
  if (kind === "auto") {
    kind = redisServerOnPath() ? "embedded" : "memory"
    if (kind === "memory") yield* Effect.logWarning("redis-server is not on PATH: using the in-process memory store")
  }
  yield* Effect.annotateLogsScoped({ instance: instanceId })
  switch (kind) {
    case "memory":
      return CacheLayers.layerMemory(cache)
    case "external": {
      if (Option.isNone(config.redisUrl)) {
        return yield* Effect.die(new Error("CACHE_STORE=external needs CACHE_REDIS_URL"))
      }
      return Cache.layer(cache).pipe(Layer.provideMerge(RedisStore.layer({ connection: config.redisUrl.value })))
    }
    default: {
      const dataDir = Option.getOrElse(config.dataDir, () => path.join(".embedded-cache", instanceId))
      return CacheLayers.layerEmbedded({
        server: {
          dataDir,
          maxmemory: config.maxmemory,
          evictionPolicy: config.evictionPolicy,
          persistence: config.persistence,
          appendfsync: config.appendfsync
        },
        cache
      })
    }
  }
}))

const serve = Command.make(
  "serve",
  {},
  Effect.fnUntraced(function*() {
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
  }, (effect) => Effect.provide(effect, layerFromConfig))
).pipe(Command.withDescription("Run the cache sidecar until SIGTERM or SIGINT"))

/** The root command with its subcommands. */
export const command = Command.make("embedded-cache").pipe(
  Command.withDescription("Embedded local Redis cache for this application instance"),
  Command.withSubcommands([serve])
)
