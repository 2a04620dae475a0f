/**
 * Fenced fills: a load's result is written back only if nothing happened to its key while it ran. Before loading, a
 * lease with a unique token is put where the value will go (carrying the fill's tags, so a tag invalidation fences
 * it too); a delete, a write or an invalidation replaces or removes it; the fill is a compare-and-set on the token
 * (a Lua script on Redis, one synchronous step in memory). A load that raced an invalidation still answers its
 * callers but never writes back, and a failed load releases its lease.
 */
import { Effect, Exit, Option } from "effect"
import type { CacheStore, LeaseResult, WriteOptions } from "../../src/CacheStore.ts"
import type { DataSourceShape } from "../../src/DataSource.ts"
import type { Counters } from "./CacheCounters.ts"
import type { Codec } from "./Codec.ts"
import type { Flight } from "./SingleFlight.ts"
import type { StoreGuard } from "./StoreGuard.ts"
import type { StoredEntry } from "./StoredEntry.ts"

/** What fills need from the cache. */
export interface FencedFillDeps {
  readonly store: CacheStore["Service"]
  readonly guard: StoreGuard
  readonly entries: StoredEntry
  readonly counters: Counters
  /** How long a lease lives: bounds what a crashed loader leaves behind. */
  readonly leaseMs: number
  /** The cache's clock (epoch ms), read when a fill is sent. */
  readonly now: () => number
}

/** Told of a fill the store took: its JSON text, the value, and the time just before it was sent. */
export type OnFilled<A> = (text: string, value: A, sentAt: number) => void

/** The fills of one cache. */
export interface FencedFill {
  /**
   * Lease, load, fill: the value present under the lease, or the loaded one (written back only if not fenced);
   * `onFilled` hears of a fill only once the store took it — a fenced fill never reaches it.
   */
  readonly loadAndFill: <A, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    codec: Codec<A>,
    options: WriteOptions,
    onFilled?: OnFilled<A> | undefined
  ) => Effect.Effect<A, E, R>
  /** The same for a getMany batch through `source.loadMany`; answers each key's value, none when missing. */
  readonly loadBatch: <A>(
    led: ReadonlyArray<readonly [string, Flight]>,
    source: DataSourceShape,
    codec: Codec<A>,
    options: WriteOptions
  ) => Effect.Effect<Map<string, Option.Option<A>>, unknown>
}

/** Fills over the deps' store. */
export const make = (deps: FencedFillDeps): FencedFill => {
  const { counters, entries, guard, leaseMs, now, store } = deps
  // Unique per cache instance, so two processes on one store never share a token.
  const tokenPrefix = `${Date.now().toString(36)}:${Math.random().toString(36).slice(2)}:`
  let tokenCounter = 0
  const nextToken = () => tokenPrefix + (tokenCounter++).toString(36)

  /** Counts a fill's outcome: written, fenced, or not attempted because the store failed. */
  const countFill = (filled: boolean | undefined) => {
    if (filled === true) counters.fills++
    else if (filled === false) counters.fencedFills++
  }

  const release = (key: string, token: string, lease: LeaseResult | undefined) =>
    lease?._tag === "Acquired" ? Effect.ignore(store.release(key, token)) : Effect.void

  /** Encodes and fills a loaded value under its lease; a value that does not encode is released, not cached. */
  const fill = <A>(
    key: string,
    token: string,
    value: A,
    codec: Codec<A>,
    options: WriteOptions,
    onFilled?: OnFilled<A> | undefined
  ) => {
    const encoded = codec.encode(value)
    if (Exit.isFailure(encoded)) {
      return Effect.logWarning("loaded value does not encode with its schema; not cached").pipe(
        Effect.annotateLogs({ key }),
        Effect.andThen(Effect.ignore(store.release(key, token)))
      )
    }
    const text = encoded.value
    const sentAt = onFilled === undefined ? 0 : now()
    return Effect.map(guard.read(key, store.fill(key, token, text, options), undefined), (filled) => {
      countFill(filled)
      if (filled === true && onFilled !== undefined) onFilled(text, value, sentAt)
    })
  }

  const loadAndFill = Effect.fnUntraced(function* <A, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    codec: Codec<A>,
    options: WriteOptions,
    onFilled?: OnFilled<A> | undefined
  ) {
    const token = nextToken()
    const lease = yield* guard.read(key, store.lease(key, token, leaseMs, options.tags), undefined)
    if (lease?._tag === "Present") {
      const present = yield* entries.decode(key, lease.value, codec)
      if (Option.isSome(present)) return present.value
    }
    counters.loads++
    const value = yield* Effect.onError(load, () =>
      Effect.andThen(
        Effect.sync(() => counters.loadFailures++),
        release(key, token, lease)
      )
    )
    if (lease?._tag === "Acquired") yield* fill(key, token, value, codec, options, onFilled)
    return value
  })

  /** Leases every key of a batch; keys whose lease found a decodable value are answered from it. */
  const leaseAll = Effect.fnUntraced(function* <A>(
    keys: ReadonlyArray<string>,
    codec: Codec<A>,
    options: WriteOptions
  ) {
    const tokens = keys.map(nextToken)
    const leases = yield* Effect.forEach(
      keys,
      (key, i) => guard.read(key, store.lease(key, tokens[i]!, leaseMs, options.tags), undefined),
      { concurrency: "unbounded" }
    )
    const results = new Map<string, Option.Option<A>>()
    const toLoad: Array<{ readonly key: string; readonly token: string; readonly lease: LeaseResult | undefined }> = []
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!
      const lease = leases[i]
      const present = lease?._tag === "Present" ? yield* entries.decode(key, lease.value, codec) : Option.none()
      if (Option.isSome(present)) results.set(key, present)
      else toLoad.push({ key, token: tokens[i]!, lease })
    }
    return { results, toLoad }
  })

  const loadBatch = Effect.fnUntraced(function* <A>(
    led: ReadonlyArray<readonly [string, Flight]>,
    source: DataSourceShape,
    codec: Codec<A>,
    options: WriteOptions
  ) {
    const { results, toLoad } = yield* leaseAll(
      led.map(([key]) => key),
      codec,
      options
    )
    if (toLoad.length === 0) return results
    counters.loads++
    const loaded = yield* Effect.onError(source.loadMany(toLoad.map((item) => item.key)), () =>
      Effect.andThen(
        Effect.sync(() => counters.loadFailures++),
        Effect.forEach(toLoad, (item) => release(item.key, item.token, item.lease), { discard: true })
      )
    )
    yield* Effect.forEach(
      toLoad,
      ({ key, lease, token }) => {
        const decoded = loaded.has(key) ? codec.decodeValue(loaded.get(key)) : undefined
        if (decoded === undefined || Exit.isFailure(decoded)) {
          results.set(key, Option.none())
          if (decoded === undefined) return release(key, token, lease)
          return Effect.logWarning("source value does not decode; skipped").pipe(
            Effect.annotateLogs({ key }),
            Effect.andThen(release(key, token, lease))
          )
        }
        results.set(key, Option.some(decoded.value))
        return lease?._tag === "Acquired" ? fill(key, token, decoded.value, codec, options) : Effect.void
      },
      { concurrency: "unbounded", discard: true }
    )
    return results
  })

  return { loadAndFill, loadBatch }
}
