/**
 * The cache for callers who do not use Effect: `await createCache(config)` builds the store (a fresh in-process
 * store, a supervised embedded redis-server, or an external Redis), the cache and its stats on one
 * `ManagedRuntime`, and answers plain Promises. A failure rejects with the typed error itself (`InvalidKeyError`,
 * `LoadError`, a loader's own rejection, …); `close()` disposes the runtime, which shuts the embedded server down.
 *
 * Values are JSON (checked with `Schema.Json` when written); TTLs are in seconds, as in the REST API and the
 * configuration. Writes fail soft like the Effect API: while the store is failing, `set` answers `false` and a
 * delete or invalidation answers `pending: true`, and the key is invalidated before the store serves reads again.
 */
import { Duration, Effect, Layer, type LogLevel, ManagedRuntime, Option, References, Schema } from "effect"
import * as os from "node:os"
import * as Cache from "../effects/Cache.ts"
import * as Stats from "../effects/Stats.ts"
import * as Warm from "../effects/Warm.ts"
import type { CacheStore } from "../src/CacheStore.ts"
import * as DataSource from "../src/DataSource.ts"
import {
  type AppendFsync,
  defaults,
  EmbeddedRedisConfig,
  type EvictionPolicy,
  type Persistence
} from "../src/EmbeddedRedis.ts"
import * as Ttl from "../src/Ttl.ts"
import * as StoreChoice from "./store/StoreChoice.ts"

/** A fresh in-process store: no Redis, nothing survives `close()`. */
export interface MemoryStoreConfig {
  readonly store: "memory"
}

/** A redis-server started for this cache in `dataDir` (unix socket only) and stopped by `close()`. */
export interface EmbeddedStoreConfig {
  readonly store: "embedded"
  readonly dataDir: string
  /** Bytes or a Redis size such as `"256mb"` (the default). */
  readonly maxmemory?: string | number | undefined
  /** Default `allkeys-lru`. */
  readonly evictionPolicy?: EvictionPolicy | undefined
  /** Default `none`. */
  readonly persistence?: Persistence | undefined
  readonly appendfsync?: AppendFsync | undefined
  /** The server binary; `redis-server` from PATH by default. */
  readonly binary?: string | undefined
}

/** A Redis this cache does not own: a `redis://` URL or a unix socket path. */
export interface ExternalStoreConfig {
  readonly store: "external"
  readonly url: string
}

/** How to build the cache. */
export type FacadeConfig = (MemoryStoreConfig | EmbeddedStoreConfig | ExternalStoreConfig) & {
  /** TTL in seconds of entries written or loaded without one; none means no expiry. */
  readonly defaultTtl?: number | undefined
  /** This instance's name in stats; `hostname-pid` by default. */
  readonly instanceId?: string | undefined
  /** The source of truth `warm` loads from when it is given no loader of its own. */
  readonly load?: Loader | undefined
  /** The least severe log line written to the console (alerts, store outages, warm summaries). Default `Info`. */
  readonly logLevel?: LogLevel.LogLevel | undefined
}

/** Options of a write or a load: TTL in seconds (the default TTL when absent) and tags. */
export interface WriteOptions {
  readonly ttl?: number | undefined
  readonly tags?: ReadonlyArray<string> | undefined
}

/** What a delete or an invalidation did. */
export interface InvalidationResult {
  /** Live entries removed (exact); 0 while `pending`. */
  readonly removed: number
  /** The store is failing: the removal is applied when it recovers, and reads never see the old value meanwhile. */
  readonly pending: boolean
}

/** Loads one key from the source of truth; `undefined` means the source has no such key. */
export type Loader = (key: string) => Promise<unknown>

/** The cache, as plain Promises. */
export interface EmbeddedCache {
  /** The value at `key`, or `undefined` on a miss (or while the store is failing). */
  readonly get: <T = unknown>(key: string) => Promise<T | undefined>
  /** Writes `value` (JSON); `false` when the store is failing (the key is then invalidated on recovery). */
  readonly set: (key: string, value: unknown, options?: WriteOptions) => Promise<boolean>
  /**
   * The value at `key`, or the result of `load` written back. Concurrent callers of a key share one load; a load
   * that raced an invalidation of its key answers its callers but is not written back.
   */
  readonly getOrLoad: <T>(key: string, load: () => Promise<T>, options?: WriteOptions) => Promise<T>
  /** Removes `key`. */
  readonly delete: (key: string) => Promise<InvalidationResult>
  /** Removes `key` (the same as `delete`, named as the REST API names it). */
  readonly invalidateKey: (key: string) => Promise<InvalidationResult>
  /** Removes every key matching the glob `pattern`; a pattern matching everything needs `all: true`. */
  readonly invalidatePattern: (pattern: string, options?: { readonly all?: boolean }) => Promise<InvalidationResult>
  /** Removes every entry carrying any of `tags`. */
  readonly invalidateTags: (tags: ReadonlyArray<string>) => Promise<InvalidationResult>
  /**
   * Loads `keys` into the cache with `load` (or the configured `load`), one call per key, a few at a time, without
   * publishing. Keys already cached are left alone; the report counts warmed, missing and failed keys.
   */
  readonly warm: (keys: Iterable<string>, load?: Loader, options?: WriteOptions) => Promise<Warm.WarmReport>
  /** The stats, as the REST API reports them. */
  readonly stats: () => Promise<Stats.StatsSnapshot>
  /** Shuts the cache down (and its embedded server); later calls reject with `CacheClosedError`. */
  readonly close: () => Promise<void>
}

/** A call on a cache after `close()`. */
export class CacheClosedError extends Schema.TaggedError<CacheClosedError>()("CacheClosedError", {
  message: Schema.String
}) {}

/** An argument or a configuration value the facade refuses, named. */
export class InvalidArgumentError extends Schema.TaggedError<InvalidArgumentError>()("InvalidArgumentError", {
  argument: Schema.String,
  message: Schema.String
}) {}

/** Any JSON value; what the facade stores. */
const json = Schema.Json as Cache.ValueSchema<unknown>

const ttlOf = (
  argument: string,
  seconds: number | undefined
): Effect.Effect<Ttl.Input | undefined, InvalidArgumentError> =>
  seconds === undefined
    ? Effect.succeed(undefined)
    : Number.isFinite(seconds) && seconds > 0 && seconds <= Ttl.maxSeconds
      ? Effect.succeed(Duration.seconds(seconds))
      : Effect.fail(
          new InvalidArgumentError({ argument, message: `expected seconds in 1..${Ttl.maxSeconds}, got ${seconds}` })
        )

/** Runs `f` with the write options' TTL converted (and checked) and their tags. */
const withTtl = <A, E>(
  options: WriteOptions | undefined,
  f: (ttl: Ttl.Input | undefined, tags: ReadonlyArray<string> | undefined) => Effect.Effect<A, E, Cache.Cache>
) => Effect.flatMap(ttlOf("ttl", options?.ttl), (ttl) => f(ttl, options?.tags))

const result = (outcome: Cache.DeleteOutcome): InvalidationResult =>
  outcome._tag === "Deleted" ? { removed: outcome.removed, pending: false } : { removed: 0, pending: true }

/** The store the configuration asks for, checked. */
const storeChoice = (
  config: FacadeConfig
): Effect.Effect<StoreChoice.StoreChoice, InvalidArgumentError | Schema.SchemaError> =>
  Effect.gen(function* () {
    switch (config.store) {
      case "memory":
        return { _tag: "memory" } as const
      case "external":
        if (config.url.length === 0) {
          return yield* new InvalidArgumentError({
            argument: "url",
            message: "expected a redis:// URL or a socket path"
          })
        }
        return { _tag: "external", connection: config.url } as const
      case "embedded": {
        if (config.dataDir.length === 0) {
          return yield* new InvalidArgumentError({ argument: "dataDir", message: "expected a directory" })
        }
        const server = yield* Schema.decodeUnknownEffect(EmbeddedRedisConfig)({
          ...defaults(config.dataDir),
          ...definedOf(config)
        })
        return { _tag: "embedded", server } as const
      }
      default:
        return yield* new InvalidArgumentError({
          argument: "store",
          message: `expected "memory", "embedded" or "external", got ${String((config as { store: unknown }).store)}`
        })
    }
  })

/** The embedded options the caller set (undefined ones fall back to the defaults). */
const definedOf = (config: EmbeddedStoreConfig): Partial<EmbeddedRedisConfig> => {
  const out: Record<string, unknown> = {}
  for (const name of ["maxmemory", "evictionPolicy", "persistence", "appendfsync", "binary"] as const) {
    if (config[name] !== undefined) out[name] = config[name]
  }
  return out as Partial<EmbeddedRedisConfig>
}

/**
 * Builds the cache `config` describes and waits until it is ready (the embedded server answers PING); rejects
 * with the configuration or start-up error, leaving nothing running.
 */
export const createCache = async (config: FacadeConfig): Promise<EmbeddedCache> => {
  const built = await Effect.runPromise(
    Effect.gen(function* () {
      const defaultTtl = yield* ttlOf("defaultTtl", config.defaultTtl)
      const store = yield* storeChoice(config)
      return Cache.layer({ defaultTtl }).pipe(Layer.provideMerge(StoreChoice.layer(store)))
    })
  )
  const instanceId = config.instanceId ?? `${os.hostname()}-${process.pid}`
  // The log level is in the build's context (background fibers inherit it) and in every call's.
  const runtime = ManagedRuntime.make(
    Stats.layerInstrumented({ instanceId }).pipe(
      Layer.provideMerge(built),
      Layer.provideMerge(Layer.succeed(References.MinimumLogLevel, config.logLevel ?? "Info"))
    )
  )
  try {
    await runtime.context()
  } catch (error) {
    await runtime.dispose()
    throw error
  }

  let closed: Promise<void> | undefined
  const run = <A, E>(effect: Effect.Effect<A, E, Cache.Cache | CacheStore | Stats.Stats>): Promise<A> =>
    closed === undefined
      ? runtime.runPromise(effect)
      : Promise.reject(new CacheClosedError({ message: "this cache has been closed" }))
  const invalidate = (target: Parameters<Cache.Cache["Service"]["invalidate"]>[0]) =>
    run(Cache.Cache.use((cache) => Effect.map(cache.invalidate(target), result)))

  return {
    get: <T>(key: string) =>
      run(
        Cache.Cache.use((cache) =>
          Effect.map(cache.get(key, json), (value) => Option.getOrUndefined(value) as T | undefined)
        )
      ),
    set: (key, value, options) =>
      run(
        withTtl(options, (ttl, tags) =>
          Cache.Cache.use((cache) =>
            Effect.map(cache.set(key, value, { schema: json, ttl, tags }), (outcome) => outcome._tag === "Written")
          )
        )
      ),
    getOrLoad: <T>(key: string, load: () => Promise<T>, options?: WriteOptions) =>
      run(
        withTtl(options, (ttl, tags) =>
          Cache.Cache.use((cache) =>
            cache.getOrLoad(key, Effect.tryPromise({ try: load, catch: (error) => error }), {
              schema: json as Cache.ValueSchema<T>,
              ttl,
              tags
            })
          )
        )
      ),
    delete: (key) => run(Cache.Cache.use((cache) => Effect.map(cache.delete(key), result))),
    invalidateKey: (key) => invalidate({ invalidation_type: "key", key }),
    invalidatePattern: (pattern, options) =>
      invalidate(
        options?.all === undefined
          ? { invalidation_type: "pattern", pattern }
          : { invalidation_type: "pattern", pattern, all: options.all }
      ),
    invalidateTags: (tags) => invalidate({ invalidation_type: "tag", tags }),
    warm: (keys, given, options) => {
      const load = given ?? config.load
      if (load === undefined) {
        return Promise.reject(
          new InvalidArgumentError({ argument: "load", message: "warm needs a loader: pass one, or set `load`" })
        )
      }
      return run(
        Effect.flatMap(ttlOf("ttl", options?.ttl), (ttl) =>
          Warm.warm(keys, { ttl, tags: options?.tags }).pipe(
            Effect.provideService(
              DataSource.DataSource,
              DataSource.make({
                load: (key) =>
                  Effect.tryPromise({
                    try: () => load(key),
                    catch: (cause) =>
                      new DataSource.LoadError({
                        key,
                        message: cause instanceof Error ? cause.message : String(cause),
                        cause
                      })
                  }).pipe(Effect.map(Option.fromUndefinedOr)),
                concurrency: 8
              })
            )
          )
        )
      )
    },
    stats: () => run(Stats.snapshot),
    close: () => {
      closed ??= runtime.dispose()
      return closed
    }
  }
}
