/**
 * Ready-made compositions of the cache: `layerMemory` for unit tests and Redis-less runs, `layerEmbedded` for
 * production (a supervised redis-server on a unix socket plus the Redis store). Both provide `Cache` and the
 * `CacheStore` beneath it; the same program runs on either.
 */
import { Layer } from "effect"
import * as Cache from "../effects/Cache.ts"
import type { CacheStore, CacheStoreError } from "../src/CacheStore.ts"
import type { EmbeddedRedis, EmbeddedRedisConfig, RedisServerError } from "../src/EmbeddedRedis.ts"
import * as EmbeddedRedisServer from "./EmbeddedRedisServer.ts"
import * as MemoryStore from "./MemoryStore.ts"
import * as RedisStore from "./RedisStore.ts"

/** The cache on a fresh in-process store: no Redis, no network. */
export const layerMemory = (options: Cache.CacheOptions = {}): Layer.Layer<Cache.Cache | CacheStore> =>
  Cache.layer(options).pipe(Layer.provideMerge(MemoryStore.layer))

/** Options of the embedded composition. */
export interface EmbeddedOptions {
  readonly server: EmbeddedRedisConfig
  readonly store?: Omit<RedisStore.RedisStoreOptions, "connection"> | undefined
  readonly cache?: Cache.CacheOptions | undefined
}

/** The cache on its own supervised redis-server, which is shut down with the layer. */
export const layerEmbedded = (
  options: EmbeddedOptions
): Layer.Layer<Cache.Cache | CacheStore | EmbeddedRedis, RedisServerError | CacheStoreError> =>
  Cache.layer(options.cache).pipe(
    Layer.provideMerge(RedisStore.layerEmbedded(options.store)),
    Layer.provideMerge(EmbeddedRedisServer.layer(options.server))
  )
