/**
 * Ready-made compositions of the cache: `layerMemory` for unit tests and Redis-less runs, `layerEmbedded` for
 * production (a supervised redis-server on a unix socket plus the Redis store). Both provide `Cache` and the
 * `CacheStore` beneath it; the same program runs on either. `layerSynced` adds the bus: writes publish, and a
 * background consumer applies what the other instances publish.
 */
import { Layer } from "effect"
import * as Cache from "../effects/Cache.ts"
import * as Publisher from "../effects/Publisher.ts"
import * as SyncConsumer from "../effects/SyncConsumer.ts"
import type { CacheStore, CacheStoreError } from "../src/CacheStore.ts"
import type { EmbeddedRedis, EmbeddedRedisConfig, RedisServerError } from "../src/EmbeddedRedis.ts"
import type { InvalidationBus } from "../src/InvalidationBus.ts"
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

/** The parts of a synchronised cache. */
export interface SyncedOptions<E1, R1, E2, R2> {
  readonly store: Layer.Layer<CacheStore, E1, R1>
  readonly bus: Layer.Layer<InvalidationBus, E2, R2>
  readonly cache?: Cache.CacheOptions | undefined
  readonly publisher?: Publisher.PublisherOptions | undefined
  readonly sync?: SyncConsumer.SyncOptions | undefined
}

/**
 * A cache kept coherent with its peers: writes and invalidations publish on `bus`, and the sync consumer
 * applies the peers' events to this instance (fills never publish).
 */
export const layerSynced = <E1, R1, E2, R2>(options: SyncedOptions<E1, R1, E2, R2>) =>
  SyncConsumer.layer(options.sync).pipe(
    Layer.provideMerge(Cache.layer(options.cache)),
    Layer.provideMerge(Publisher.layer(options.publisher)),
    Layer.provideMerge(options.store),
    Layer.provideMerge(options.bus)
  )
