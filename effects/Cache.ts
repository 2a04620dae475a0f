/**
 * The cache an application talks to: typed reads and writes over the instance's `CacheStore`, and `getOrLoad`,
 * cache-aside with one load per key at a time and a fenced fill — a load that started before a delete of its
 * key never writes its result back. When the store fails, reads fall back to the loader (or miss), writes fail
 * soft with a typed outcome and are remembered, and a circuit breaker stops calling a dead store; on recovery
 * the remembered keys are invalidated before the store serves reads again, so no stale value comes back.
 *
 * With `CacheOptions.l1`, an in-process near-cache answers hits without the store; every local write and
 * invalidation removes what it covers from it before the store is touched, and again once the store answered (so a
 * read that raced it cannot leave the old value behind).
 *
 * This module is the service and its wiring; the mechanisms are in `internal/`: the store guard (breaker and
 * recovery), single flight, fenced fills, the L1 and invalidation.
 */
import { Clock, Context, Effect, Exit, Layer, type Option, type Schema, type Scope } from "effect"
import type * as CacheKey from "../src/CacheKey.ts"
import { CacheStore, type CacheStoreError, type WriteOptions } from "../src/CacheStore.ts"
import type { CacheValue, ScoredMember } from "../src/CacheValue.ts"
import { DataSource, type LoadError, type LoadTimeoutError } from "../src/DataSource.ts"
import type { InvalidPatternError, Target } from "../src/InvalidationEvent.ts"
import * as Ttl from "../src/Ttl.ts"
import * as BatchLoading from "./internal/BatchLoading.ts"
import * as CacheCounters from "./internal/CacheCounters.ts"
import type { BreakerState } from "./internal/CircuitBreaker.ts"
import { codecFor } from "./internal/Codec.ts"
import * as FencedFill from "./internal/FencedFill.ts"
import * as Freshness from "./internal/Freshness.ts"
import * as Invalidation from "./internal/Invalidation.ts"
import * as L1 from "./internal/L1.ts"
import * as Loading from "./internal/Loading.ts"
import { SingleFlight } from "./internal/SingleFlight.ts"
import * as StoredEntry from "./internal/StoredEntry.ts"
import * as StoreGuard from "./internal/StoreGuard.ts"
import type { CacheOptions } from "./internal/CacheOptions.ts"
import { Publisher } from "./Publisher.ts"

export type { CacheOptions, FailSafeOptions, L1Options, SourceTimeouts } from "./internal/CacheOptions.ts"

/** A Schema for cached values: decodes from and encodes to JSON-compatible data, with no services. */
export type ValueSchema<A> = Schema.Codec<A, unknown>

/** Options of a typed write. */
export interface SetOptions<A> {
  readonly schema: ValueSchema<A>
  readonly ttl?: Ttl.Input | undefined
  readonly tags?: ReadonlyArray<string> | undefined
}

/** Options of `getOrLoad` and `getMany`. */
export interface LoadOptions<A> {
  readonly schema: ValueSchema<A>
  /** TTL of the filled entry; the cache's default when absent. */
  readonly ttl?: Ttl.Input | undefined
  /** Tags recorded with the filled entry (and with its lease, so a tag invalidation fences the load). */
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * What `fetch` answers: the value (`stale` when it is a fail-safe copy past its TTL, answered because the load failed,
 * timed out or is throttled), or `NotFound` when the source does not have the key (answered from a negative entry
 * without calling the source while one is cached).
 */
export type Fetched<A> =
  | { readonly _tag: "Found"; readonly value: A; readonly stale: boolean }
  | { readonly _tag: "NotFound" }

/** The TTL of a merge into a collection; the cache's default TTL when absent. */
export interface TtlOptionsInput {
  readonly ttl?: Ttl.Input | undefined
}

/** Options of a whole-value write. */
export interface WriteOptionsInput extends TtlOptionsInput {
  readonly tags?: ReadonlyArray<string> | undefined
}

/** The outcome of a write: written, or not (the store failed; the key is invalidated once it recovers). */
export type WriteOutcome =
  | { readonly _tag: "Written" }
  | { readonly _tag: "NotWritten"; readonly error: CacheStoreError }

/** The outcome of a delete: done with the number of live entries removed, or pending until the store recovers. */
export type DeleteOutcome = Invalidation.DeleteOutcome

/**
 * What a whole-value read found: the entry, nothing, or no answer because the store failed (or its breaker is
 * open) — so a caller can tell a miss from an outage without reading global counters.
 */
export type ReadResult =
  | {
      readonly _tag: "Found"
      readonly value: CacheValue
      /** The entry's remaining TTL in milliseconds when it was read, -1 for none. */
      readonly ttlMs: number
    }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Unavailable" }

/** Counters of what the cache did, since it started, and the state of its store guard. */
export interface CacheStats extends Readonly<CacheCounters.Counters> {
  readonly breaker: BreakerState
  readonly breakerOpened: number
  /** Keys waiting to be invalidated when the store recovers. */
  readonly pendingInvalidations: number
  /** Lookups the L1 answered (all 0 without an L1). */
  readonly l1Hits: number
  /** Lookups the L1 did not answer. */
  readonly l1Misses: number
  /** Entries and bytes of JSON text in the L1 now. */
  readonly l1Entries: number
  readonly l1Bytes: number
}

const written: WriteOutcome = { _tag: "Written" }
const toWritten = (): WriteOutcome => written
const notWritten = (error: CacheStoreError): WriteOutcome => ({ _tag: "NotWritten", error })

/** The cache service. */
export class Cache extends Context.Service<
  Cache,
  {
    /** The value at `key`, decoded with `schema`; none on a miss, an undecodable entry, or a failing store. */
    readonly get: <A>(key: string, schema: ValueSchema<A>) => Effect.Effect<Option.Option<A>, CacheKey.InvalidKeyError>
    /** Writes `value` (and fences any load of `key` in flight). */
    readonly set: <A>(
      key: string,
      value: A,
      options: SetOptions<A>
    ) => Effect.Effect<WriteOutcome, CacheKey.InvalidKeyError | Schema.SchemaError>
    /** Removes `key` of any type and fences its loads in flight. */
    readonly delete: (key: string) => Effect.Effect<DeleteOutcome, CacheKey.InvalidKeyError>
    /** Whether `key` holds a live entry; false while the store is failing. */
    readonly exists: (key: string) => Effect.Effect<boolean, CacheKey.InvalidKeyError>
    /** Remaining TTL in milliseconds, -1 for none, undefined when absent (or the store is failing). */
    readonly ttl: (key: string) => Effect.Effect<number | undefined, CacheKey.InvalidKeyError>
    /**
     * The value at `key`, or the result of `load` written back with a fenced fill. Concurrent callers of one key
     * share one load; a load that raced a delete of its key answers its callers but is not written back.
     */
    readonly getOrLoad: <A, E, R>(
      key: string,
      load: Effect.Effect<A, E, R>,
      options: LoadOptions<A>
    ) => Effect.Effect<A, E | CacheKey.InvalidKeyError | LoadTimeoutError, R>
    /**
     * `getOrLoad` for a load that may find nothing (`Option.none()`), answering whether the value is stale: with
     * `negativeTtl`, "not found" is cached too, so a burst of lookups of a missing key costs one load.
     */
    readonly fetch: <A, E, R>(
      key: string,
      load: Effect.Effect<Option.Option<A>, E, R>,
      options: LoadOptions<A>
    ) => Effect.Effect<Fetched<A>, E | CacheKey.InvalidKeyError | LoadTimeoutError, R>
    /**
     * Reloads every one of `keys` through `DataSource.loadMany`, whether cached or not: a present value stays readable
     * until its reload replaces it, and any invalidation meanwhile fences the reload. Keys the source does not have
     * are removed (or cached as negative entries with `negativeTtl`) and absent from the answer.
     */
    readonly refreshMany: <A>(
      keys: ReadonlyArray<string>,
      options: LoadOptions<A>
    ) => Effect.Effect<ReadonlyMap<string, A>, CacheKey.InvalidKeyError | LoadError, DataSource>
    /**
     * The values of `keys`: one MGET, then one `DataSource.loadMany` for the misses, filled back fenced. Keys the
     * source does not have are absent from the answer.
     */
    readonly getMany: <A>(
      keys: ReadonlyArray<string>,
      options: LoadOptions<A>
    ) => Effect.Effect<ReadonlyMap<string, A>, CacheKey.InvalidKeyError | LoadError, DataSource>

    /** The whole value at `key` of any data type (counted as a hit or a miss). */
    readonly read: (key: string) => Effect.Effect<CacheValue | undefined, CacheKey.InvalidKeyError>
    /** The whole value at `key` as a `ReadResult`: found, missing, or unavailable (counted as `read` counts). */
    readonly readEntry: (key: string) => Effect.Effect<ReadResult, CacheKey.InvalidKeyError>
    /** Replaces the value at `key` with a value of any data type. */
    readonly write: (
      key: string,
      value: CacheValue,
      options?: WriteOptionsInput
    ) => Effect.Effect<WriteOutcome, CacheKey.InvalidKeyError>
    readonly hashSet: (
      key: string,
      fields: Readonly<Record<string, string>>,
      options?: TtlOptionsInput
    ) => Effect.Effect<WriteOutcome, CacheKey.InvalidKeyError>
    readonly hashGet: (key: string, field: string) => Effect.Effect<string | undefined, CacheKey.InvalidKeyError>
    readonly setAdd: (
      key: string,
      members: ReadonlyArray<string>,
      options?: TtlOptionsInput
    ) => Effect.Effect<WriteOutcome, CacheKey.InvalidKeyError>
    readonly setHas: (key: string, member: string) => Effect.Effect<boolean, CacheKey.InvalidKeyError>
    readonly sortedSetAdd: (
      key: string,
      members: ReadonlyArray<ScoredMember>,
      options?: TtlOptionsInput
    ) => Effect.Effect<WriteOutcome, CacheKey.InvalidKeyError>
    readonly sortedSetRange: (
      key: string,
      start: number,
      stop: number
    ) => Effect.Effect<ReadonlyArray<ScoredMember>, CacheKey.InvalidKeyError>
    readonly listPush: (
      key: string,
      values: ReadonlyArray<string>,
      options?: TtlOptionsInput
    ) => Effect.Effect<WriteOutcome, CacheKey.InvalidKeyError>
    readonly listRange: (
      key: string,
      start: number,
      stop: number
    ) => Effect.Effect<ReadonlyArray<string>, CacheKey.InvalidKeyError>

    /**
     * Invalidates a key, every key matching a glob (SCAN, never KEYS), or every entry carrying any of the tags,
     * fencing the loads in flight that it covers, and publishes it to the other instances. Answers this
     * instance's exact count of live entries removed. A pattern that matches everything needs `all: true`.
     */
    readonly invalidate: (
      target: Target
    ) => Effect.Effect<DeleteOutcome, CacheKey.InvalidKeyError | InvalidPatternError>
    /** Applies an invalidation received from another instance: the same as `invalidate`, without publishing. */
    readonly invalidateLocally: (target: Target) => Effect.Effect<DeleteOutcome>
    /** Applies `targets` together on this instance only (one store delete for all the keys); one outcome per target. */
    readonly invalidateLocallyAll: (targets: ReadonlyArray<Target>) => Effect.Effect<ReadonlyArray<DeleteOutcome>>
    /**
     * Holds (true) or releases (false) every store read: while held, reads miss (loads answer from the loader,
     * nothing is filled back from a held store) — what a restart does until it has caught up with its peers' events.
     */
    readonly holdReads: (held: boolean) => Effect.Effect<void>
    /** Drops everything this instance holds (continuity lost); fences every load in flight; never publishes. */
    readonly flushLocally: Effect.Effect<void>

    /** The counters, as of now. */
    readonly stats: Effect.Effect<CacheStats>
  }
>()("embedded-cache/Cache") {}

const checked = <A, E>(key: string, f: () => Effect.Effect<A, E>): Effect.Effect<A, E | CacheKey.InvalidKeyError> => {
  const invalid = Invalidation.invalidKey(key)
  return invalid === undefined ? f() : Effect.fail(invalid)
}

/**
 * Builds the cache over the `CacheStore` in context; loads in flight are interrupted when the scope closes. Writes
 * and invalidations are published through `publisher` when one is given, and never otherwise.
 */
export const make = Effect.fnUntraced(function* (options: CacheOptions = {}, publisher?: Publisher["Service"]) {
  const store = yield* CacheStore
  const scope: Scope.Scope = yield* Effect.scope
  const counters = CacheCounters.make()
  const guard = yield* StoreGuard.make(store, counters, {
    failureThreshold: options.failureThreshold ?? 5,
    resetAfterMs: Ttl.toMillis(options.resetAfter ?? "1 second") ?? 1000,
    maxPending: options.maxPendingInvalidations ?? 10_000
  })
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const entries = StoredEntry.make(store, counters, now)
  const policy = Freshness.policy(options)
  const flights = new SingleFlight()
  const leaseMs = Ttl.toMillis(options.leaseTtl ?? "30 seconds") ?? 30_000
  const staleWriteBackUnfenced = options.brokenForTests?.staleWriteBackUnfenced === true
  const fills = FencedFill.make({ store, guard, entries, counters, leaseMs, now, policy, staleWriteBackUnfenced })
  const scanCount = options.scanCount ?? 1000
  const defaultTtlMs = Ttl.toMillis(options.defaultTtl)
  const defaultWriteOptions: WriteOptions = { ttlMs: defaultTtlMs, tags: undefined }
  const writeOptions = (ttl: Ttl.Input | undefined, tags: ReadonlyArray<string> | undefined): WriteOptions =>
    ttl === undefined && tags === undefined
      ? defaultWriteOptions
      : { ttlMs: ttl === undefined ? defaultTtlMs : Ttl.toMillis(ttl), tags }

  const l1 = L1.make(options.l1 && { ...options.l1, ttlMs: Ttl.toMillis(options.l1.ttl) })
  const l1FillBeforeFence = options.brokenForTests?.l1FillBeforeFence === true
  const deps = {
    store,
    guard,
    entries,
    counters,
    flights,
    fills,
    scope,
    writeOptions,
    l1,
    now,
    policy,
    l1FillBeforeFence
  }
  const loading = Loading.make(deps)
  const batches = BatchLoading.make(deps)

  /** Publishes a key invalidation after `effect`, when there are peers to tell. */
  const announceKey = <A, E>(key: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    publisher === undefined ? effect : Effect.tap(effect, () => publisher.publish({ invalidation_type: "key", key }))

  const invalidateLocally = (target: Target) => Invalidation.apply(store, guard, flights, l1, scanCount, target)

  /** A write of `key` (fencing its loads when it runs), published to the peers. */
  const keyWrite = <A, O>(
    key: string,
    write: Effect.Effect<A, CacheStoreError>,
    onWritten: (a: A) => O,
    onFailed: (error: CacheStoreError) => O
  ) =>
    Effect.suspend(() => {
      flights.fence(key)
      return announceKey(key, L1.removingKey(l1, key, guard.write(key, write, onWritten, onFailed)))
    })

  const structuredWrite = (
    key: string,
    options: WriteOptionsInput | undefined,
    write: (o: WriteOptions) => Effect.Effect<unknown, CacheStoreError>
  ) => checked(key, () => keyWrite(key, write(writeOptions(options?.ttl, options?.tags)), toWritten, notWritten))

  const readEntry = loading.readEntry

  return Cache.of({
    // `get` and `set` check the key inline (no thunk for `checked`): they are the hot path.
    get: (key, schema) => {
      const invalid = Invalidation.invalidKey(key)
      return invalid === undefined ? loading.get(key, codecFor(schema)) : Effect.fail(invalid)
    },
    set: (key, value, options) => {
      const invalid = Invalidation.invalidKey(key)
      if (invalid !== undefined) return Effect.fail(invalid)
      const encoded = codecFor(options.schema).encode(value)
      if (Exit.isFailure(encoded)) return Effect.failCause(encoded.cause)
      const json = encoded.value
      const write = policy.stamps
        ? Effect.suspend(() => {
            // Stamped when it runs: its freshness counts from then.
            const stamped = Freshness.stored(policy, json, now(), writeOptions(options.ttl, options.tags))
            return store.set(key, stamped.text, stamped.options)
          })
        : store.set(key, json, writeOptions(options.ttl, options.tags))
      return keyWrite(key, write, toWritten, notWritten)
    },
    delete: (key) => checked(key, () => keyWrite(key, store.delete([key]), Invalidation.deleted, Invalidation.pending)),
    exists: (key) =>
      checked(key, () =>
        policy.stamps
          ? Effect.map(loading.ttl(key), (ms) => ms !== undefined)
          : guard.read(key, store.exists(key), false)
      ),
    ttl: (key) => checked(key, () => loading.ttl(key)),
    getOrLoad: loading.getOrLoad,
    fetch: loading.fetch,
    refreshMany: batches.refreshMany,
    getMany: batches.getMany,
    read: (key) =>
      checked(key, () => Effect.map(readEntry(key), (result) => (result._tag === "Found" ? result.value : undefined))),
    readEntry: (key) => checked(key, () => readEntry(key)),
    write: (key, value, options) => structuredWrite(key, options, (o) => store.write(key, value, o)),
    hashSet: (key, fields, options) => structuredWrite(key, options, (o) => store.hashSet(key, fields, o)),
    hashGet: (key, field) => checked(key, () => guard.read(key, store.hashGet(key, field), undefined)),
    setAdd: (key, members, options) => structuredWrite(key, options, (o) => store.setAdd(key, members, o)),
    setHas: (key, member) => checked(key, () => guard.read(key, store.setHas(key, member), false)),
    sortedSetAdd: (key, members, options) => structuredWrite(key, options, (o) => store.sortedSetAdd(key, members, o)),
    sortedSetRange: (key, start, stop) =>
      checked(key, () => guard.read(key, store.sortedSetRange(key, start, stop), [])),
    listPush: (key, values, options) => structuredWrite(key, options, (o) => store.listPush(key, values, o)),
    listRange: (key, start, stop) => checked(key, () => guard.read(key, store.listRange(key, start, stop), [])),
    invalidate: (target) => {
      const invalid = Invalidation.validate(target)
      if (invalid !== undefined) return Effect.fail(invalid)
      const local = invalidateLocally(target)
      return publisher === undefined ? local : Effect.tap(local, () => publisher.publish(target))
    },
    invalidateLocally,
    invalidateLocallyAll: (targets) => Invalidation.applyAll(store, guard, flights, l1, scanCount, targets),
    holdReads: (held) => Effect.sync(() => guard.holdReads(held)),
    flushLocally: Effect.suspend(() => {
      flights.clear()
      return L1.removingAll(l1, guard.write("everything", store.flush, toWritten, notWritten))
    }).pipe(Effect.asVoid),
    stats: Effect.sync(() => ({
      ...counters,
      ...guard.state(),
      l1Hits: l1?.hits ?? 0,
      l1Misses: l1?.misses ?? 0,
      l1Entries: l1?.size ?? 0,
      l1Bytes: l1?.usedBytes ?? 0
    }))
  })
})

/** The cache over the `CacheStore` in context, on its own: it publishes nothing. */
export const layer = (options: CacheOptions = {}): Layer.Layer<Cache, never, CacheStore> =>
  Layer.effect(Cache, make(options))

/** The cache over the `CacheStore` in context, publishing its writes and invalidations through the `Publisher`. */
export const layerPublishing = (options: CacheOptions = {}): Layer.Layer<Cache, never, CacheStore | Publisher> =>
  Layer.effect(
    Cache,
    Effect.flatMap(Effect.service(Publisher), (publisher) => make(options, publisher))
  )

/** Reads `key` with the cache in context. */
export const get = <A>(key: string, schema: ValueSchema<A>) => Cache.use((cache) => cache.get(key, schema))
/** Writes `key` with the cache in context. */
export const set = <A>(key: string, value: A, options: SetOptions<A>) =>
  Cache.use((cache) => cache.set(key, value, options))
/** Deletes `key` with the cache in context. */
export const del = (key: string) => Cache.use((cache) => cache.delete(key))
/** `getOrLoad` with the cache in context. */
export const getOrLoad = <A, E, R>(key: string, load: Effect.Effect<A, E, R>, options: LoadOptions<A>) =>
  Cache.use((cache) => cache.getOrLoad(key, load, options))
/** `getMany` with the cache in context. */
export const getMany = <A>(keys: ReadonlyArray<string>, options: LoadOptions<A>) =>
  Cache.use((cache) => cache.getMany(keys, options))
/** The counters of the cache in context. */
export const stats = Cache.use((cache) => cache.stats)
