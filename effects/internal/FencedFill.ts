/**
 * Fenced fills: a load's result is written back only if nothing happened to its key while it ran. Before loading, a
 * lease with a unique token is put where the value will go (carrying the fill's tags, so a tag invalidation fences
 * it too); a delete, a write or an invalidation replaces or removes it; the fill is a compare-and-set on the token
 * (a Lua script on Redis, one synchronous step in memory). A load that raced an invalidation still answers its
 * callers but never writes back, and a failed load releases its lease. A reload of an entry the store holds (expired,
 * due for an eager refresh, or warmed again) takes a refresh lease, which keeps the entry readable until the fill lands.
 *
 * Under fail-safe, a load that fails (or passes the hard timeout) while a stale copy is within its bound answers that
 * copy — but only once the copy was written back under the same lease (stamped stale until the throttle ends), so a
 * copy an invalidation removed meanwhile is never answered. With negative caching, "not found" is filled too.
 */
import { Cause, Effect, Exit, Option } from "effect"
import type { CacheStore, LeaseMode, LeaseResult, WriteOptions } from "../../src/CacheStore.ts"
import { type DataSourceShape, LoadTimeoutError } from "../../src/DataSource.ts"
import type { Counters } from "./CacheCounters.ts"
import type { Codec } from "./Codec.ts"
import * as Freshness from "./Freshness.ts"
import type { Flight, Shared } from "./SingleFlight.ts"
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
  readonly policy: Freshness.Policy
  /** Test-only: fail-safe writes its stale copy back unfenced (a broken rule the property tests must catch). */
  readonly staleWriteBackUnfenced?: boolean | undefined
}

/** An entry a reader found past its freshness: what a failed load may answer instead, under fail-safe. */
export interface StaleCopy<A> {
  readonly value: A
  /** The stored string (stamp and JSON) as the store answers it: the copy is still there while this is. */
  readonly text: string
  readonly stamp: Freshness.Stamp
  readonly json: string
  readonly tags: ReadonlyArray<string>
}

/** How a load treats what the store holds. */
export interface FillPlan<A> {
  /** `"fill"` after a miss; `"refresh"` when the store holds an entry for the key, kept readable meanwhile. */
  readonly mode: LeaseMode
  /** The stale copy a failed load may answer (fail-safe). */
  readonly stale?: StaleCopy<A> | undefined
  readonly onFilled?: OnFilled<A> | undefined
}

/** Told of a fill the store took: its JSON text, the value, and the time just before it was sent. */
export type OnFilled<A> = (text: string, value: A, sentAt: number) => void

/** The fills of one cache. */
export interface FencedFill {
  /**
   * Lease, load, fill: the value present under the lease, or the loaded one (written back only if not fenced); none
   * when the load found nothing (filled as a negative entry when negative caching is on). `onFilled` hears of a fill
   * only once the store took it — a fenced fill never reaches it.
   */
  readonly loadAndFill: <A, E, R>(
    key: string,
    load: Effect.Effect<Option.Option<A>, E, R>,
    codec: Codec<A>,
    options: WriteOptions,
    plan: FillPlan<A>
  ) => Effect.Effect<Option.Option<Shared>, E | LoadTimeoutError, R>
  /**
   * The same for a getMany batch through `source.loadMany`, with refresh leases (so an entry the store holds stays
   * readable); answers each key's value, none when missing.
   */
  readonly loadBatch: <A>(
    led: ReadonlyArray<readonly [string, Flight]>,
    source: DataSourceShape,
    codec: Codec<A>,
    options: WriteOptions
  ) => Effect.Effect<Map<string, Option.Option<A>>, unknown>
}

/** Fills over the deps' store. */
export const make = (deps: FencedFillDeps): FencedFill => {
  const { counters, entries, guard, leaseMs, now, policy, store } = deps
  // Unique per cache instance, so two processes on one store never share a token.
  const tokenPrefix = `${Date.now().toString(36)}:${Math.random().toString(36).slice(2)}:`
  let tokenCounter = 0
  const nextToken = () => tokenPrefix + (tokenCounter++).toString(36)

  /** Counts a fill's outcome: written, fenced, or not attempted because the store failed. */
  const countFill = (filled: boolean | undefined) => {
    if (filled === true) counters.fills++
    else if (filled === false) counters.fencedFills++
  }

  const release = (key: string, token: string, lease: LeaseResult | undefined, keep = true) =>
    lease?._tag === "Acquired" ? Effect.ignore(store.release(key, token, keep)) : Effect.void

  /** Writes `text` under the lease; answers whether the store took it (undefined: the store failed). */
  const put = (key: string, token: string, text: string, options: WriteOptions) =>
    Effect.map(guard.read(key, store.fill(key, token, text, options), undefined), (filled) => {
      countFill(filled)
      return filled
    })

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
    const json = encoded.value
    const sentAt = now()
    const { text, options: written } = Freshness.stored(policy, json, sentAt, options)
    return Effect.map(put(key, token, text, written), (filled) => {
      if (filled === true && onFilled !== undefined) onFilled(json, value, sentAt)
    })
  }

  /** Remembers that the source does not have `key` (negative caching), or drops what the lease kept. */
  const fillMissing = (key: string, token: string, lease: LeaseResult | undefined, options: WriteOptions) => {
    if (policy.negativeTtlMs === 0 || lease?._tag !== "Acquired") return release(key, token, lease, false)
    const t = now()
    const until = t + policy.negativeTtlMs
    const text = Freshness.format({ freshUntil: until, staleUntil: until, writtenAt: t, kind: "negative" }, "")
    return Effect.asVoid(put(key, token, text, { ttlMs: policy.negativeTtlMs, tags: options.tags }))
  }

  /**
   * Fail-safe: writes `copy` back under the lease, stamped stale until the throttle ends (never past its bound), and
   * answers whether the store took it — only then may it be answered: an invalidation since removed the lease.
   */
  const keepStale = <A>(key: string, token: string, copy: StaleCopy<A>, cause: Cause.Cause<unknown>) => {
    const t = now()
    const { staleUntil, writtenAt } = copy.stamp
    const stamp: Freshness.Stamp = {
      freshUntil: Math.min(t + policy.throttleMs, staleUntil),
      staleUntil,
      writtenAt,
      kind: "stale"
    }
    const options = { ttlMs: Math.max(1, staleUntil - t), tags: copy.tags }
    const text = Freshness.format(stamp, copy.json)
    const written =
      deps.staleWriteBackUnfenced === true
        ? guard.read(key, Effect.as(store.set(key, text, options), true), undefined)
        : put(key, token, text, options)
    return Effect.flatMap(written, (kept) =>
      kept === true
        ? Effect.as(
            Effect.logWarning("the load failed; answering the stale copy until the throttle ends").pipe(
              Effect.annotateLogs({ key, staleUntil: new Date(staleUntil).toISOString(), cause: Cause.pretty(cause) })
            ),
            true
          )
        : Effect.succeed(false)
    )
  }

  /** `load` bounded by the hard timeout, when there is one. */
  const timed = <A, E, R>(key: string, load: Effect.Effect<A, E, R>): Effect.Effect<A, E | LoadTimeoutError, R> => {
    const timeoutMs = policy.hardTimeoutMs
    if (timeoutMs === undefined) return load
    return Effect.timeoutOrElse(load, {
      duration: timeoutMs,
      orElse: () => {
        counters.loadTimeouts++
        return Effect.fail(new LoadTimeoutError({ key, timeoutMs }))
      }
    })
  }

  /** Whether a stale copy may still stand in for a failed load. */
  const usable = <A>(copy: StaleCopy<A> | undefined): copy is StaleCopy<A> =>
    copy !== undefined && policy.maxStaleMs > 0 && now() < copy.stamp.staleUntil

  const loadAndFill = Effect.fnUntraced(function* <A, E, R>(
    key: string,
    load: Effect.Effect<Option.Option<A>, E, R>,
    codec: Codec<A>,
    options: WriteOptions,
    plan: FillPlan<A>
  ) {
    const token = nextToken()
    let lease = yield* guard.read(key, store.lease(key, token, leaseMs, options.tags, plan.mode), undefined)
    if (lease?._tag === "Present") {
      const present = yield* entries.decode(key, lease.value, codec)
      if (Option.isSome(present)) return Option.some<Shared>({ value: present.value, codec, stale: false })
      // What is there is past its freshness (or negative): reload it, keeping it readable meanwhile.
      lease = yield* guard.read(key, store.lease(key, token, leaseMs, options.tags, "refresh"), undefined)
    }
    counters.loads++
    const acquired = lease
    const loaded = yield* Effect.exit(Effect.onInterrupt(timed(key, load), () => release(key, token, acquired)))
    if (Exit.isFailure(loaded)) {
      counters.loadFailures++
      const copy = plan.stale
      if (usable(copy) && lease?._tag === "Acquired" && !Cause.hasInterruptsOnly(loaded.cause)) {
        if (yield* keepStale(key, token, copy, loaded.cause)) {
          return Option.some<Shared>({ value: copy.value, codec, stale: true })
        }
      }
      yield* release(key, token, lease)
      return yield* Effect.failCause(loaded.cause)
    }
    const found = loaded.value
    if (Option.isNone(found)) {
      yield* fillMissing(key, token, lease, options)
      return Option.none()
    }
    if (lease?._tag === "Acquired") yield* fill(key, token, found.value, codec, options, plan.onFilled)
    return Option.some<Shared>({ value: found.value, codec, stale: false })
  })

  /**
   * Takes a refresh lease on every key of a batch (an entry there stays readable until its fill lands); a key whose
   * lease still answers a decodable value (a store that does not take refresh leases) is answered from it.
   */
  const leaseAll = Effect.fnUntraced(function* <A>(
    keys: ReadonlyArray<string>,
    codec: Codec<A>,
    options: WriteOptions
  ) {
    const tokens = keys.map(nextToken)
    const leases = yield* Effect.forEach(
      keys,
      (key, i) => guard.read(key, store.lease(key, tokens[i]!, leaseMs, options.tags, "refresh"), undefined),
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
          if (decoded === undefined) return fillMissing(key, token, lease, options)
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
