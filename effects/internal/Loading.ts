/**
 * The read side of the cache: loads on a miss, over the lookups of `Lookup`. `getOrLoad` (and `fetch`, its form for loads that may
 * find nothing) is cache-aside with one load per key per instance at a time (callers of a key in flight join it
 * through `SingleFlight` before asking the store) and a fenced fill (`FencedFill`); batches are `BatchLoading`'s. A
 * miss on a failing store (or an open breaker) answers from the loader. With an `L1`, `get`,
 * `getOrLoad` and `readEntry` answer its live entries without the store; a store hit (read with its TTL) and a
 * fill the store took enter it, unless an invalidation of the key came since the read or load began.
 *
 * Freshness (`Freshness`): a stamped entry past its TTL is reloaded through a refresh lease, and under fail-safe a
 * caller may get it as a stale copy — after the soft timeout while the load goes on, or when the load fails — only
 * while the store still holds that very copy (an invalidation removes it). A fresh hit past the eager-refresh
 * fraction starts one background reload; a negative entry answers "not found" to `fetch`.
 */
import { Cause, Deferred, Effect, Exit, Option } from "effect"
import type * as CacheKey from "../../src/CacheKey.ts"
import type { LeaseMode } from "../../src/CacheStore.ts"
import type { LoadTimeoutError } from "../../src/DataSource.ts"
import type { Fetched, LoadOptions } from "../Cache.ts"
import type { BatchDeps } from "./BatchLoading.ts"
import { type Codec, codecFor } from "./Codec.ts"
import type { FillPlan, StaleCopy } from "./FencedFill.ts"
import * as Freshness from "./Freshness.ts"
import * as Lookup from "./Lookup.ts"
import type { Outcomes } from "./Lookup.ts"
import { invalidKey } from "./Invalidation.ts"
import type { Entry, L1 } from "./L1.ts"
import { abandonedRead, type Flight, type Reading, type Shared, valueFor } from "./SingleFlight.ts"

/** What the read side needs from the cache: what batches need, and the L1 and freshness policy. */
export interface LoadingDeps extends BatchDeps {
  /** The near-cache, when the cache has one. */
  readonly l1: L1 | undefined
  readonly policy: Freshness.Policy
  /** Test-only: a loaded value enters the L1 before its fenced fill (a broken rule the property tests must catch). */
  readonly l1FillBeforeFence?: boolean | undefined
}

const noTags: ReadonlyArray<string> = []
const noneEffect = Effect.succeed(Option.none<never>())
/** Keys remembered after a failed eager refresh at most (then the memory is cleared). */
const maxBackoffKeys = 10_000

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

/** How `getOrLoad` and `fetch` answer. */
interface Answer<A, B> {
  readonly value: (value: A, stale: boolean) => B
  /** How "not found" is answered; undefined (`getOrLoad`): by a load of the caller's own. */
  readonly notFound: (() => B) | undefined
}

const asValue: Answer<any, any> = { value: (value) => value, notFound: undefined }
const notFound: Fetched<never> = { _tag: "NotFound" }
const asFetched: Answer<any, Fetched<any>> = {
  value: (value, stale) => ({ _tag: "Found", value, stale }),
  notFound: () => notFound
}

/** The read side over the deps. */
export const make = (deps: LoadingDeps) => {
  const { counters, fills, flights, guard, l1, now, policy, scope, store, writeOptions } = deps
  /** Keys whose eager refresh failed, and when the next may start: a dead source is not asked at every hit. */
  const refreshBackoff = new Map<string, number>()

  const { nearEntry, readEntry, storeLookup, ttl } = Lookup.make(deps)

  const hitSome = <A>(value: A) => {
    counters.hits++
    return Effect.succeed(Option.some(value))
  }
  const missNone = () => {
    counters.misses++
    return noneEffect
  }
  /** `get` answers fresh values only: a stale copy or a negative entry is a miss. */
  const getOutcomes: Outcomes<any, Option.Option<any>, never, never> = {
    hit: hitSome,
    miss: missNone,
    expired: missNone,
    throttled: missNone,
    negative: missNone
  }

  /** Whether a stale copy may still stand in for a failed or slow load (fail-safe on, within its bound). */
  const usable = <A>(copy: StaleCopy<A>): boolean => policy.maxStaleMs > 0 && now() < copy.stamp.staleUntil

  /** One `getOrLoad` or `fetch` call: what it looks up, how it loads and answers, and its store read. */
  class Call<A, B, E, R> implements Outcomes<A, B, E | LoadTimeoutError, R> {
    reading: Reading | undefined = undefined
    readonly key: string
    /** `A` for getOrLoad, `Option<A>` for fetch (`optional`). */
    readonly load: Effect.Effect<unknown, E, R>
    readonly optional: boolean
    readonly codec: Codec<A>
    readonly options: LoadOptions<A>
    readonly answer: Answer<A, B>
    constructor(
      key: string,
      load: Effect.Effect<unknown, E, R>,
      optional: boolean,
      codec: Codec<A>,
      options: LoadOptions<A>,
      answer: Answer<A, B>
    ) {
      this.key = key
      this.load = load
      this.optional = optional
      this.codec = codec
      this.options = options
      this.answer = answer
    }

    /** The load as one that may find nothing. */
    optionLoad(): Effect.Effect<Option.Option<A>, E, R> {
      return this.optional
        ? (this.load as Effect.Effect<Option.Option<A>, E, R>)
        : Effect.map(this.load as Effect.Effect<A, E, R>, Option.some)
    }

    hit(value: A, refreshAt: number) {
      this.settleReading(true, value, false)
      counters.hits++
      const answered = this.answer.value(value, false)
      return refreshAt !== Infinity && refreshAt <= now() ? refreshing(this, answered) : Effect.succeed(answered)
    }
    throttled(copy: StaleCopy<A>) {
      this.settleReading(true, copy.value, true)
      counters.hits++
      counters.staleAnswers++
      return Effect.succeed(this.answer.value(copy.value, true))
    }
    negative() {
      const answer = this.answer.notFound
      if (answer === undefined) return this.leadAfterRead("refresh", undefined)
      this.settleReading(false, undefined, false)
      counters.hits++
      counters.negativeHits++
      return Effect.succeed(answer())
    }
    expired(copy: StaleCopy<A>) {
      return this.leadAfterRead("refresh", usable(copy) ? copy : undefined)
    }
    readonly miss = () => this.leadAfterRead("fill", undefined)

    /**
     * The store read answered by itself (`value`, or "not found"): callers that attached to it get that answer (built
     * only when some did: a hit allocates nothing here).
     */
    settleReading(found: boolean, value: A | undefined, stale: boolean) {
      const reading = this.reading!
      reading.answered = true
      flights.endRead(this.key, reading)
      if (reading.flight !== undefined) {
        flights.end(this.key, reading.flight)
        const result = found ? Option.some<Shared>({ value, codec: this.codec, stale }) : Option.none()
        Deferred.doneUnsafe(reading.flight.result, Exit.succeed(result))
      }
    }

    /** The store read found nothing fresh: lead the load (with the callers attached to the read), or join one. */
    leadAfterRead(mode: LeaseMode, copy: StaleCopy<A> | undefined) {
      const reading = this.reading!
      reading.answered = true
      flights.endRead(this.key, reading)
      const raced = flights.get(this.key)
      if (raced !== undefined && raced !== reading.flight) return joinFlight(this, raced)
      counters.misses++
      return lead(this, mode, copy, reading.flight)
    }
  }

  /** Answers a flight's result to `call`: its own load instead when it has none and `call` cannot say "not found". */
  const settle = <A, B, E, R>(
    call: Call<A, B, E, R>,
    shared: Option.Option<Shared>
  ): Effect.Effect<B, E | LoadTimeoutError, R> => {
    if (shared === abandonedRead) return lead(call, "fill", undefined)
    if (Option.isNone(shared)) {
      const answer = call.answer.notFound
      return answer === undefined ? lead(call, "fill", undefined) : Effect.succeed(answer())
    }
    const value = valueFor(shared.value, call.codec)
    if (Exit.isFailure(value)) return lead(call, "fill", undefined)
    if (shared.value.stale) counters.staleAnswers++
    return Effect.succeed(call.answer.value(value.value, shared.value.stale))
  }

  /**
   * Waits for `flight`. With a stale copy on the flight and a soft timeout, a caller still waiting at the timeout
   * gets the copy — if the store still holds it and no invalidation fenced the flight — and the load goes on.
   */
  const join = <A, B, E, R>(call: Call<A, B, E, R>, flight: Flight): Effect.Effect<B, E | LoadTimeoutError, R> => {
    const awaited = Deferred.await(flight.result) as Effect.Effect<Option.Option<Shared>, E | LoadTimeoutError>
    const soft = policy.softTimeoutMs
    const copy = flight.copy
    if (copy === undefined || soft === undefined) return Effect.flatMap(awaited, (shared) => settle(call, shared))
    return Effect.flatMap(Effect.timeoutOption(awaited, soft), (done) => {
      if (Option.isSome(done)) return settle(call, done.value)
      return Effect.flatMap(guard.read(call.key, store.get(call.key), undefined), (current) => {
        const value =
          current === copy.text && flights.get(call.key) === flight && !guard.isPending(call.key)
            ? valueFor(copy.shared, call.codec)
            : undefined
        if (value === undefined || Exit.isFailure(value))
          return Effect.flatMap(awaited, (shared) => settle(call, shared))
        if (!flight.background) {
          flight.background = true
          counters.backgroundRefreshes++
        }
        counters.staleAnswers++
        return Effect.succeed(call.answer.value(value.value, true))
      })
    })
  }

  const joinFlight = <A, B, E, R>(call: Call<A, B, E, R>, flight: Flight) => {
    counters.misses++
    counters.sharedLoads++
    return join(call, flight)
  }

  /** The load of `call` through a fenced fill, completing `flight` with its outcome (run in the cache's scope). */
  const runLoad = <A, B, E, R>(
    call: Call<A, B, E, R>,
    mode: LeaseMode,
    copy: StaleCopy<A> | undefined,
    flight: Flight
  ): Effect.Effect<unknown, unknown, R> => {
    const { codec, key, options } = call
    const tags = options.tags ?? noTags
    const write = writeOptions(options.ttl, options.tags)
    const stamp = l1 === undefined ? 0 : l1.begin()
    const ttlMs = write.ttlMs
    // A fill enters the L1 only once the store took it (a fenced fill never does), unless the key was invalidated
    // since the load began or an invalidation of it is pending.
    const onFilled =
      l1 === undefined
        ? undefined
        : (text: string, value: A, sentAt: number) => {
            if (guard.isPending(key)) return
            const refreshAt =
              policy.eagerRefresh === undefined || ttlMs === undefined ? Infinity : sentAt + policy.eagerRefresh * ttlMs
            l1.admit(key, stamp, text, value, codec, tags, ttlMs ?? -1, sentAt, refreshAt)
          }
    const load = call.optionLoad()
    const loaded =
      l1 !== undefined && deps.l1FillBeforeFence === true
        ? Effect.map(load, (found) => {
            const text = Option.isSome(found) ? codec.encode(found.value) : undefined
            if (text !== undefined && Option.isSome(found) && Exit.isSuccess(text)) {
              l1.admit(key, l1.begin(), text.value, found.value, codec, tags, ttlMs ?? -1, now())
            }
            return found
          })
        : load
    const plan: FillPlan<A> = { mode, stale: copy, onFilled }
    return fills.loadAndFill(key, loaded, codec, write, plan).pipe(
      Effect.onExit((exit) => {
        flights.end(key, flight)
        return Deferred.done(flight.result, exit)
      })
    )
  }

  /** Starts the load of `call` in the cache's scope (so one caller's interruption spares the others) and waits. */
  const lead = <A, B, E, R>(
    call: Call<A, B, E, R>,
    mode: LeaseMode,
    copy: StaleCopy<A> | undefined,
    attached?: Flight | undefined
  ): Effect.Effect<B, E | LoadTimeoutError, R> => {
    const flight = attached ?? flights.start(call.key, call.options.tags ?? noTags)
    if (copy !== undefined)
      flight.copy = { text: copy.text, shared: { value: copy.value, codec: call.codec, stale: true } }
    return Effect.andThen(Effect.forkIn(Effect.ignore(runLoad(call, mode, copy, flight)), scope), join(call, flight))
  }

  /**
   * Eager refresh: answers `answered` at once and reloads the key in the background through a refresh lease (the
   * value stays readable), unless a load of it is in flight, an invalidation is pending, or its last refresh failed
   * less than a throttle ago.
   */
  const refreshing = <A, B, E, R>(call: Call<A, B, E, R>, answered: B): Effect.Effect<B, never, R> => {
    const { key } = call
    if (flights.get(key) !== undefined || flights.reading(key) !== undefined || guard.isPending(key)) {
      return Effect.succeed(answered)
    }
    const retryAt = refreshBackoff.get(key)
    if (retryAt !== undefined) {
      if (now() < retryAt) return Effect.succeed(answered)
      refreshBackoff.delete(key)
    }
    counters.backgroundRefreshes++
    const flight = flights.start(key, call.options.tags ?? noTags)
    flight.background = true
    const run = Effect.ignore(Effect.tapCause(runLoad(call, "refresh", undefined, flight), backedOff(key)))
    return Effect.as(Effect.forkIn(run, scope), answered)
  }

  /** A failed eager refresh: logged, and not retried for a throttle. */
  const backedOff = (key: string) => (cause: Cause.Cause<unknown>) => {
    if (refreshBackoff.size >= maxBackoffKeys) refreshBackoff.clear()
    refreshBackoff.set(key, now() + policy.throttleMs)
    return Effect.logWarning("eager refresh failed; the current value stays").pipe(
      Effect.annotateLogs({ key, cause: Cause.pretty(cause) })
    )
  }

  const obtain = <A, B, E, R>(
    call: Call<A, B, E, R>,
    entry: Entry | undefined
  ): Effect.Effect<B, E | LoadTimeoutError, R> => {
    const { codec, key } = call
    if (entry !== undefined) {
      const value = entry.codec === codec ? Exit.succeed(entry.value as A) : fromEntry(entry, codec)
      if (Exit.isSuccess(value)) {
        counters.hits++
        const answered = call.answer.value(value.value, false)
        return entry.refreshAt !== Infinity && entry.refreshAt <= now()
          ? refreshing(call, answered)
          : Effect.succeed(answered)
      }
    }
    // A key whose load is in flight here is joined before the store is asked: a pile-up on a cold key costs one
    // store read (the leader's), not one per caller. An invalidation unregisters the flight, so no caller arriving
    // after it joins a load that may be stale. A background refresh is not waited for: the value is still there.
    const inFlight = flights.get(key)
    if (inFlight !== undefined && !inFlight.background) return joinFlight(call, inFlight)
    const reading = flights.reading(key)
    if (reading !== undefined) {
      reading.flight ??= flights.start(key, call.options.tags ?? noTags)
      return joinFlight(call, reading.flight)
    }
    const mine = flights.beginRead(key)
    call.reading = mine
    return storeLookup(key, codec, call).pipe(Effect.onInterrupt(() => Effect.sync(() => abandoned(key, mine))))
  }

  const getOrLoad = <A, E, R>(
    key: string,
    load: Effect.Effect<A, E, R>,
    options: LoadOptions<A>
  ): Effect.Effect<A, E | CacheKey.InvalidKeyError | LoadTimeoutError, R> => {
    const invalid = invalidKey(key)
    if (invalid !== undefined) return Effect.fail(invalid)
    const codec = codecFor(options.schema)
    // Suspended: the lookup registers the caller's read (single flight) when the effect runs, not when it is built
    // (an effect built and never run, or run twice, must not leave or reuse a registration).
    return Effect.suspend(() => {
      const entry = nearEntry(key)
      if (entry !== undefined && entry.refreshAt === Infinity) {
        // The L1 hit of the schema that decoded it: the value as is, with no allocation.
        if (entry.codec === codec) return hitValue(entry.value as A)
        const value = fromEntry(entry, codec)
        if (Exit.isSuccess(value)) return hitValue(value.value)
      }
      return obtain(new Call<A, A, E, R>(key, load, false, codec, options, asValue), entry)
    })
  }

  const fetch = <A, E, R>(
    key: string,
    load: Effect.Effect<Option.Option<A>, E, R>,
    options: LoadOptions<A>
  ): Effect.Effect<Fetched<A>, E | CacheKey.InvalidKeyError | LoadTimeoutError, R> => {
    const invalid = invalidKey(key)
    if (invalid !== undefined) return Effect.fail(invalid)
    const codec = codecFor(options.schema)
    return Effect.suspend(() =>
      obtain(new Call<A, Fetched<A>, E, R>(key, load, true, codec, options, asFetched), nearEntry(key))
    )
  }

  const hitValue = <A>(value: A) => {
    counters.hits++
    return Effect.succeed(value)
  }

  /** The reader was interrupted before its read answered: the callers waiting for it go on without it. */
  const abandoned = (key: string, reading: Reading) => {
    if (reading.answered) return
    flights.endRead(key, reading)
    if (reading.flight !== undefined) {
      flights.end(key, reading.flight)
      Deferred.doneUnsafe(reading.flight.result, Exit.succeed(abandonedRead))
    }
  }

  /** The value at `key` decoded with `codec`; none on a miss, a stale or negative entry, or a failing store. */
  const get = <A>(key: string, codec: Codec<A>): Effect.Effect<Option.Option<A>> =>
    // Suspended: the L1 is read when the effect runs (an effect run again after a write must not answer the old hit).
    Effect.suspend(() => {
      const entry = nearEntry(key)
      if (entry !== undefined) {
        // The schema that decoded it: the value as is, with no allocation.
        if (entry.codec === codec) return hitSome(entry.value as A)
        const value = fromEntry(entry, codec)
        if (Exit.isSuccess(value)) return hitSome(value.value)
      }
      return storeLookup(key, codec, getOutcomes)
    })

  return {
    get,
    getOrLoad,
    fetch,
    readEntry,
    ttl
  }
}
