/**
 * Ready-made compositions of the cache on Redis: `layerEmbedded` for production (a supervised redis-server on a
 * unix socket plus the Redis store) and `layerExternal` for a Redis this instance does not own. Both provide `Cache`
 * and the `CacheStore` beneath it, as `CacheLayers.layerMemory` does, so the same program runs on any of them.
 */
import { Layer } from "effect"
import * as Cache from "../effects/Cache.ts"
import type { CacheStore, CacheStoreError } from "../src/CacheStore.ts"
import type { EmbeddedRedis, EmbeddedRedisConfig, RedisServerError } from "../src/EmbeddedRedis.ts"
import * as EmbeddedRedisServer from "./store/EmbeddedRedisServer.ts"
import * as PendingFile from "./store/PendingFile.ts"
import * as RedisStore from "./store/RedisStore.ts"

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
    // Invalidations the store could not apply are recorded beside the data they guard, when it persists.
    Layer.provide(PendingFile.layerFor(options.server)),
    Layer.provideMerge(RedisStore.layerEmbedded(options.store)),
    Layer.provideMerge(EmbeddedRedisServer.layer(options.server))
  )

/** The cache on the Redis at `options.store.connection` (a `redis://` URL or a unix socket path). */
export const layerExternal = (options: {
  readonly store: RedisStore.RedisStoreOptions
  readonly cache?: Cache.CacheOptions | undefined
}): Layer.Layer<Cache.Cache | CacheStore, CacheStoreError> =>
  Cache.layer(options.cache).pipe(Layer.provideMerge(RedisStore.layer(options.store)))
