/**
 * Simulated instances in one process: each has its own memory store, cache, publisher and sync consumer, and
 * all share one MemoryBus hub, so cross-instance invalidation is tested without a network.
 */
import type { Context } from "effect"
import { Effect, Layer, type Scope } from "effect"
import * as Cache from "../../effects/Cache.ts"
import * as Publisher from "../../effects/Publisher.ts"
import * as SyncConsumer from "../../effects/SyncConsumer.ts"
import * as MemoryBus from "../../layers/MemoryBus.ts"
import * as MemoryStore from "../../layers/MemoryStore.ts"
import type { CacheStore } from "../../src/CacheStore.ts"
import type { InvalidationBus } from "../../src/InvalidationBus.ts"

/** Everything an instance provides. */
export type Instance = Context.Context<
  Cache.Cache | CacheStore | Publisher.Publisher | SyncConsumer.SyncConsumer | InvalidationBus
>

/** The layer of one instance on `hub`. */
export const instanceLayer = <E, R>(
  hub: MemoryBus.MemoryHub,
  id: string,
  options: {
    readonly sync?: SyncConsumer.SyncOptions
    readonly store?: Layer.Layer<CacheStore, E, R>
    readonly queueCreated?: boolean
  } = {}
) =>
  SyncConsumer.layer(options.sync).pipe(
    Layer.provideMerge(Cache.layer()),
    Layer.provideMerge(Publisher.layer({ awaitMs: 1000 })),
    Layer.provideMerge(options.store ?? (MemoryStore.layer as unknown as Layer.Layer<CacheStore, E, R>)),
    Layer.provideMerge(MemoryBus.layer(hub, id, { queueCreated: options.queueCreated ?? false }))
  )

/** Builds instances `ids` on `hub` in the current scope. */
export const instances = (
  hub: MemoryBus.MemoryHub,
  ids: ReadonlyArray<string>,
  options: { readonly sync?: SyncConsumer.SyncOptions } = {}
): Effect.Effect<ReadonlyArray<Instance>, never, Scope.Scope> =>
  Effect.forEach(ids, (id) => Layer.build(instanceLayer(hub, id, options)))

/** The services of an instance. */
export type Services = Cache.Cache | CacheStore | Publisher.Publisher | SyncConsumer.SyncConsumer | InvalidationBus

/** Runs `effect` on `instance`. */
export const on = <A, E>(instance: Instance, effect: Effect.Effect<A, E, Services>): Effect.Effect<A, E> =>
  Effect.provide(effect, instance) as Effect.Effect<A, E>
