/**
 * The store guard: every call the cache makes to its store goes through it. Outages (unavailable, timed out) feed a
 * circuit breaker; while the store fails, reads answer a fallback (counted as degraded) and writes answer a typed
 * outcome instead of failing, and what a failed write or delete may have left stale is remembered. Before the breaker
 * closes again the remembered keys are deleted — or the whole store flushed, past `maxPending` keys or after a
 * failed pattern/tag invalidation — so no value invalidated during an outage comes back. On a closed breaker the
 * guard adds one field read to a call.
 */
import { Clock, Effect } from "effect"
import { type CacheStore, CacheStoreError, isOutage } from "../../src/CacheStore.ts"
import type { Counters } from "./CacheCounters.ts"
import { type BreakerState, CircuitBreaker } from "./CircuitBreaker.ts"

/** When to open the breaker and what to remember. */
export interface StoreGuardOptions {
  readonly failureThreshold: number
  readonly resetAfterMs: number
  /** Keys remembered one by one; past this, the whole store is flushed on recovery. */
  readonly maxPending: number
}

/** What may be stale after a failed write: one key, several keys (a batch), or anything ("all", after a pattern or tag invalidation). */
export type Affected = string | ReadonlyArray<string> | "all"

/** The guard's state, for stats. */
export interface GuardState {
  readonly breaker: BreakerState
  readonly breakerOpened: number
  /** Keys waiting to be invalidated when the store recovers; `Infinity` when the whole store will be flushed. */
  readonly pendingInvalidations: number
}

/** The guarded view of one store. */
export interface StoreGuard {
  /** Runs a store read; a failure (or an open breaker) answers `fallback` and counts a degraded read. */
  readonly read: <A>(read: Effect.Effect<A, CacheStoreError>, fallback: A) => Effect.Effect<A>
  /**
   * The hot read path in one step on a closed breaker: `onValue` with the store's answer to `get(key)`, or
   * `onDegraded` (counted) when the store failed or the breaker is open.
   */
  readonly get: <B, E, R>(
    key: string,
    onValue: (text: string | undefined) => Effect.Effect<B, E, R>,
    onDegraded: () => Effect.Effect<B, E, R>
  ) => Effect.Effect<B, E, R>
  /**
   * Runs a store write affecting `affected`: `onWritten` with its result, or, when it failed, `onFailed` — after
   * dropping what may now be stale at once (a healthy store that refused) or remembering it for recovery (an outage).
   */
  readonly write: <A, O>(
    affected: Affected,
    write: Effect.Effect<A, CacheStoreError>,
    onWritten: (a: A) => O,
    onFailed: (error: CacheStoreError) => O
  ) => Effect.Effect<O>
  readonly state: () => GuardState
}

const circuitOpen = () =>
  new CacheStoreError({ operation: "write", reason: "Unavailable", cause: new Error("circuit open") })

/** The guard over `store`, counting into `counters`. */
export const make = (store: CacheStore["Service"], counters: Counters, options: StoreGuardOptions): StoreGuard => {
  const breaker = new CircuitBreaker({
    failureThreshold: options.failureThreshold,
    resetAfterMs: options.resetAfterMs
  })
  /** Keys whose write or delete failed: invalidated before the store is trusted again. */
  const pending = new Set<string>()
  let flushOnRecovery = false

  const remember = (affected: Affected) => {
    if (affected === "all") flushOnRecovery = true
    if (flushOnRecovery) return
    if (typeof affected === "string") pending.add(affected)
    else for (const key of affected) pending.add(key)
    if (pending.size > options.maxPending) {
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
  const usable: Effect.Effect<boolean> = Effect.suspend(() => {
    if (breaker.state === "closed") return Effect.succeed(true)
    if (breaker.state === "probing") return Effect.succeed(false)
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      breaker.shouldProbe(now) ? Effect.map(recover, () => breaker.state === "closed") : Effect.succeed(false)
    )
  })

  /** Counts a store failure; an outage feeds the breaker. */
  const failed = (error: CacheStoreError): Effect.Effect<void> => {
    if (!isOutage(error)) return Effect.void
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      breaker.failed(now)
        ? Effect.logWarning("cache store unavailable; breaker opened, serving from loaders").pipe(
            Effect.annotateLogs({ operation: error.operation, reason: error.reason })
          )
        : Effect.void
    )
  }

  /** Runs `run` when the store may be called, else `short` — without an extra step on a closed breaker. */
  const whenUsable = <A, E, R>(run: Effect.Effect<A, E, R>, short: () => Effect.Effect<A, E, R>) =>
    breaker.state === "closed" ? run : Effect.flatMap(usable, (ok) => (ok ? run : short()))

  const read = <A>(effect: Effect.Effect<A, CacheStoreError>, fallback: A): Effect.Effect<A> => {
    const degraded = () =>
      Effect.sync(() => {
        counters.degradedReads++
        return fallback
      })
    const run = Effect.matchEffect(effect, {
      onFailure: (error) => Effect.andThen(failed(error), degraded()),
      onSuccess: (value) => {
        breaker.succeeded()
        return Effect.succeed(value)
      }
    })
    return whenUsable(run, degraded)
  }

  const get = <B, E, R>(
    key: string,
    onValue: (text: string | undefined) => Effect.Effect<B, E, R>,
    onDegraded: () => Effect.Effect<B, E, R>
  ): Effect.Effect<B, E, R> => {
    const degraded = () => {
      counters.degradedReads++
      return onDegraded()
    }
    const run = Effect.matchEffect(store.get(key), {
      onFailure: (error) => Effect.andThen(failed(error), Effect.suspend(degraded)),
      onSuccess: (text) => {
        breaker.succeeded()
        return onValue(text)
      }
    })
    return whenUsable(run, degraded)
  }

  const write = <A, O>(
    affected: Affected,
    effect: Effect.Effect<A, CacheStoreError>,
    onWritten: (a: A) => O,
    onFailed: (error: CacheStoreError) => O
  ): Effect.Effect<O> => {
    const notWritten = (error: CacheStoreError) =>
      Effect.sync(() => {
        counters.failedWrites++
        remember(affected)
        return onFailed(error)
      })
    // A healthy store refused the write (OOM under noeviction, a script error): what it still holds may be older
    // than this write, so drop it now (a delete frees memory, so it goes through under OOM too).
    const refused = (error: CacheStoreError) =>
      Effect.matchEffect(
        affected === "all" ? store.flush : store.delete(typeof affected === "string" ? [affected] : affected),
        {
          onFailure: () => notWritten(error),
          onSuccess: () =>
            Effect.sync(() => {
              counters.failedWrites++
              return onFailed(error)
            })
        }
      )
    const run = Effect.matchEffect(effect, {
      onFailure: (error) =>
        isOutage(error)
          ? Effect.andThen(
              failed(error),
              Effect.suspend(() => notWritten(error))
            )
          : refused(error),
      onSuccess: (a) => {
        breaker.succeeded()
        return Effect.succeed(onWritten(a))
      }
    })
    return whenUsable(run, () => notWritten(circuitOpen()))
  }

  return {
    read,
    get,
    write,
    state: () => ({
      breaker: breaker.state,
      breakerOpened: breaker.opened,
      pendingInvalidations: flushOnRecovery ? Infinity : pending.size
    })
  }
}
