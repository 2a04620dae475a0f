/**
 * The port of the store a cache instance owns (its embedded Redis, or memory in tests). Strings are the hot
 * path and carry JSON text written by `effects/Cache`; the four structured types are Redis-native. Every write
 * that should be fenced goes through a lease: `lease` puts a token where the value will go, `delete` removes
 * it, and `fill` is a compare-and-set on the token, so a load that raced a delete never writes back.
 *
 * Tags: every entry written with tags is listed in each tag's index, and an entry is readable only while every
 * index it claims still lists it — so an index lost to eviction makes its entries unreadable rather than
 * invisible to `deleteTagged`, whose count is therefore exact. Indexes drop expired members as they are written
 * and expire with their last member, so their memory follows the live tagged entries.
 */
import { Context, Effect, Schema } from "effect"
import type { CacheValue, ScoredMember } from "./CacheValue.ts"

/**
 * Why a store operation failed. `Unavailable` and `Timeout` mean the store itself is unhealthy (they feed the
 * circuit breaker); `ReadOnly` means it answers reads but refuses every write, deletes included (Redis's MISCONF
 * when its disk is full, READONLY): invalidations must wait until it writes again; `OutOfMemory` and `WrongType`
 * are answers from a healthy store refusing one command.
 */
export const StoreFailure = Schema.Literals([
  "Unavailable",
  "Timeout",
  "ReadOnly",
  "OutOfMemory",
  "WrongType",
  "Unknown"
])
export type StoreFailure = typeof StoreFailure.Type

/** A failed store operation. */
export class CacheStoreError extends Schema.TaggedError<CacheStoreError>()("CacheStoreError", {
  operation: Schema.String,
  reason: StoreFailure,
  key: Schema.optional(Schema.String),
  cause: Schema.Defect()
}) {}

/** Whether a failure says the store is down (as opposed to a healthy store refusing one command). */
export const isOutage = (error: CacheStoreError): boolean =>
  error.reason === "Unavailable" || error.reason === "Timeout"

/** The TTL of a write. */
export interface TtlOptions {
  /** Time to live in milliseconds; absent means no expiry (and, on a merge into a collection, no change). */
  readonly ttlMs?: number | undefined
}

/** Options of a write that replaces an entry. */
export interface WriteOptions extends TtlOptions {
  /** Tags recorded for tag invalidation. */
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * How a lease treats an entry already at its key: `"fill"` (a load on a miss) leaves it there and answers it;
 * `"refresh"` (a reload of a present entry) takes the key anyway but keeps the entry readable, unchanged, until the
 * fill replaces it — or until any write, delete or invalidation of the key removes both, which fences the reload.
 */
export type LeaseMode = "fill" | "refresh"

/** What `lease` found: the lease was taken, or a value was already there (filled by someone else). */
export type LeaseResult = { readonly _tag: "Acquired" } | { readonly _tag: "Present"; readonly value: string }

/** What a read with its TTL found: the entry, its remaining TTL in milliseconds (`-1`: none) and its tags. */
export interface WithTtl<A> {
  readonly value: A
  readonly ttlMs: number
  readonly tags: ReadonlyArray<string>
}

/** The memory the store uses and its eviction counters, for stats and alerts. */
export interface StoreInfo {
  readonly kind: "redis" | "memory"
  readonly keys: number
  readonly usedMemory: number
  /** Configured limit in bytes; 0 means unlimited. */
  readonly maxMemory: number
  readonly evictedKeys: number
  /** Members across all tag indexes (live and not yet pruned), to watch the index's memory. */
  readonly tagIndexEntries: number
}

/** The store a cache instance owns. */
export class CacheStore extends Context.Service<
  CacheStore,
  {
    /** The string at `key`; `undefined` when absent, expired, or only leased. */
    readonly get: (key: string) => Effect.Effect<string | undefined, CacheStoreError>
    /** The string at `key` with its remaining TTL and tags, in one round trip; `undefined` as `get` answers it. */
    readonly getWithTtl: (key: string) => Effect.Effect<WithTtl<string> | undefined, CacheStoreError>
    /** The strings at `keys`, in order, as `get` would answer each. */
    readonly getMany: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string | undefined>, CacheStoreError>
    /** Writes a string, replacing whatever the key held (a lease included, which fences its load). */
    readonly set: (key: string, value: string, options?: WriteOptions) => Effect.Effect<void, CacheStoreError>
    /** Removes keys and their leases; answers how many live entries were removed. */
    readonly delete: (keys: ReadonlyArray<string>) => Effect.Effect<number, CacheStoreError>
    /** Whether `key` holds a live entry of any type (a lease is not an entry). */
    readonly exists: (key: string) => Effect.Effect<boolean, CacheStoreError>
    /** Remaining TTL of `key` in milliseconds: `-1` when it never expires, `undefined` when it is absent. */
    readonly ttl: (key: string) => Effect.Effect<number | undefined, CacheStoreError>

    /**
     * Puts a lease with `token` at `key` (carrying `tags`, so a tag invalidation fences it); a previous lease is
     * replaced (and so fenced). In `"fill"` mode (the default) a string already there is answered as `Present` and
     * no lease is taken; in `"refresh"` mode the lease is taken and the string stays readable under it.
     */
    readonly lease: (
      key: string,
      token: string,
      leaseMs: number,
      tags?: ReadonlyArray<string>,
      mode?: LeaseMode
    ) => Effect.Effect<LeaseResult, CacheStoreError>
    /** Writes `value` only if `key` still holds the lease `token`; answers whether it wrote. */
    readonly fill: (
      key: string,
      token: string,
      value: string,
      options?: WriteOptions
    ) => Effect.Effect<boolean, CacheStoreError>
    /**
     * Removes the lease `token` from `key` if it is still there (a load that failed). The entry a refresh lease kept
     * readable stays, unless `keep` is false (the source no longer has the key).
     */
    readonly release: (key: string, token: string, keep?: boolean) => Effect.Effect<void, CacheStoreError>

    /** The whole value at `key`, of whichever data type it holds. */
    readonly read: (key: string) => Effect.Effect<CacheValue | undefined, CacheStoreError>
    /** The whole value at `key` with its remaining TTL and tags, in one round trip. */
    readonly readWithTtl: (key: string) => Effect.Effect<WithTtl<CacheValue> | undefined, CacheStoreError>
    /** Replaces whatever `key` held with `value`, atomically, with its TTL and tags. */
    readonly write: (key: string, value: CacheValue, options?: WriteOptions) => Effect.Effect<void, CacheStoreError>
    /** Sets hash fields (merging); a TTL, when given, applies to the whole hash. */
    readonly hashSet: (
      key: string,
      fields: Readonly<Record<string, string>>,
      options?: TtlOptions
    ) => Effect.Effect<void, CacheStoreError>
    /** One field of a hash. */
    readonly hashGet: (key: string, field: string) => Effect.Effect<string | undefined, CacheStoreError>
    /** Adds set members; answers how many were new. */
    readonly setAdd: (
      key: string,
      members: ReadonlyArray<string>,
      options?: TtlOptions
    ) => Effect.Effect<number, CacheStoreError>
    /** Whether `member` is in the set at `key`. */
    readonly setHas: (key: string, member: string) => Effect.Effect<boolean, CacheStoreError>
    /** Adds or rescores sorted-set members; answers how many were new. */
    readonly sortedSetAdd: (
      key: string,
      members: ReadonlyArray<ScoredMember>,
      options?: TtlOptions
    ) => Effect.Effect<number, CacheStoreError>
    /** Members ranked `start..stop` (inclusive, negative from the end) by ascending score. */
    readonly sortedSetRange: (
      key: string,
      start: number,
      stop: number
    ) => Effect.Effect<ReadonlyArray<ScoredMember>, CacheStoreError>
    /** Appends to a list; answers its new length. */
    readonly listPush: (
      key: string,
      values: ReadonlyArray<string>,
      options?: TtlOptions
    ) => Effect.Effect<number, CacheStoreError>
    /** Elements `start..stop` (inclusive, negative from the end) of a list. */
    readonly listRange: (
      key: string,
      start: number,
      stop: number
    ) => Effect.Effect<ReadonlyArray<string>, CacheStoreError>

    /** Removes every live key matching the glob `pattern` (leases too), scanning `count` keys a step (never KEYS); answers the exact number of live entries removed. */
    readonly deletePattern: (pattern: string, count?: number) => Effect.Effect<number, CacheStoreError>
    /** Removes every live entry carrying any of `tags` (and leases taken with them); answers the exact count. */
    readonly deleteTagged: (tags: ReadonlyArray<string>) => Effect.Effect<number, CacheStoreError>
    /** Live keys carrying `tag` (a key only leased with it included). */
    readonly tagged: (tag: string) => Effect.Effect<ReadonlyArray<string>, CacheStoreError>
    /** Memory, key count and evictions. */
    readonly info: Effect.Effect<StoreInfo, CacheStoreError>
    /** A cheap health probe. */
    readonly ping: Effect.Effect<void, CacheStoreError>
    /** Removes every entry (used when continuity cannot be shown and everything may be stale). */
    readonly flush: Effect.Effect<void, CacheStoreError>
  }
>()("embedded-cache/CacheStore") {}
