/**
 * Simulated instances in one process: each has its own memory store, cache, publisher and sync consumer, and
 * all share one MemoryBus hub, so cross-instance invalidation is tested without a network.
 */
import type { Context } from "effect"
import { Effect, Layer, type Scope } from "effect"
import type * as Cache from "../../effects/Cache.ts"
import type * as Publisher from "../../effects/Publisher.ts"
import type * as SyncConsumer from "../../effects/SyncConsumer.ts"
import * as CacheLayers from "../../layers/CacheLayers.ts"
import * as MemoryBus from "../../layers/bus/MemoryBus.ts"
import * as MemoryStore from "../../layers/store/MemoryStore.ts"
import type { CacheStore } from "../../src/CacheStore.ts"
import type { InvalidationBus } from "../../src/InvalidationBus.ts"

/** Everything an instance provides. */
export type Instance = Context.Context<
  Cache.Cache | CacheStore | Publisher.Publisher | SyncConsumer.SyncConsumer | InvalidationBus
>

/** The layer of one instance on `hub`. */
export const instanceLayer = (
  hub: MemoryBus.MemoryHub,
  id: string,
  options: {
    readonly sync?: SyncConsumer.SyncOptions
    readonly store?: Layer.Layer<CacheStore, unknown>
    readonly queueCreated?: boolean
    /** Default: no coalescing window (tests on a TestClock would otherwise wait for it). */
    readonly publisher?: Publisher.PublisherOptions
    readonly cache?: Cache.CacheOptions
  } = {}
) =>
  CacheLayers.layerSynced({
    store: options.store ?? MemoryStore.layer,
    cache: options.cache,
    bus: MemoryBus.layer(hub, id, { queueCreated: options.queueCreated ?? false }),
    publisher: options.publisher ?? { awaitMs: 1000, coalesceWindow: 0 },
    sync: options.sync
  })

/** Builds instances `ids` on `hub` in the current scope. */
export const instances = (
  hub: MemoryBus.MemoryHub,
  ids: ReadonlyArray<string>,
  options: { readonly sync?: SyncConsumer.SyncOptions; readonly publisher?: Publisher.PublisherOptions } = {}
): Effect.Effect<ReadonlyArray<Instance>, never, Scope.Scope> =>
  Effect.forEach(ids, (id) => Effect.orDie(Layer.build(instanceLayer(hub, id, options))))

/** The services of an instance. */
export type Services = Cache.Cache | CacheStore | Publisher.Publisher | SyncConsumer.SyncConsumer | InvalidationBus

/** Runs `effect` on `instance`. */
export const on = <A, E>(instance: Instance, effect: Effect.Effect<A, E, Services>): Effect.Effect<A, E> =>
  Effect.provide(effect, instance) as Effect.Effect<A, E>
