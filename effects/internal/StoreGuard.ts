/**
 * The store guard: every call the cache makes to its store goes through it. Outages (unavailable, timed out) feed a
 * circuit breaker; while the store fails, reads answer a fallback (counted as degraded) and writes answer a typed
 * outcome instead of failing. An invalidation the store could not apply — an outage, a store that refuses writes
 * (disk full, read-only), a failed write that may have left an older value — is never forgotten: its keys stay
 * pending (or, past `maxPending` keys or after a failed pattern/tag invalidation, the whole store does), reads of
 * them miss without reaching the store, and a background retry applies it with backoff until the store takes it,
 * whether or not the breaker ever opened. On a healthy store with nothing pending the guard adds two field reads to
 * a call.
 */
import { Clock, Effect, Latch, Schedule, type Scope } from "effect"
import { type CacheStore, CacheStoreError, isOutage } from "../../src/CacheStore.ts"
import { PendingJournal, type PendingRecord } from "../../src/PendingJournal.ts"
import type { Counters } from "./CacheCounters.ts"
import { type BreakerState, CircuitBreaker } from "./CircuitBreaker.ts"

/** When to open the breaker and what to remember. */
export interface StoreGuardOptions {
  readonly failureThreshold: number
  readonly resetAfterMs: number
  /** Keys remembered one by one; past this, the whole store is flushed on recovery. */
  readonly maxPending: number
}

/**
 * What a write affects: one key; several keys (a batch of invalidations); "all" (a pattern or tag invalidation: if
 * it fails, anything may be stale); or "everything" (a flush: if it fails anything may be stale, and once it
 * succeeds nothing pending is left).
 */
export type Affected = string | ReadonlyArray<string> | "all" | "everything"

/** The guard's state, for stats. */
export interface GuardState {
  readonly breaker: BreakerState
  readonly breakerOpened: number
  /** Keys waiting to be invalidated when the store recovers; `Infinity` when the whole store will be flushed. */
  readonly pendingInvalidations: number
}

/** The guarded view of one store. */
export interface StoreGuard {
  /**
   * Runs a store read of `key` (undefined: of no single key); a failure, an open breaker, or an invalidation of the
   * key still pending answers `fallback` and counts a degraded read.
   */
  readonly read: <A>(key: string | undefined, read: Effect.Effect<A, CacheStoreError>, fallback: A) => Effect.Effect<A>
  /**
   * The hot read path in one step on a closed breaker: `onValue` with the store's answer to `read` (a read of
   * `key`), or `onDegraded` (counted) when the store failed, the breaker is open or an invalidation of the key is
   * still pending.
   */
  readonly get: <T, B, E, R>(
    key: string,
    read: Effect.Effect<T, CacheStoreError>,
    onValue: (found: T) => Effect.Effect<B, E, R>,
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
  /** Whether an invalidation covering `key` is still pending: the store may hold a value it removed. */
  readonly isPending: (key: string) => boolean
  /**
   * Holds (true) or releases (false) every read: while held, reads miss without the store, as if everything were
   * pending — for a store whose data predates invalidations not received yet (a restart catching up with its bus).
   */
  readonly holdReads: (held: boolean) => void
  readonly state: () => GuardState
}

const circuitOpen = () =>
  new CacheStoreError({ operation: "write", reason: "Unavailable", cause: new Error("circuit open") })

/** Retries of a pending invalidation: 50 ms, doubling, at most 5 s apart, for as long as it takes. */
const retryBackoff = Schedule.min([Schedule.exponential("50 millis", 2), Schedule.spaced("5 seconds")])

/** The guard over `store`, counting into `counters`; its retry of pending invalidations runs in the scope. */
export const make = Effect.fnUntraced(function* (
  store: CacheStore["Service"],
  counters: Counters,
  options: StoreGuardOptions
): Effect.fn.Return<StoreGuard, never, Scope.Scope> {
  const breaker = new CircuitBreaker({
    failureThreshold: options.failureThreshold,
    resetAfterMs: options.resetAfterMs
  })
  /** Keys an invalidation could not be applied to: they read as misses until it is. */
  const pending = new Set<string>()
  /** Anything may be stale: every read misses until the store has been flushed. */
  let flushPending = false
  /** Open while something is pending: the retry fiber waits on it. */
  const somethingPending = yield* Latch.make(false)
  const journal = yield* PendingJournal
  const recorded = (): PendingRecord | undefined =>
    flushPending
      ? { keys: [], everything: true }
      : pending.size === 0
        ? undefined
        : { keys: [...pending], everything: false }

  /** Reads held while a restart catches up with its bus (see `holdReads`). */
  let readsHeld = false
  const isPending = (key: string) => readsHeld || flushPending || (pending.size > 0 && pending.has(key))

  const remember = (affected: Affected) => {
    const wasClear = !flushPending && pending.size === 0
    if (affected === "all" || affected === "everything") flushPending = true
    else if (!flushPending) {
      if (typeof affected === "string") pending.add(affected)
      else for (const key of affected) pending.add(key)
      if (pending.size > options.maxPending) {
        pending.clear()
        flushPending = true
      }
    }
    somethingPending.openUnsafe()
    // Recorded before the caller hears `Pending`, so it outlives this process.
    const save = journal.save(recorded())
    return wasClear
      ? Effect.andThen(
          save,
          Effect.logWarning("an invalidation could not be applied; it stays pending and is retried until it is").pipe(
            Effect.annotateLogs({
              affected: flushPending
                ? "everything"
                : typeof affected === "string"
                  ? affected
                  : `${affected.length} keys`
            })
          )
        )
      : save
  }

  /** Applies what is pending: one delete of the pending keys, or a flush. Fails while the store refuses it. */
  const applyPending: Effect.Effect<void, CacheStoreError> = Effect.suspend(() => {
    if (flushPending) {
      return Effect.map(store.flush, () => {
        flushPending = false
        pending.clear()
      })
    }
    if (pending.size === 0) return Effect.void
    // Keys remembered while the delete runs stay: the delete may have run before their failure.
    const keys = [...pending]
    return Effect.map(store.delete(keys), () => {
      if (!flushPending) for (const key of keys) pending.delete(key)
    })
  })

  /** Whether nothing is pending now; closes the latch when so, so the retry fiber sleeps. */
  const settled = Effect.suspend(() => {
    if (flushPending || pending.size > 0) return Effect.succeed(false)
    somethingPending.closeUnsafe()
    return Effect.as(Effect.andThen(journal.save(undefined), Effect.logInfo("pending invalidations applied")), true)
  })

  // The retry runs whether or not the breaker opened: a store that restarted within the failure threshold, or one
  // that refuses writes while it answers reads, must not keep a value an invalidation removed.
  yield* somethingPending.await.pipe(
    Effect.andThen(applyPending.pipe(Effect.retry(retryBackoff))),
    Effect.andThen(settled),
    Effect.forever,
    Effect.forkScoped
  )

  // What a previous process could not apply is pending again: its store may have kept (persisted) what it removed.
  const inherited = yield* journal.load
  if (inherited !== undefined) {
    yield* remember(inherited.everything ? "everything" : inherited.keys)
    yield* Effect.logWarning("invalidations left pending by a previous run are applied before their keys are served")
  }

  /** Invalidates what is pending, then closes the breaker; one caller at a time. */
  const recover = Effect.andThen(store.ping, applyPending).pipe(
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

  const read = <A>(
    key: string | undefined,
    effect: Effect.Effect<A, CacheStoreError>,
    fallback: A
  ): Effect.Effect<A> => {
    const degraded = () =>
      Effect.sync(() => {
        counters.degradedReads++
        return fallback
      })
    if (key !== undefined && isPending(key)) return degraded()
    const run = Effect.matchEffect(effect, {
      onFailure: (error) => Effect.andThen(failed(error), degraded()),
      onSuccess: (value) => {
        breaker.succeeded()
        return Effect.succeed(value)
      }
    })
    return whenUsable(run, degraded)
  }

  const get = <T, B, E, R>(
    key: string,
    readKey: Effect.Effect<T, CacheStoreError>,
    onValue: (found: T) => Effect.Effect<B, E, R>,
    onDegraded: () => Effect.Effect<B, E, R>
  ): Effect.Effect<B, E, R> => {
    if (isPending(key)) return degradedGet(onDegraded)
    // matchCauseEffect rather than matchEffect, and the degraded path built only when taken: a read on a closed
    // breaker allocates one frame and its two handlers.
    const run = Effect.matchCauseEffect(readKey, {
      // catchEager recovers the store's typed failure as matchEffect would (a defect or an interruption goes on).
      onFailure: (cause) =>
        Effect.catchEager(Effect.failCause(cause), (error) =>
          Effect.andThen(
            failed(error),
            Effect.suspend(() => degradedGet(onDegraded))
          )
        ),
      onSuccess: (text) => {
        breaker.succeeded()
        return onValue(text)
      }
    })
    return breaker.state === "closed" ? run : Effect.flatMap(usable, (ok) => (ok ? run : degradedGet(onDegraded)))
  }

  /** A read answered without the store, counted. */
  const degradedGet = <B, E, R>(onDegraded: () => Effect.Effect<B, E, R>) => {
    counters.degradedReads++
    return onDegraded()
  }

  /** A write that failed soft: remembered for recovery (what it affected may be stale), answered `onFailed`. */
  const notWritten = <O>(affected: Affected, onFailed: (error: CacheStoreError) => O, error: CacheStoreError) =>
    Effect.suspend(() => {
      counters.failedWrites++
      return Effect.as(remember(affected), onFailed(error))
    })

  // A healthy store refused the write (OOM under noeviction, a script error): what it still holds may be older
  // than this write, so drop it now (a delete frees memory, so it goes through under OOM too). A store that
  // refuses every write (disk full, read-only) would refuse that delete too: remember it instead.
  const refused = <O>(affected: Affected, onFailed: (error: CacheStoreError) => O, error: CacheStoreError) =>
    error.reason === "ReadOnly"
      ? notWritten(affected, onFailed, error)
      : Effect.matchEffect(
          affected === "all" || affected === "everything"
            ? store.flush
            : store.delete(typeof affected === "string" ? [affected] : affected),
          {
            onFailure: () => notWritten(affected, onFailed, error),
            onSuccess: () =>
              Effect.sync(() => {
                counters.failedWrites++
                return onFailed(error)
              })
          }
        )

  const write = <A, O>(
    affected: Affected,
    effect: Effect.Effect<A, CacheStoreError>,
    onWritten: (a: A) => O,
    onFailed: (error: CacheStoreError) => O
  ): Effect.Effect<O> => {
    // matchCauseEffect rather than matchEffect (no wrapper per call; catchEager recovers as matchEffect would),
    // and the failure paths built only on failure: a healthy write allocates one frame and its two handlers.
    const run = Effect.matchCauseEffect(effect, {
      onFailure: (cause) =>
        Effect.catchEager(Effect.failCause(cause), (error) =>
          isOutage(error)
            ? Effect.andThen(
                failed(error),
                Effect.suspend(() => notWritten(affected, onFailed, error))
              )
            : refused(affected, onFailed, error)
        ),
      onSuccess: (a) => {
        breaker.succeeded()
        // The store now holds this write's result: nothing older is left to invalidate for what it covered.
        if (affected === "everything") {
          flushPending = false
          pending.clear()
        } else if (affected !== "all" && pending.size > 0) {
          if (typeof affected === "string") pending.delete(affected)
          else for (const key of affected) pending.delete(key)
        }
        return Effect.succeed(onWritten(a))
      }
    })
    return breaker.state === "closed"
      ? run
      : Effect.flatMap(usable, (ok) => (ok ? run : notWritten(affected, onFailed, circuitOpen())))
  }

  return {
    read,
    get,
    write,
    isPending,
    holdReads: (held) => {
      readsHeld = held
    },
    state: () => ({
      breaker: breaker.state,
      breakerOpened: breaker.opened,
      pendingInvalidations: flushPending ? Infinity : pending.size
    })
  }
})
