/**
 * The cache an application talks to: typed reads and writes over the instance's `CacheStore`, and `getOrLoad`,
 * cache-aside with one load per key at a time and a fenced fill — a load that started before a delete of its
 * key never writes its result back. When the store fails, reads fall back to the loader (or miss), writes fail
 * soft with a typed outcome and are remembered, and a circuit breaker stops calling a dead store; on recovery
 * the remembered keys are invalidated before the store serves reads again, so no stale value comes back.
 */
import { Clock, Context, Deferred, Effect, Exit, Layer, Option, Schema, Scope } from "effect"
import * as CacheKey from "../src/CacheKey.ts"
import { CacheStore, CacheStoreError, isOutage, type WriteOptions } from "../src/CacheStore.ts"
import type { CacheValue, ScoredMember } from "../src/CacheValue.ts"
import { DataSource, type LoadError } from "../src/DataSource.ts"
import * as Glob from "../src/Glob.ts"
import { InvalidPatternError, type Target } from "../src/InvalidationEvent.ts"
import * as Ttl from "../src/Ttl.ts"
import { type BreakerState, CircuitBreaker } from "./internal/CircuitBreaker.ts"
import { type Codec, codecFor } from "./internal/Codec.ts"
import { Publisher } from "./Publisher.ts"

/** A Schema for cached values: decodes from and encodes to JSON-compatible data, with no services. */
export type ValueSchema<A> = Schema.Codec<A, unknown>

/** How the cache behaves; every field has a production default. */
export interface CacheOptions {
  /** TTL of written and loaded entries when a call gives none; absent means no expiry. */
  readonly defaultTtl?: Ttl.Input | undefined
  /** How long a load's lease lives; bounds what a crashed loader leaves behind. Default 30 s. */
  readonly leaseTtl?: Ttl.Input | undefined
  /** Consecutive outage failures that open the breaker. Default 5. */
  readonly failureThreshold?: number | undefined
  /** How long the breaker stays open before a recovery probe. Default 1 s. */
  readonly resetAfter?: Ttl.Input | undefined
  /** Keys remembered for invalidation after an outage; past this the whole store is flushed on recovery. */
  readonly maxPendingInvalidations?: number | undefined
  /** Keys a pattern invalidation's SCAN looks at per step. Default 1000. */
  readonly scanCount?: number | undefined
}

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
export type DeleteOutcome =
  | { readonly _tag: "Deleted"; readonly removed: number }
  | { readonly _tag: "Pending"; readonly error: CacheStoreError }

/**
 * What a whole-value read found: the entry, nothing, or no answer because the store failed (or its breaker is
 * open) — so a caller can tell a miss from an outage without reading global counters.
 */
export type ReadResult =
  | { readonly _tag: "Found"; readonly value: CacheValue }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Unavailable" }

/** Counters of what the cache did, since it started. */
export interface CacheStats {
  readonly hits: number
  readonly misses: number
  /** Loads run by `getOrLoad`/`getMany` (shared calls count once). */
  readonly loads: number
  readonly loadFailures: number
  /** Callers that joined a load already in flight instead of starting one. */
  readonly sharedLoads: number
  readonly fills: number
  /** Fills refused because the key was deleted, written or re-leased while loading. */
  readonly fencedFills: number
  /** Stored entries that no longer decoded with the caller's schema (deleted and treated as misses). */
  readonly decodeFailures: number
  /** Reads answered without the store because it failed or the breaker was open. */
  readonly degradedReads: number
  /** Writes and deletes that failed soft. */
  readonly failedWrites: number
  readonly breaker: BreakerState
  readonly breakerOpened: number
  /** Keys waiting to be invalidated when the store recovers. */
  readonly pendingInvalidations: number
}

/**
 * A load in flight, shared by every caller of the key: `some(value)`, or none when a getMany batch found the
 * key missing in the source.
 */
interface Flight {
  readonly result: Deferred.Deferred<Option.Option<unknown>, unknown>
  /** The tags its fill will carry: a tag invalidation fences it. */
  readonly tags: ReadonlyArray<string>
}

const written: WriteOutcome = { _tag: "Written" }
const noTags: ReadonlyArray<string> = []
const noneEffect = Effect.succeed(Option.none<never>())
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
    ) => Effect.Effect<A, E | CacheKey.InvalidKeyError, R>
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
    /** Drops everything this instance holds (continuity lost); fences every load in flight; never publishes. */
    readonly flushLocally: Effect.Effect<void>

    /** The counters, as of now. */
    readonly stats: Effect.Effect<CacheStats>
  }
>()("embedded-cache/Cache") {}

const invalidKey = (key: string): CacheKey.InvalidKeyError | undefined => {
  const reason = CacheKey.validate(key)
  return reason === undefined ? undefined : new CacheKey.InvalidKeyError({ key, message: reason })
}

const checked = <A, E>(key: string, f: () => Effect.Effect<A, E>): Effect.Effect<A, E | CacheKey.InvalidKeyError> => {
  const invalid = invalidKey(key)
  return invalid === undefined ? f() : Effect.fail(invalid)
}

/**
 * Builds the cache over the `CacheStore` in context; loads in flight are interrupted when the scope closes. Writes
 * and invalidations are published through `publisher` when one is given, and never otherwise.
 */
export const make = (
  options: CacheOptions = {},
  publisher?: Publisher["Service"]
): Effect.Effect<Cache["Service"], never, CacheStore | Scope.Scope> =>
  Effect.gen(function* () {
    const store = yield* CacheStore
    const scanCount = options.scanCount ?? 1000
    const scope = yield* Effect.scope
    const defaultTtlMs = Ttl.toMillis(options.defaultTtl)
    const leaseMs = Ttl.toMillis(options.leaseTtl ?? "30 seconds") ?? 30_000
    const maxPending = options.maxPendingInvalidations ?? 10_000
    const breaker = new CircuitBreaker({
      failureThreshold: options.failureThreshold ?? 5,
      resetAfterMs: Ttl.toMillis(options.resetAfter ?? "1 second") ?? 1000
    })
    const flights = new Map<string, Flight>()
    /** Keys whose write or delete failed: invalidated before the store is trusted again. */
    const pending = new Set<string>()
    let flushOnRecovery = false
    const leasePrefix = `${Date.now().toString(36)}:${Math.random().toString(36).slice(2)}:`
    let leaseCounter = 0
    const counters = {
      hits: 0,
      misses: 0,
      loads: 0,
      loadFailures: 0,
      sharedLoads: 0,
      fills: 0,
      fencedFills: 0,
      decodeFailures: 0,
      degradedReads: 0,
      failedWrites: 0
    }

    const remember = (keys: string | "all") => {
      if (keys === "all") flushOnRecovery = true
      if (flushOnRecovery) return
      pending.add(keys)
      if (pending.size > maxPending) {
        pending.clear()
        flushOnRecovery = true
      }
    }

    /** Invalidates what failed while the store was down, then closes the breaker; one caller at a time. */
    const recover = Effect.gen(function* () {
      yield* store.ping
      if (flushOnRecovery) yield* store.flush
      else if (pending.size > 0) yield* store.delete([...pending])
    }).pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            breaker.probed(false, now)
            return Effect.logWarning("cache store still failing; breaker stays open").pipe(
              Effect.annotateLogs({ reason: error.reason })
            )
          }),
        onSuccess: () =>
          Effect.suspend(() => {
            pending.clear()
            flushOnRecovery = false
            breaker.probed(true, 0)
            return Effect.logInfo("cache store recovered; breaker closed")
          })
      })
    )

    /** Whether the store may be called now: closed, or open long enough that this caller probes it first. */
    const storeUsable: Effect.Effect<boolean> = Effect.suspend(() => {
      if (breaker.state === "closed") return Effect.succeed(true)
      if (breaker.state === "probing") return Effect.succeed(false)
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        breaker.shouldProbe(now) ? Effect.map(recover, () => breaker.state === "closed") : Effect.succeed(false)
      )
    })

    /** Counts a store failure; an outage feeds the breaker. */
    const storeFailed = (error: CacheStoreError): Effect.Effect<void> => {
      if (!isOutage(error)) return Effect.void
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        breaker.failed(now)
          ? Effect.logWarning("cache store unavailable; breaker opened, serving from loaders").pipe(
              Effect.annotateLogs({ operation: error.operation, reason: error.reason })
            )
          : Effect.void
      )
    }

    /** Runs a store read; a failure (or an open breaker) answers `fallback` and counts a degraded read. */
    const guardedRead = <A>(read: Effect.Effect<A, CacheStoreError>, fallback: A): Effect.Effect<A> => {
      const degraded = Effect.sync(() => {
        counters.degradedReads++
        return fallback
      })
      const run = Effect.matchEffect(read, {
        onFailure: (error) => Effect.andThen(storeFailed(error), degraded),
        onSuccess: (value) => {
          breaker.succeeded()
          return Effect.succeed(value)
        }
      })
      return breaker.state === "closed" ? run : Effect.flatMap(storeUsable, (usable) => (usable ? run : degraded))
    }

    /**
     * Runs a store write for `keys` (or "all" for a pattern or tag invalidation). A failure is counted and
     * answered with `onFailed`; what may now be stale is dropped at once, or remembered until the store recovers.
     */
    const guardedWrite = <A, O>(
      keys: string | "all",
      write: Effect.Effect<A, CacheStoreError>,
      onWritten: (a: A) => O,
      onFailed: (error: CacheStoreError) => O
    ): Effect.Effect<O> => {
      const notWritten = (error: CacheStoreError) =>
        Effect.sync(() => {
          counters.failedWrites++
          remember(keys)
          return onFailed(error)
        })
      // A healthy store refused the write (OOM under noeviction, a script error): what it still holds may be
      // older than this write, so drop it now (a delete frees memory, so it goes through under OOM too).
      const refused = (error: CacheStoreError) =>
        Effect.matchEffect(keys === "all" ? store.flush : store.delete([keys]), {
          onFailure: () => notWritten(error),
          onSuccess: () =>
            Effect.sync(() => {
              counters.failedWrites++
              return onFailed(error)
            })
        })
      const run = Effect.matchEffect(write, {
        onFailure: (error) =>
          isOutage(error)
            ? Effect.andThen(
                storeFailed(error),
                Effect.suspend(() => notWritten(error))
              )
            : refused(error),
        onSuccess: (a) => {
          breaker.succeeded()
          return Effect.succeed(onWritten(a))
        }
      })
      return breaker.state === "closed"
        ? run
        : Effect.flatMap(storeUsable, (usable) =>
            usable
              ? run
              : notWritten(
                  new CacheStoreError({ operation: "write", reason: "Unavailable", cause: new Error("circuit open") })
                )
          )
    }

    const defaultWriteOptions: WriteOptions = { ttlMs: defaultTtlMs, tags: undefined }
    const writeOptions = (ttl: Ttl.Input | undefined, tags: ReadonlyArray<string> | undefined): WriteOptions =>
      ttl === undefined && tags === undefined
        ? defaultWriteOptions
        : { ttlMs: ttl === undefined ? defaultTtlMs : Ttl.toMillis(ttl), tags }

    /** An entry that no longer decodes: deleted, counted and logged; the caller treats it as a miss. */
    const undecodable = (key: string): Effect.Effect<void> => {
      counters.decodeFailures++
      return Effect.logWarning("cached entry no longer decodes; deleted and treated as a miss").pipe(
        Effect.annotateLogs({ key }),
        Effect.andThen(Effect.ignore(store.delete([key])))
      )
    }

    /** Decodes a stored entry; one that no longer decodes is deleted, counted and logged, and reads as a miss. */
    const decodeStored = <A>(key: string, text: string, codec: Codec<A>): Effect.Effect<Option.Option<A>> => {
      const decoded = codec.decode(text)
      if (Exit.isSuccess(decoded)) return Effect.succeed(Option.some(decoded.value))
      return Effect.as(undecodable(key), Option.none())
    }

    /**
     * The read path of `get` and `getOrLoad`, kept to one step on a closed breaker: a decoded hit goes to
     * `onHit`; a miss, an undecodable entry (deleted) or a failing store goes to `onMiss`.
     */
    const lookupThen = <A, B, E, R>(
      key: string,
      codec: Codec<A>,
      onHit: (value: A) => Effect.Effect<B, E, R>,
      onMiss: () => Effect.Effect<B, E, R>
    ): Effect.Effect<B, E, R> => {
      const run = Effect.matchEffect(store.get(key), {
        onFailure: (error) =>
          Effect.andThen(
            storeFailed(error),
            Effect.suspend(() => {
              counters.degradedReads++
              return onMiss()
            })
          ),
        onSuccess: (text) => {
          breaker.succeeded()
          if (text === undefined) return onMiss()
          const decoded = codec.decode(text)
          return Exit.isSuccess(decoded) ? onHit(decoded.value) : Effect.andThen(undecodable(key), onMiss())
        }
      })
      if (breaker.state === "closed") return run
      return Effect.flatMap(storeUsable, (usable) => {
        if (usable) return run
        counters.degradedReads++
        return onMiss()
      })
    }

    const hitSome = <A>(value: A) => {
      counters.hits++
      return Effect.succeed(Option.some(value))
    }
    const missNone = () => {
      counters.misses++
      return noneEffect
    }
    const hitValue = <A>(value: A) => {
      counters.hits++
      return Effect.succeed(value)
    }

    /** Counts a fill's outcome: written, fenced, or not attempted because the store failed. */
    const countFill = (filled: boolean | undefined) => {
      if (filled === true) counters.fills++
      else if (filled === false) counters.fencedFills++
    }

    /** Fences loads of `key` in flight: later callers start a new load instead of joining a stale one. */
    const fence = (key: string) => {
      flights.delete(key)
    }

    /** Fences every load in flight that `target` covers. */
    const fenceTarget = (target: Target) => {
      switch (target.invalidation_type) {
        case "key":
          return fence(target.key)
        case "pattern":
          for (const key of flights.keys()) if (Glob.matches(target.pattern, key)) flights.delete(key)
          return
        case "tag":
          for (const [key, flight] of flights) {
            if (flight.tags.some((tag) => target.tags.includes(tag))) flights.delete(key)
          }
      }
    }

    /**
     * The shared part of a load: lease, load, fill. Runs in the cache's scope so that one caller's interruption
     * doesn't cancel a load others are waiting for.
     */
    const loadAndFill = <A, E, R>(
      key: string,
      load: Effect.Effect<A, E, R>,
      codec: Codec<A>,
      options: WriteOptions
    ): Effect.Effect<A, E, R> =>
      Effect.gen(function* () {
        const token = leasePrefix + (leaseCounter++).toString(36)
        const leased = yield* guardedRead(store.lease(key, token, leaseMs, options.tags), undefined)
        if (leased?._tag === "Present") {
          const present = yield* decodeStored(key, leased.value, codec)
          if (Option.isSome(present)) return present.value
        }
        counters.loads++
        const value = yield* Effect.onError(load, () =>
          Effect.sync(() => {
            counters.loadFailures++
          }).pipe(Effect.andThen(leased?._tag === "Acquired" ? Effect.ignore(store.release(key, token)) : Effect.void))
        )
        if (leased?._tag !== "Acquired") return value
        const encoded = codec.encode(value)
        if (Exit.isFailure(encoded)) {
          yield* Effect.logWarning("loaded value does not encode with its schema; not cached").pipe(
            Effect.annotateLogs({ key })
          )
          yield* Effect.ignore(store.release(key, token))
          return value
        }
        countFill(yield* guardedRead(store.fill(key, token, encoded.value, options), undefined))
        return value
      })

    const getOrLoad = <A, E, R>(
      key: string,
      load: Effect.Effect<A, E, R>,
      options: LoadOptions<A>
    ): Effect.Effect<A, E | CacheKey.InvalidKeyError, R> => {
      const invalid = invalidKey(key)
      if (invalid !== undefined) return Effect.fail(invalid)
      const codec = codecFor(options.schema)
      return lookupThen(key, codec, hitValue, () => {
        counters.misses++
        const inFlight = flights.get(key)
        if (inFlight === undefined) return lead(key, load, codec, options)
        counters.sharedLoads++
        return Effect.flatMap(Deferred.await(inFlight.result) as Effect.Effect<Option.Option<A>, E>, (shared) =>
          Option.isSome(shared) ? Effect.succeed(shared.value) : lead(key, load, codec, options)
        )
      })
    }

    /** Starts the load of `key` in the cache's scope and waits for it. */
    const lead = <A, E, R>(
      key: string,
      load: Effect.Effect<A, E, R>,
      codec: Codec<A>,
      options: LoadOptions<A>
    ): Effect.Effect<A, E, R> => {
      const result = Deferred.makeUnsafe<Option.Option<unknown>, unknown>()
      const flight: Flight = { result, tags: options.tags ?? noTags }
      flights.set(key, flight)
      const run = loadAndFill(key, load, codec, writeOptions(options.ttl, options.tags)).pipe(
        Effect.onExit((exit) => {
          if (flights.get(key) === flight) flights.delete(key)
          return Deferred.done(result, Exit.map(exit, Option.some))
        })
      )
      return Effect.andThen(
        Effect.forkIn(run, scope),
        Effect.map(Deferred.await(result) as Effect.Effect<Option.Option<A>, E>, Option.getOrThrow)
      )
    }

    const getMany = <A>(
      keys: ReadonlyArray<string>,
      options: LoadOptions<A>
    ): Effect.Effect<ReadonlyMap<string, A>, CacheKey.InvalidKeyError | LoadError, DataSource> =>
      Effect.gen(function* () {
        for (const key of keys) {
          const invalid = invalidKey(key)
          if (invalid !== undefined) return yield* invalid
        }
        const codec = codecFor(options.schema)
        const unique = [...new Set(keys)]
        const found = new Map<string, A>()
        const texts = yield* guardedRead(store.getMany(unique), [])
        const missing: Array<string> = []
        for (let i = 0; i < unique.length; i++) {
          const key = unique[i]!
          const text = texts[i]
          const decoded = text === undefined ? Option.none() : yield* decodeStored(key, text, codec)
          if (Option.isSome(decoded)) {
            counters.hits++
            found.set(key, decoded.value)
          } else {
            counters.misses++
            missing.push(key)
          }
        }
        if (missing.length === 0) return found
        // Join loads already in flight; lead the rest as one batch through the source.
        const joined: Array<readonly [string, Flight]> = []
        const led: Array<readonly [string, Flight]> = []
        for (const key of missing) {
          const flight = flights.get(key)
          if (flight !== undefined) {
            counters.sharedLoads++
            joined.push([key, flight])
          } else {
            const own: Flight = {
              result: Deferred.makeUnsafe<Option.Option<unknown>, unknown>(),
              tags: options.tags ?? noTags
            }
            flights.set(key, own)
            led.push([key, own])
          }
        }
        if (led.length > 0) {
          const source = yield* DataSource
          const batch = loadBatch(led, source, codec, writeOptions(options.ttl, options.tags))
          yield* Effect.forkIn(batch, scope)
        }
        for (const [key, flight] of [...led, ...joined]) {
          const value = yield* Deferred.await(flight.result) as Effect.Effect<Option.Option<A>, LoadError>
          if (Option.isSome(value)) found.set(key, value.value)
        }
        return found
      })

    /** Leases, loads and fills the keys of a getMany batch, completing each key's flight with an Option. */
    const loadBatch = <A>(
      led: ReadonlyArray<readonly [string, Flight]>,
      source: DataSource["Service"],
      codec: Codec<A>,
      options: WriteOptions
    ) =>
      Effect.gen(function* () {
        const tokens = led.map(() => leasePrefix + (leaseCounter++).toString(36))
        const leases = yield* Effect.forEach(
          led,
          ([key], i) => guardedRead(store.lease(key, tokens[i]!, leaseMs, options.tags), undefined),
          { concurrency: "unbounded" }
        )
        const toLoad: Array<string> = []
        const results = new Map<string, Option.Option<A>>()
        for (let i = 0; i < led.length; i++) {
          const [key] = led[i]!
          const lease = leases[i]
          const present = lease?._tag === "Present" ? yield* decodeStored(key, lease.value, codec) : Option.none()
          if (Option.isSome(present)) {
            results.set(key, present)
          } else toLoad.push(key)
        }
        if (toLoad.length > 0) {
          counters.loads++
          const releaseAll = Effect.forEach(
            toLoad,
            (key) => {
              const i = led.findIndex(([k]) => k === key)
              return leases[i]?._tag === "Acquired" ? Effect.ignore(store.release(key, tokens[i]!)) : Effect.void
            },
            { discard: true }
          )
          const loaded = yield* Effect.onError(source.loadMany(toLoad), () =>
            Effect.andThen(
              Effect.sync(() => counters.loadFailures++),
              releaseAll
            )
          )
          yield* Effect.forEach(
            toLoad,
            (key) => {
              const i = led.findIndex(([k]) => k === key)
              const lease = leases[i]
              const token = tokens[i]!
              const raw = loaded.get(key)
              const decoded = loaded.has(key) ? codec.decodeValue(raw) : undefined
              if (decoded === undefined || Exit.isFailure(decoded)) {
                results.set(key, Option.none())
                const release = lease?._tag === "Acquired" ? Effect.ignore(store.release(key, token)) : Effect.void
                return decoded === undefined
                  ? release
                  : Effect.logWarning("source value does not decode; skipped").pipe(
                      Effect.annotateLogs({ key }),
                      Effect.andThen(release)
                    )
              }
              results.set(key, Option.some(decoded.value))
              if (lease?._tag !== "Acquired") return Effect.void
              const encoded = codec.encode(decoded.value)
              if (Exit.isFailure(encoded)) return Effect.ignore(store.release(key, token))
              return Effect.map(guardedRead(store.fill(key, token, encoded.value, options), undefined), countFill)
            },
            { concurrency: "unbounded", discard: true }
          )
        }
        return results
      }).pipe(
        Effect.onExit((exit) => {
          // Unregister every key first: a caller woken by one key's result must not join another key's flight
          // of this (finished) batch.
          for (const [key, flight] of led) if (flights.get(key) === flight) flights.delete(key)
          return Effect.forEach(
            led,
            ([key, flight]) =>
              Deferred.done(
                flight.result,
                Exit.isSuccess(exit) ? Exit.succeed(exit.value.get(key) ?? Option.none()) : Exit.failCause(exit.cause)
              ),
            { discard: true }
          )
        })
      )

    /** Publishes a key invalidation after `effect`, when there are peers to tell. */
    const announceKey = <A, E>(key: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      publisher === undefined ? effect : Effect.tap(effect, () => publisher.publish({ invalidation_type: "key", key }))

    const deleted = (removed: number): DeleteOutcome => ({ _tag: "Deleted", removed })
    const deferred = (error: CacheStoreError): DeleteOutcome => ({ _tag: "Pending", error })

    /** Applies `target` here: fences its loads, removes its entries, answers the exact count. */
    const invalidateLocally = (target: Target): Effect.Effect<DeleteOutcome> =>
      Effect.suspend(() => {
        fenceTarget(target)
        switch (target.invalidation_type) {
          case "key":
            return guardedWrite(target.key, store.delete([target.key]), deleted, deferred)
          case "pattern":
            return guardedWrite("all", store.deletePattern(target.pattern, scanCount), deleted, deferred)
          case "tag":
            return guardedWrite("all", store.deleteTagged(target.tags), deleted, deferred)
        }
      })

    const validTarget = (target: Target): CacheKey.InvalidKeyError | InvalidPatternError | undefined => {
      switch (target.invalidation_type) {
        case "key":
          return invalidKey(target.key)
        case "pattern":
          if (target.pattern.length === 0) {
            return new InvalidPatternError({ pattern: target.pattern, message: "a pattern must not be empty" })
          }
          return Glob.matchesEverything(target.pattern) && target.all !== true
            ? new InvalidPatternError({
                pattern: target.pattern,
                message: "this pattern matches every key: pass all: true to invalidate everything"
              })
            : undefined
        case "tag":
          return target.tags.length === 0 || target.tags.some((tag) => tag.length === 0)
            ? new InvalidPatternError({ pattern: "", message: "tags must be a non-empty list of non-empty tags" })
            : undefined
      }
    }

    const unavailable: ReadResult = { _tag: "Unavailable" }
    const missing: ReadResult = { _tag: "Missing" }
    const readEntry = (key: string): Effect.Effect<ReadResult> =>
      Effect.map(
        guardedRead(
          Effect.map(store.read(key), (value): ReadResult =>
            value === undefined ? missing : { _tag: "Found", value }
          ),
          unavailable
        ),
        (result) => {
          if (result._tag === "Found") counters.hits++
          else counters.misses++
          return result
        }
      )

    const structuredWrite = (
      key: string,
      options: WriteOptionsInput | undefined,
      write: (o: WriteOptions) => Effect.Effect<unknown, CacheStoreError>
    ) =>
      checked(key, () => {
        fence(key)
        return announceKey(
          key,
          guardedWrite(key, write(writeOptions(options?.ttl, options?.tags)), toWritten, notWritten)
        )
      })

    return Cache.of({
      get: (key, schema) => {
        const invalid = invalidKey(key)
        return invalid === undefined ? lookupThen(key, codecFor(schema), hitSome, missNone) : Effect.fail(invalid)
      },
      set: (key, value, options) => {
        const invalid = invalidKey(key)
        if (invalid !== undefined) return Effect.fail(invalid)
        const encoded = codecFor(options.schema).encode(value)
        if (Exit.isFailure(encoded)) return Effect.failCause(encoded.cause)
        fence(key)
        const write = store.set(key, encoded.value, writeOptions(options.ttl, options.tags))
        return announceKey(key, guardedWrite(key, write, toWritten, notWritten))
      },
      delete: (key) =>
        checked(key, () => {
          fence(key)
          return announceKey(key, guardedWrite(key, store.delete([key]), deleted, deferred))
        }),
      exists: (key) => checked(key, () => guardedRead(store.exists(key), false)),
      ttl: (key) => checked(key, () => guardedRead(store.ttl(key), undefined)),
      getOrLoad,
      getMany,
      read: (key) =>
        checked(key, () =>
          Effect.map(readEntry(key), (result) => (result._tag === "Found" ? result.value : undefined))
        ),
      readEntry: (key) => checked(key, () => readEntry(key)),
      write: (key, value, options) => structuredWrite(key, options, (o) => store.write(key, value, o)),
      hashSet: (key, fields, options) => structuredWrite(key, options, (o) => store.hashSet(key, fields, o)),
      hashGet: (key, field) => checked(key, () => guardedRead(store.hashGet(key, field), undefined)),
      setAdd: (key, members, options) => structuredWrite(key, options, (o) => store.setAdd(key, members, o)),
      setHas: (key, member) => checked(key, () => guardedRead(store.setHas(key, member), false)),
      sortedSetAdd: (key, members, options) =>
        structuredWrite(key, options, (o) => store.sortedSetAdd(key, members, o)),
      sortedSetRange: (key, start, stop) => checked(key, () => guardedRead(store.sortedSetRange(key, start, stop), [])),
      listPush: (key, values, options) => structuredWrite(key, options, (o) => store.listPush(key, values, o)),
      listRange: (key, start, stop) => checked(key, () => guardedRead(store.listRange(key, start, stop), [])),
      invalidate: (target) => {
        const invalid = validTarget(target)
        if (invalid !== undefined) return Effect.fail(invalid)
        const local = invalidateLocally(target)
        return publisher === undefined ? local : Effect.tap(local, () => publisher.publish(target))
      },
      invalidateLocally,
      flushLocally: Effect.suspend(() => {
        flights.clear()
        return guardedWrite("all", store.flush, toWritten, notWritten)
      }).pipe(Effect.asVoid),
      stats: Effect.sync(() => ({
        ...counters,
        breaker: breaker.state,
        breakerOpened: breaker.opened,
        pendingInvalidations: flushOnRecovery ? Infinity : pending.size
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
