/**
 * Batched reads: `getMany` reads every key in one MGET and loads the misses in one `DataSource.loadMany` batch
 * (joining loads already in flight); `refreshMany` (a refreshing warm-up) reloads every key through refresh leases, so
 * present values stay readable until their reload replaces them. Fills are fenced as a single load's are; a fresh
 * negative entry is answered as absent without loading.
 */
import { Deferred, Effect, Exit, Option, type Scope } from "effect"
import type * as CacheKey from "../../src/CacheKey.ts"
import type { CacheStore, WriteOptions } from "../../src/CacheStore.ts"
import { DataSource, type LoadError } from "../../src/DataSource.ts"
import type * as Ttl from "../../src/Ttl.ts"
import type { LoadOptions } from "../Cache.ts"
import type { Counters } from "./CacheCounters.ts"
import { type Codec, codecFor } from "./Codec.ts"
import type { FencedFill } from "./FencedFill.ts"
import * as Freshness from "./Freshness.ts"
import { invalidKey } from "./Invalidation.ts"
import { abandonedRead, type Flight, type Shared, type SingleFlight, valueFor } from "./SingleFlight.ts"
import type { StoredEntry } from "./StoredEntry.ts"
import type { StoreGuard } from "./StoreGuard.ts"

/** What batched reads need from the cache. */
export interface BatchDeps {
  readonly store: CacheStore["Service"]
  readonly guard: StoreGuard
  readonly entries: StoredEntry
  readonly counters: Counters
  readonly flights: SingleFlight
  readonly fills: FencedFill
  /** The cache's scope: batches run in it, so one caller's interruption spares the others. */
  readonly scope: Scope.Scope
  readonly writeOptions: (ttl: Ttl.Input | undefined, tags: ReadonlyArray<string> | undefined) => WriteOptions
  /** The cache's clock (epoch ms). */
  readonly now: () => number
}

const noTags: ReadonlyArray<string> = []

/** The first invalid key's error, if any. */
const validKeys = (keys: ReadonlyArray<string>): CacheKey.InvalidKeyError | undefined => {
  for (const key of keys) {
    const invalid = invalidKey(key)
    if (invalid !== undefined) return invalid
  }
  return undefined
}

/** The batched reads over the deps. */
export const make = (deps: BatchDeps) => {
  const { counters, entries, fills, flights, guard, now, scope, store, writeOptions } = deps

  /** The stored values of `keys` (one MGET), the keys that missed; a fresh negative entry is neither. */
  const readMany = Effect.fnUntraced(function* <A>(keys: ReadonlyArray<string>, codec: Codec<A>) {
    const texts = yield* guard.read(undefined, store.getMany(keys), [])
    const hits = new Map<string, A>()
    const misses: Array<string> = []
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      // A key with an invalidation still pending is a miss, whatever the store holds.
      const text = guard.isPending(key) ? undefined : texts[i]
      if (text !== undefined && isNegative(text)) {
        counters.hits++
        counters.negativeHits++
        continue
      }
      const decoded = text === undefined ? Option.none() : yield* entries.decode(key, text, codec)
      if (Option.isSome(decoded)) {
        counters.hits++
        hits.set(key, decoded.value)
      } else {
        counters.misses++
        misses.push(key)
      }
    }
    return { hits, misses }
  })

  /** Whether `text` is a negative entry still fresh. */
  const isNegative = (text: string): boolean => {
    const stamped = Freshness.parse(text)
    return stamped !== undefined && Freshness.isFreshNegative(stamped.stamp, now())
  }

  /** Loads `led` as one batch in the cache's scope, completing each key's flight with its value or none. */
  const loadBatch = <A>(
    led: ReadonlyArray<readonly [string, Flight]>,
    source: DataSource["Service"],
    codec: Codec<A>,
    options: LoadOptions<A>
  ) =>
    fills.loadBatch(led, source, codec, writeOptions(options.ttl, options.tags)).pipe(
      Effect.onExit((exit) => {
        // Unregister every key first: a caller woken by one key's result must not join another key's flight of
        // this (finished) batch.
        for (const [key, flight] of led) flights.end(key, flight)
        return Effect.forEach(
          led,
          ([key, flight]) =>
            Deferred.done(
              flight.result,
              Exit.isSuccess(exit)
                ? Exit.succeed(
                    Option.map(exit.value.get(key) ?? Option.none(), (value): Shared => ({
                      value,
                      codec,
                      stale: false
                    }))
                  )
                : Exit.failCause(exit.cause)
            ),
          { discard: true }
        )
      })
    )

  /**
   * Loads `keys` through the source as one batch (joining loads already in flight, unless `refresh` asks for a
   * reload of its own) and adds what it found to `found`.
   */
  const loadKeys = Effect.fnUntraced(function* <A>(
    keys: ReadonlyArray<string>,
    found: Map<string, A>,
    codec: Codec<A>,
    options: LoadOptions<A>,
    refresh: boolean
  ) {
    const flown: Array<readonly [string, Flight]> = []
    const led: Array<readonly [string, Flight]> = []
    for (const key of keys) {
      const flight = flights.get(key)
      if (flight === undefined || (refresh && flight.background))
        led.push([key, flights.start(key, options.tags ?? noTags)])
      else {
        counters.sharedLoads++
        flown.push([key, flight])
      }
    }
    if (led.length > 0) yield* Effect.forkIn(loadBatch(led, yield* DataSource, codec, options), scope)
    for (const [key, flight] of [...led, ...flown]) {
      const shared = yield* Deferred.await(flight.result) as Effect.Effect<Option.Option<Shared>, LoadError>
      const value = Option.isSome(shared) && shared !== abandonedRead ? valueFor(shared.value, codec) : undefined
      if (value !== undefined && Exit.isSuccess(value)) found.set(key, value.value)
    }
    return found as ReadonlyMap<string, A>
  })

  const getMany = Effect.fnUntraced(function* <A>(keys: ReadonlyArray<string>, options: LoadOptions<A>) {
    const invalid = validKeys(keys)
    if (invalid !== undefined) return yield* invalid
    const codec = codecFor(options.schema)
    const { hits, misses } = yield* readMany([...new Set(keys)], codec)
    if (misses.length === 0) return hits as ReadonlyMap<string, A>
    return yield* loadKeys(misses, hits, codec, options, false)
  })

  /** Reloads every key through refresh leases: present values stay readable until their fill replaces them. */
  const refreshMany = Effect.fnUntraced(function* <A>(keys: ReadonlyArray<string>, options: LoadOptions<A>) {
    const invalid = validKeys(keys)
    if (invalid !== undefined) return yield* invalid
    return yield* loadKeys([...new Set(keys)], new Map<string, A>(), codecFor(options.schema), options, true)
  })

  return { getMany, refreshMany }
}
