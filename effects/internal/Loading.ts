/**
 * The read side of the cache: lookups, and loads on a miss. `getOrLoad` is cache-aside with one load per key per
 * instance at a time (callers of a key in flight join it through `SingleFlight` before asking the store) and a
 * fenced fill (`FencedFill`);
 * `getMany` reads every key in one MGET and loads the misses in one `DataSource.loadMany` batch, joining loads
 * already in flight. A miss on a failing store (or an open breaker) answers from the loader. With an `L1`, `get`,
 * `getOrLoad` and `readEntry` answer its live entries without the store; a store hit (read with its TTL) and a
 * fill the store took enter it, unless an invalidation of the key came since the read or load began.
 */
import { Deferred, Effect, Exit, Option, type Scope } from "effect"
import type * as CacheKey from "../../src/CacheKey.ts"
import type { CacheStore, WithTtl, WriteOptions } from "../../src/CacheStore.ts"
import type { CacheValue } from "../../src/CacheValue.ts"
import { DataSource, type LoadError } from "../../src/DataSource.ts"
import type * as Ttl from "../../src/Ttl.ts"
import type { LoadOptions, ReadResult } from "../Cache.ts"
import type { Counters } from "./CacheCounters.ts"
import { type Codec, codecFor } from "./Codec.ts"
import type { FencedFill } from "./FencedFill.ts"
import { invalidKey } from "./Invalidation.ts"
import type { Entry, L1 } from "./L1.ts"
import { type Flight, type Reading, type Shared, type SingleFlight, valueFor } from "./SingleFlight.ts"
import type { StoredEntry } from "./StoredEntry.ts"
import type { StoreGuard } from "./StoreGuard.ts"

/** What the read side needs from the cache. */
export interface LoadingDeps {
  readonly store: CacheStore["Service"]
  readonly guard: StoreGuard
  readonly entries: StoredEntry
  readonly counters: Counters
  readonly flights: SingleFlight
  readonly fills: FencedFill
  /** The cache's scope: shared loads run in it, so one caller's interruption spares the others. */
  readonly scope: Scope.Scope
  readonly writeOptions: (ttl: Ttl.Input | undefined, tags: ReadonlyArray<string> | undefined) => WriteOptions
  /** The near-cache, when the cache has one. */
  readonly l1: L1 | undefined
  /** The cache's clock (epoch ms). */
  readonly now: () => number
  /** Test-only: a loaded value enters the L1 before its fenced fill (a broken rule the property tests must catch). */
  readonly l1FillBeforeFence?: boolean | undefined
}

const noTags: ReadonlyArray<string> = []
const noneEffect = Effect.succeed(Option.none<never>())
const unavailable: ReadResult = { _tag: "Unavailable" }
const missing: ReadResult = { _tag: "Missing" }

/**
 * The value of an L1 entry for a caller with `codec`: as is when that codec decoded it, else its text decoded with
 * `codec` (kept on the entry when no codec had decoded it yet); a failure when it does not decode.
 */
const fromEntry = <A>(entry: Entry, codec: Codec<A>): Exit.Exit<A, unknown> => {
  if (entry.codec === codec) return Exit.succeed(entry.value as A)
  const decoded = codec.decode(entry.text)
  if (entry.codec === undefined && Exit.isSuccess(decoded)) {
    entry.codec = codec
    entry.value = decoded.value
  }
  return decoded
}

/**
 * Waits for `flight` and answers its value decoded with this caller's `codec`; `otherwise` when it has none (a
 * batch found the key missing) or its value does not decode with this caller's schema.
 */
const join = <A, E, R>(flight: Flight, codec: Codec<A>, otherwise: () => Effect.Effect<A, E, R>) =>
  Effect.flatMap(Deferred.await(flight.result) as Effect.Effect<Option.Option<Shared>, E>, (shared) => {
    if (Option.isNone(shared)) return otherwise()
    const value = valueFor(shared.value, codec)
    return Exit.isSuccess(value) ? Effect.succeed(value.value) : otherwise()
  })

/** The read side over the deps. */
export const make = (deps: LoadingDeps) => {
  const { counters, entries, fills, flights, guard, l1, now, scope, store, writeOptions } = deps

  /** The live L1 entry of `key` (none while an invalidation of it is pending), counted as an L1 hit or miss. */
  const nearEntry = (key: string): Entry | undefined =>
    l1 === undefined || guard.isPending(key) ? undefined : l1.get(key, now())

  /**
   * The store read of `get` and `getOrLoad`, one step on a closed breaker: a decoded hit goes to `onHit`; a miss, an
   * undecodable entry (deleted) or a failing store goes to `onMiss`.
   */
  const storeLookup = <A, B, E, R>(
    key: string,
    codec: Codec<A>,
    onHit: (value: A) => Effect.Effect<B, E, R>,
    onMiss: () => Effect.Effect<B, E, R>
  ): Effect.Effect<B, E, R> => {
    if (l1 === undefined) {
      return guard.get(
        key,
        store.get(key),
        (text) => {
          if (text === undefined) return onMiss()
          const decoded = codec.decode(text)
          return Exit.isSuccess(decoded) ? onHit(decoded.value) : Effect.andThen(entries.undecodable(key), onMiss())
        },
        onMiss
      )
    }
    // With an L1 the read takes the entry's TTL too, and the hit enters the L1 unless the key was invalidated since.
    const stamp = l1.begin()
    const startedAt = now()
    return guard.get(
      key,
      store.getWithTtl(key),
      (found: WithTtl<string> | undefined) => {
        if (found === undefined) return onMiss()
        const decoded = codec.decode(found.value)
        if (Exit.isFailure(decoded)) return Effect.andThen(entries.undecodable(key), onMiss())
        if (!guard.isPending(key)) {
          l1.admit(key, stamp, found.value, decoded.value, codec, found.tags, found.ttlMs, startedAt)
        }
        return onHit(decoded.value)
      },
      onMiss
    )
  }

  /** The lookup of `get` and `getOrLoad`: the L1, then the store. */
  const lookup = <A, B, E, R>(
    key: string,
    codec: Codec<A>,
    onHit: (value: A) => Effect.Effect<B, E, R>,
    onMiss: () => Effect.Effect<B, E, R>
  ): Effect.Effect<B, E, R> => {
    const entry = nearEntry(key)
    if (entry !== undefined) {
      // The schema that decoded it: the value as is, with no allocation.
      if (entry.codec === codec) return onHit(entry.value as A)
      const value = fromEntry(entry, codec)
      if (Exit.isSuccess(value)) return onHit(value.value)
    }
    return storeLookup(key, codec, onHit, onMiss)
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

  /** Starts the load of `key` in the cache's scope (so one caller's interruption spares the others) and waits. */
  const lead = <A, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    codec: Codec<A>,
    options: LoadOptions<A>,
    attached?: Flight | undefined
  ): Effect.Effect<A, E, R> => {
    const tags = options.tags ?? noTags
    const flight = attached ?? flights.start(key, tags)
    const write = writeOptions(options.ttl, options.tags)
    const stamp = l1 === undefined ? 0 : l1.begin()
    // A fill enters the L1 only once the store took it (a fenced fill never does), unless the key was invalidated
    // since the load began or an invalidation of it is pending.
    const onFilled =
      l1 === undefined
        ? undefined
        : (text: string, value: A, sentAt: number) => {
            if (!guard.isPending(key)) l1.admit(key, stamp, text, value, codec, tags, write.ttlMs ?? -1, sentAt)
          }
    const loaded =
      l1 !== undefined && deps.l1FillBeforeFence === true
        ? Effect.map(load, (value) => {
            const text = codec.encode(value)
            if (Exit.isSuccess(text)) {
              l1.admit(key, l1.begin(), text.value, value, codec, tags, write.ttlMs ?? -1, now())
            }
            return value
          })
        : load
    const run = fills.loadAndFill(key, loaded, codec, write, onFilled).pipe(
      Effect.onExit((exit) => {
        flights.end(key, flight)
        return Deferred.done(
          flight.result,
          Exit.map(exit, (value) => Option.some({ value, codec }))
        )
      })
    )
    return Effect.andThen(
      Effect.forkIn(run, scope),
      join(flight, codec, () => lead(key, load, codec, options))
    )
  }

  const getOrLoad = <A, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    options: LoadOptions<A>
  ): Effect.Effect<A, E | CacheKey.InvalidKeyError, R> => {
    const invalid = invalidKey(key)
    if (invalid !== undefined) return Effect.fail(invalid)
    const codec = codecFor(options.schema)
    const entry = nearEntry(key)
    if (entry !== undefined) {
      if (entry.codec === codec) return hitValue(entry.value as A)
      const value = fromEntry(entry, codec)
      if (Exit.isSuccess(value)) return hitValue(value.value)
    }
    // A key whose load is in flight here is joined before the store is asked: a pile-up on a cold key costs one
    // store read (the leader's), not one per caller. An invalidation unregisters the flight, so no caller arriving
    // after it joins a load that may be stale.
    const inFlight = flights.get(key)
    if (inFlight !== undefined) return joinFlight(key, inFlight, load, codec, options)
    const reading = flights.reading(key)
    if (reading !== undefined) {
      reading.flight ??= flights.start(key, options.tags ?? noTags)
      return joinFlight(key, reading.flight, load, codec, options)
    }
    const mine = flights.beginRead(key)
    return storeLookup(
      key,
      codec,
      (value) => {
        answered(key, mine)
        if (mine.flight !== undefined) {
          flights.end(key, mine.flight)
          Deferred.doneUnsafe(mine.flight.result, Exit.succeed(Option.some<Shared>({ value, codec })))
        }
        return hitValue(value)
      },
      () => {
        answered(key, mine)
        const raced = flights.get(key)
        if (raced !== undefined && raced !== mine.flight) return joinFlight(key, raced, load, codec, options)
        counters.misses++
        return lead(key, load, codec, options, mine.flight)
      }
    ).pipe(Effect.onInterrupt(() => Effect.sync(() => abandoned(key, mine))))
  }

  const answered = (key: string, reading: Reading) => {
    reading.answered = true
    flights.endRead(key, reading)
  }

  /** The reader was interrupted before its read answered: the callers waiting for it go on without it. */
  const abandoned = (key: string, reading: Reading) => {
    if (reading.answered) return
    flights.endRead(key, reading)
    if (reading.flight !== undefined) {
      flights.end(key, reading.flight)
      Deferred.doneUnsafe(reading.flight.result, Exit.succeed(Option.none()))
    }
  }

  const joinFlight = <A, E, R>(
    key: string,
    flight: Flight,
    load: Effect.Effect<A, E, R>,
    codec: Codec<A>,
    options: LoadOptions<A>
  ): Effect.Effect<A, E, R> => {
    counters.misses++
    counters.sharedLoads++
    return join(flight, codec, () => lead(key, load, codec, options))
  }

  /** The stored values of `keys` (one MGET) and the keys that missed. */
  const readMany = Effect.fnUntraced(function* <A>(keys: ReadonlyArray<string>, codec: Codec<A>) {
    const texts = yield* guard.read(undefined, store.getMany(keys), [])
    const hits = new Map<string, A>()
    const misses: Array<string> = []
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      // A key with an invalidation still pending is a miss, whatever the store holds.
      const text = guard.isPending(key) ? undefined : texts[i]
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
                ? Exit.succeed(Option.map(exit.value.get(key) ?? Option.none(), (value) => ({ value, codec })))
                : Exit.failCause(exit.cause)
            ),
          { discard: true }
        )
      })
    )

  const getMany = Effect.fnUntraced(function* <A>(keys: ReadonlyArray<string>, options: LoadOptions<A>) {
    for (const key of keys) {
      const invalid = invalidKey(key)
      if (invalid !== undefined) return yield* invalid
    }
    const codec = codecFor(options.schema)
    const { hits, misses } = yield* readMany([...new Set(keys)], codec)
    if (misses.length === 0) return hits as ReadonlyMap<string, A>
    // Join loads already in flight; lead the rest as one batch through the source.
    const flown: Array<readonly [string, Flight]> = []
    const led: Array<readonly [string, Flight]> = []
    for (const key of misses) {
      const flight = flights.get(key)
      if (flight === undefined) led.push([key, flights.start(key, options.tags ?? noTags)])
      else {
        counters.sharedLoads++
        flown.push([key, flight])
      }
    }
    if (led.length > 0) yield* Effect.forkIn(loadBatch(led, yield* DataSource, codec, options), scope)
    for (const [key, flight] of [...led, ...flown]) {
      const shared = yield* Deferred.await(flight.result) as Effect.Effect<Option.Option<Shared>, LoadError>
      const value = Option.isSome(shared) ? valueFor(shared.value, codec) : undefined
      if (value !== undefined && Exit.isSuccess(value)) hits.set(key, value.value)
    }
    return hits as ReadonlyMap<string, A>
  })

  const counted = (result: ReadResult): ReadResult => {
    if (result._tag === "Found") counters.hits++
    else counters.misses++
    return result
  }

  /** The whole value at `key` with its remaining TTL: from the L1 (a string entry), else one store read. */
  const readEntry = (key: string): Effect.Effect<ReadResult> => {
    const entry = nearEntry(key)
    if (entry !== undefined) {
      const ttlMs = entry.storeExpiresAt === Infinity ? -1 : Math.max(0, entry.storeExpiresAt - now())
      return Effect.succeed(counted({ _tag: "Found", value: { type: "string", value: entry.text }, ttlMs }))
    }
    const stamp = l1 === undefined ? 0 : l1.begin()
    const startedAt = l1 === undefined ? 0 : now()
    const found = (read: WithTtl<CacheValue> | undefined): ReadResult => {
      if (read === undefined) return counted(missing)
      if (l1 !== undefined && read.value.type === "string" && !guard.isPending(key)) {
        l1.admit(key, stamp, read.value.value, undefined, undefined, read.tags, read.ttlMs, startedAt)
      }
      return counted({ _tag: "Found", value: read.value, ttlMs: read.ttlMs })
    }
    return guard.get(
      key,
      store.readWithTtl(key),
      (read) => Effect.succeed(found(read)),
      () => Effect.succeed(counted(unavailable))
    )
  }

  return {
    /** The value at `key` decoded with `codec`; none on a miss, an undecodable entry, or a failing store. */
    get: <A>(key: string, codec: Codec<A>) => lookup(key, codec, hitSome, missNone),
    getOrLoad,
    getMany,
    readEntry
  }
}
