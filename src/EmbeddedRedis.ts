/**
 * The port of a supervised `redis-server` child process owned by one cache instance: its configuration schema
 * (memory limit, every eviction policy, persistence) and the handle the adapter provides. The server listens
 * only on a unix socket inside the instance's data directory; it never opens a TCP port.
 */
import { Context, type Effect, Schema } from "effect"

/** Every `maxmemory-policy` Redis knows. */
export const EvictionPolicy = Schema.Literals([
  "noeviction",
  "allkeys-lru",
  "allkeys-lfu",
  "allkeys-random",
  "volatile-lru",
  "volatile-lfu",
  "volatile-random",
  "volatile-ttl"
])
export type EvictionPolicy = typeof EvictionPolicy.Type

/** What survives a restart: nothing, RDB snapshots, the append-only file, or both. */
export const Persistence = Schema.Literals(["none", "rdb", "aof", "rdb+aof"])
export type Persistence = typeof Persistence.Type

/** How often the append-only file is fsynced. */
export const AppendFsync = Schema.Literals(["always", "everysec", "no"])
export type AppendFsync = typeof AppendFsync.Type

const units: Record<string, number> = { "": 1, b: 1, k: 1000, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 }

/** Bytes of a Redis memory size (`"256mb"`, `"4mb"`, `1048576`), with Redis's own unit rules; undefined if invalid. */
export const parseBytes = (size: string | number): number | undefined => {
  if (typeof size === "number") return Number.isSafeInteger(size) && size >= 0 ? size : undefined
  const match = /^(\d+)\s*([a-z]*)$/i.exec(size.trim())
  const unit = match === null ? undefined : units[match[2]!.toLowerCase()]
  return match === null || unit === undefined ? undefined : Number(match[1]) * unit
}

/** A Redis memory size: bytes, or a number with a Redis unit (`b`, `k`, `kb`, `m`, `mb`, `g`, `gb`). */
export const MemorySize = Schema.Union([Schema.Int, Schema.String]).pipe(
  Schema.check(
    Schema.makeFilter(
      (size: string | number) => parseBytes(size) !== undefined || "expected bytes or a size such as 256mb"
    )
  )
)

/** How to run the embedded server. */
export const EmbeddedRedisConfig = Schema.Struct({
  /** Directory for the socket, lock, config and RDB/AOF files; created with mode 0700. */
  dataDir: Schema.String,
  maxmemory: MemorySize,
  evictionPolicy: EvictionPolicy,
  persistence: Persistence,
  appendfsync: AppendFsync,
  /** The server binary; `redis-server` from PATH by default. */
  binary: Schema.optionalKey(Schema.String),
  /** How long a start may take before it fails, in milliseconds (loading a large AOF counts). */
  startTimeoutMs: Schema.optionalKey(Schema.Int)
})
export type EmbeddedRedisConfig = typeof EmbeddedRedisConfig.Type

/** The defaults of the configuration contract, for a data directory. */
export const defaults = (dataDir: string): EmbeddedRedisConfig => ({
  dataDir,
  maxmemory: "256mb",
  evictionPolicy: "allkeys-lru",
  persistence: "none",
  appendfsync: "everysec"
})

/** Why the embedded server could not be run. */
export const ServerFailure = Schema.Literals(["BinaryNotFound", "Locked", "StartFailed", "InvalidConfig"])

/** The embedded server could not be started (or restarted). */
export class RedisServerError extends Schema.TaggedError<RedisServerError>()("RedisServerError", {
  reason: ServerFailure,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A running, supervised embedded server. */
export class EmbeddedRedis extends Context.Service<
  EmbeddedRedis,
  {
    /** The unix socket clients connect to; stable across restarts. */
    readonly socketPath: string
    readonly dataDir: string
    readonly config: EmbeddedRedisConfig
    /** The pid of the server now running, or undefined while it is being restarted. */
    readonly pid: Effect.Effect<number | undefined>
    /** How many times the supervisor has restarted the server after it died. */
    readonly restarts: Effect.Effect<number>
    /** Waits until the server answers PING (immediately when it is up). */
    readonly awaitReady: Effect.Effect<void>
  }
>()("embedded-cache/EmbeddedRedis") {}
