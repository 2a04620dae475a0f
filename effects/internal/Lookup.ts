/**
 * The lookup of a key: its live L1 entry, or one store read routed to what the caller does with each thing the store
 * may hold — a fresh value (which enters the L1 unless the key was invalidated since the read began), nothing, a
 * stamped entry past its freshness (a stale copy), a fail-safe copy within its throttle, or a negative entry. Also the
 * whole-value read (`readEntry`) and the remaining TTL, both of which answer a stamped entry's freshness.
 */
import { Effect, Exit } from "effect"
import type { CacheStore, WithTtl } from "../../src/CacheStore.ts"
import type { CacheValue } from "../../src/CacheValue.ts"
import type { ReadResult } from "../Cache.ts"
import type { Counters } from "./CacheCounters.ts"
import type { Codec } from "./Codec.ts"
import type { StaleCopy } from "./FencedFill.ts"
import * as Freshness from "./Freshness.ts"
import type { Entry, L1 } from "./L1.ts"
import type { StoredEntry } from "./StoredEntry.ts"
import type { StoreGuard } from "./StoreGuard.ts"

/** How a lookup's caller answers each thing the store may hold. */
export interface Outcomes<A, B, E, R> {
  /** A fresh value; `refreshAt` is when a hit on it should start an eager refresh (`Infinity`: never). */
  hit(value: A, refreshAt: number): Effect.Effect<B, E, R>
  /** Nothing usable: absent, undecodable (deleted), or the store failed. A function, not a method: passed as is. */
  readonly miss: () => Effect.Effect<B, E, R>
  /** A stamped entry past its freshness. */
  expired(copy: StaleCopy<A>): Effect.Effect<B, E, R>
  /** A fail-safe copy within its throttle: answered stale, without a load. */
  throttled(copy: StaleCopy<A>): Effect.Effect<B, E, R>
  /** A negative entry: the source does not have the key. */
  negative(): Effect.Effect<B, E, R>
}

/** What a lookup needs from the cache. */
export interface LookupDeps {
  readonly store: CacheStore["Service"]
  readonly guard: StoreGuard
  readonly entries: StoredEntry
  readonly counters: Counters
  readonly l1: L1 | undefined
  /** The cache's clock (epoch ms). */
  readonly now: () => number
  readonly policy: Freshness.Policy
}

const noTags: ReadonlyArray<string> = []
const unavailable: ReadResult = { _tag: "Unavailable" }
const missing: ReadResult = { _tag: "Missing" }

/** The lookups of one cache. */
export const make = (deps: LookupDeps) => {
  const { counters, entries, guard, l1, now, policy, store } = deps

  /** The live L1 entry of `key` (none while an invalidation of it is pending), counted as an L1 hit or miss. */
  const nearEntry = (key: string): Entry | undefined =>
    l1 === undefined || guard.isPending(key) ? undefined : l1.get(key, now())

  /** Routes a stamped store string to its outcome; a fresh value enters the L1 (read at `startedAt`, stamp `since`). */
  const classify = <A, B, E, R>(
    key: string,
    found: WithTtl<string>,
    stamped: Freshness.Stamped,
    codec: Codec<A>,
    on: Outcomes<A, B, E, R>,
    since: number,
    startedAt: number
  ): Effect.Effect<B, E, R> => {
    const { json, stamp } = stamped
    if (stamp.kind === "negative") return Freshness.isFreshNegative(stamp, now()) ? on.negative() : on.miss()
    const decoded = codec.decode(json)
    if (Exit.isFailure(decoded)) return Effect.andThen(entries.undecodable(key), on.miss())
    const copy = (): StaleCopy<A> => ({ value: decoded.value, text: found.value, stamp, json, tags: found.tags })
    if (now() >= stamp.freshUntil) return on.expired(copy())
    if (stamp.kind === "stale") return on.throttled(copy())
    const refreshAt = Freshness.refreshAt(policy, stamp)
    if (l1 !== undefined && !guard.isPending(key)) {
      const ttlMs = Freshness.remainingMs(stamp, startedAt)
      l1.admit(key, since, json, decoded.value, codec, found.tags, ttlMs, startedAt, refreshAt)
    }
    return on.hit(decoded.value, refreshAt)
  }

  /**
   * The store read of a lookup, one step on a closed breaker. Without an L1 or stamps it is one GET; otherwise the
   * read takes the entry's TTL and tags too, and a fresh hit enters the L1 unless the key was invalidated since.
   */
  const storeLookup = <A, B, E, R>(key: string, codec: Codec<A>, on: Outcomes<A, B, E, R>): Effect.Effect<B, E, R> => {
    if (l1 === undefined && !policy.stamps) {
      return guard.get(
        key,
        store.get(key),
        (text) => {
          if (text === undefined) return on.miss()
          const stamped = Freshness.parse(text)
          if (stamped !== undefined)
            return classify(key, { value: text, ttlMs: -1, tags: noTags }, stamped, codec, on, 0, 0)
          const decoded = codec.decode(text)
          return Exit.isSuccess(decoded)
            ? on.hit(decoded.value, Infinity)
            : Effect.andThen(entries.undecodable(key), on.miss())
        },
        on.miss
      )
    }
    const since = l1 === undefined ? 0 : l1.begin()
    const startedAt = now()
    return guard.get(
      key,
      store.getWithTtl(key),
      (found: WithTtl<string> | undefined) => {
        if (found === undefined) return on.miss()
        const stamped = Freshness.parse(found.value)
        if (stamped !== undefined) return classify(key, found, stamped, codec, on, since, startedAt)
        const decoded = codec.decode(found.value)
        if (Exit.isFailure(decoded)) return Effect.andThen(entries.undecodable(key), on.miss())
        if (l1 !== undefined && !guard.isPending(key)) {
          l1.admit(key, since, found.value, decoded.value, codec, found.tags, found.ttlMs, startedAt)
        }
        return on.hit(decoded.value, Infinity)
      },
      on.miss
    )
  }

  const counted = (result: ReadResult): ReadResult => {
    if (result._tag === "Found") counters.hits++
    else counters.misses++
    return result
  }

  /**
   * The whole value at `key` with its remaining TTL: from the L1 (a string entry), else one store read. A stamped
   * string answers its JSON and its remaining freshness while fresh, and is missing once it is not (or negative).
   */
  const readEntry = (key: string): Effect.Effect<ReadResult> => Effect.suspend(() => readEntryNow(key))

  const readEntryNow = (key: string): Effect.Effect<ReadResult> => {
    const entry = nearEntry(key)
    if (entry !== undefined) {
      const ttlMs = entry.storeExpiresAt === Infinity ? -1 : Math.max(0, entry.storeExpiresAt - now())
      return Effect.succeed(counted({ _tag: "Found", value: { type: "string", value: entry.text }, ttlMs }))
    }
    const since = l1 === undefined ? 0 : l1.begin()
    const startedAt = now()
    const found = (read: WithTtl<CacheValue> | undefined): ReadResult => {
      if (read === undefined) return counted(missing)
      const value = read.value
      if (value.type !== "string") return counted({ _tag: "Found", value, ttlMs: read.ttlMs })
      let text = value.value
      let ttlMs = read.ttlMs
      let refreshAt = Infinity
      const stamped = Freshness.parse(text)
      if (stamped !== undefined) {
        const { stamp } = stamped
        if (!Freshness.isFreshValue(stamp, now())) return counted(missing)
        text = stamped.json
        ttlMs = Freshness.remainingMs(stamp, startedAt)
        refreshAt = Freshness.refreshAt(policy, stamp)
      }
      if (l1 !== undefined && !guard.isPending(key)) {
        l1.admit(key, since, text, undefined, undefined, read.tags, ttlMs, startedAt, refreshAt)
      }
      return counted({
        _tag: "Found",
        value: stamped === undefined ? value : { type: "string", value: text },
        ttlMs: ttlMs < 0 ? -1 : Math.max(0, ttlMs - (now() - startedAt))
      })
    }
    return guard.get(
      key,
      store.readWithTtl(key),
      (read) => Effect.succeed(found(read)),
      () => Effect.succeed(counted(unavailable))
    )
  }

  /**
   * Remaining TTL of `key` in milliseconds (-1: none; undefined: absent or the store failing): with stamps, a string's
   * remaining freshness (undefined once it is stale or negative).
   */
  const ttl = (key: string): Effect.Effect<number | undefined> => {
    if (!policy.stamps) return guard.read(key, store.ttl(key), undefined)
    const read = Effect.flatMap(
      Effect.catchIf(
        store.getWithTtl(key),
        (error) => error.reason === "WrongType",
        () => Effect.succeed(null)
      ),
      (found) => {
        if (found === null) return store.ttl(key)
        if (found === undefined) return Effect.succeed(undefined)
        const stamp = Freshness.parse(found.value)?.stamp
        if (stamp === undefined) return Effect.succeed(found.ttlMs)
        const t = now()
        return Effect.succeed(Freshness.isFreshValue(stamp, t) ? Freshness.remainingMs(stamp, t) : undefined)
      }
    )
    return guard.read(key, read, undefined)
  }

  return { nearEntry, storeLookup, readEntry, ttl }
}
