/**
 * Ready-made compositions of the cache that need no Redis: `layerMemory` for unit tests and Redis-less runs, and
 * `layerSynced`, which adds the bus to any store — writes publish, and a background consumer applies what the other
 * instances publish. Importing this module loads neither ioredis nor `node:child_process` (test/ImportRule.test.ts
 * checks it); the Redis compositions are in `RedisCache.ts`.
 */
import { Layer } from "effect"
import * as Cache from "../effects/Cache.ts"
import * as Publisher from "../effects/Publisher.ts"
import * as SyncConsumer from "../effects/SyncConsumer.ts"
import type { CacheStore } from "../src/CacheStore.ts"
import type { InvalidationBus } from "../src/InvalidationBus.ts"
import * as MemoryStore from "./store/MemoryStore.ts"

/** The cache on a fresh in-process store: no Redis, no network. */
export const layerMemory = (options: Cache.CacheOptions = {}): Layer.Layer<Cache.Cache | CacheStore> =>
  Cache.layer(options).pipe(Layer.provideMerge(MemoryStore.layer))

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
    Layer.provideMerge(Cache.layerPublishing(options.cache)),
    Layer.provideMerge(Publisher.layer(options.publisher)),
    Layer.provideMerge(options.store),
    Layer.provideMerge(options.bus)
  )
