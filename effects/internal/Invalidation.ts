/**
 * Applying an invalidation on this instance: the L1 entries and the loads in flight that it covers are removed and
 * fenced first (synchronously, before the store is touched), then its entries are removed — by key, by glob pattern (SCAN, never KEYS) or by tag —
 * with the exact count of live entries removed. A store that cannot apply it yields a `Pending` outcome, and the
 * store guard invalidates what may be stale before the store is trusted again.
 */
import { Effect } from "effect"
import * as CacheKey from "../../src/CacheKey.ts"
import type { CacheStore, CacheStoreError } from "../../src/CacheStore.ts"
import * as Glob from "../../src/Glob.ts"
import { InvalidPatternError, type Target } from "../../src/InvalidationEvent.ts"
import type { L1 } from "./L1.ts"
import type { SingleFlight } from "./SingleFlight.ts"
import type { StoreGuard } from "./StoreGuard.ts"

/** The outcome of a delete: done with the number of live entries removed, or pending until the store recovers. */
export type DeleteOutcome =
  | { readonly _tag: "Deleted"; readonly removed: number }
  | { readonly _tag: "Pending"; readonly error: CacheStoreError }

/** A deleted outcome. */
export const deleted = (removed: number): DeleteOutcome => ({ _tag: "Deleted", removed })
/** A pending outcome. */
export const pending = (error: CacheStoreError): DeleteOutcome => ({ _tag: "Pending", error })

/** Why `key` is not a valid key, as a typed error; undefined when it is one. */
export const invalidKey = (key: string): CacheKey.InvalidKeyError | undefined => {
  const reason = CacheKey.validate(key)
  return reason === undefined ? undefined : new CacheKey.InvalidKeyError({ key, message: reason })
}

/** Why `target` cannot be applied (an invalid key, an empty or match-everything pattern, empty tags), or undefined. */
export const validate = (target: Target): CacheKey.InvalidKeyError | InvalidPatternError | undefined => {
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

/**
 * Applies `target` on this instance: removes what it covers from the L1 and fences its loads (both before the store
 * is touched), removes its entries from the store (and from the L1 once more), answers the exact count.
 */
export const apply = (
  store: CacheStore["Service"],
  guard: StoreGuard,
  flights: SingleFlight,
  l1: L1 | undefined,
  scanCount: number,
  target: Target
): Effect.Effect<DeleteOutcome> =>
  Effect.suspend(() => {
    flights.fenceTarget(target)
    const removal = removeFromStore(store, guard, scanCount, target)
    if (l1 === undefined) return removal
    // Before the store is touched, and again once it answered: a read that raced the removal and read the old value
    // either entered the L1 before (removed now) or comes after (refused by the L1's stamp).
    l1.invalidate(target)
    return Effect.ensuring(
      removal,
      Effect.sync(() => l1.invalidate(target))
    )
  })

/**
 * Applies `targets` together: every target's loads are fenced first, then all key targets are removed with one
 * `store.delete` call (the pattern and tag targets one by one, as `apply`); answers one outcome per target, in order
 * (the keys' shared delete counts against the first key target, the others report 0).
 */
export const applyAll = (
  store: CacheStore["Service"],
  guard: StoreGuard,
  flights: SingleFlight,
  l1: L1 | undefined,
  scanCount: number,
  targets: ReadonlyArray<Target>
): Effect.Effect<ReadonlyArray<DeleteOutcome>> =>
  Effect.suspend(() => {
    for (const target of targets) flights.fenceTarget(target)
    // As `apply`: out of the L1 before the store is touched, and again once it answered.
    const forgetL1 = () => {
      if (l1 !== undefined) for (const target of targets) l1.invalidate(target)
    }
    forgetL1()
    const keys = [...new Set(targets.flatMap((t) => (t.invalidation_type === "key" ? [t.key] : [])))]
    const keysDeleted: Effect.Effect<DeleteOutcome> =
      keys.length === 0 ? Effect.succeed(deleted(0)) : guard.write(keys, store.delete(keys), deleted, pending)
    const removal = Effect.flatMap(keysDeleted, (keyOutcome) => {
      let first = true
      return Effect.forEach(targets, (target): Effect.Effect<DeleteOutcome> => {
        switch (target.invalidation_type) {
          case "key": {
            const outcome = first || keyOutcome._tag === "Pending" ? keyOutcome : deleted(0)
            first = false
            return Effect.succeed(outcome)
          }
          case "pattern":
            return guard.write("all", store.deletePattern(target.pattern, scanCount), deleted, pending)
          case "tag":
            return guard.write("all", store.deleteTagged(target.tags), deleted, pending)
        }
      })
    })
    return l1 === undefined ? removal : Effect.ensuring(removal, Effect.sync(forgetL1))
  })

const removeFromStore = (
  store: CacheStore["Service"],
  guard: StoreGuard,
  scanCount: number,
  target: Target
): Effect.Effect<DeleteOutcome> => {
  switch (target.invalidation_type) {
    case "key":
      return guard.write(target.key, store.delete([target.key]), deleted, pending)
    case "pattern":
      return guard.write("all", store.deletePattern(target.pattern, scanCount), deleted, pending)
    case "tag":
      return guard.write("all", store.deleteTagged(target.tags), deleted, pending)
  }
}
