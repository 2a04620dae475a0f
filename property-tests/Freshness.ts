/**
 * The freshness properties, run against any store: for any generated interleaving on one key of callers
 * (`getOrLoad`, `fetch`), loads finishing or failing, the source changing (a write, a delete, a tag invalidation,
 * the key vanishing from the source), plain reads, refreshing warm-ups, and time passing (past the soft timeout, the
 * eager-refresh fraction, the TTL — and so the hard timeout of a slow load), with fail-safe, timeouts, eager refresh
 * and negative caching all on:
 * - no caller that started after a change gets a value (fresh or stale) or a "not found" older than the change;
 * - no plain read answers such a value, and the store never holds one (nor a negative entry older than the change).
 *
 * Time is a `TestClock` the cache and its callers share; the harness waits on the live clock.
 */
import { Deferred, Effect, Option, References, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as Cache from "../effects/Cache.ts"
import * as Freshness from "../effects/internal/Freshness.ts"
import { CacheStore } from "../src/CacheStore.ts"
import * as DataSource from "../src/DataSource.ts"
import * as Poll from "../test/utils/Poll.ts"

/** One step of an interleaving. `Finish` picks among the loads still waiting, by index modulo their count. */
export type Step =
  | { readonly _tag: "Start"; readonly via: "getOrLoad" | "fetch" }
  | { readonly _tag: "Finish"; readonly pick: number; readonly fails: boolean }
  | { readonly _tag: "Change"; readonly how: "write" | "delete" | "tag" | "vanish" }
  | { readonly _tag: "Read" }
  | { readonly _tag: "Refresh" }
  | { readonly _tag: "Pass"; readonly past: "soft" | "eager" | "ttl" }

/** Interleavings biased towards overlapping loads, failures and expiry. */
export const steps: fc.Arbitrary<ReadonlyArray<Step>> = fc.array(
  fc.oneof(
    { arbitrary: fc.constantFrom("getOrLoad", "fetch").map((via): Step => ({ _tag: "Start", via })), weight: 5 },
    {
      arbitrary: fc.record({ pick: fc.nat(7), fails: fc.boolean() }).map((f): Step => ({ _tag: "Finish", ...f })),
      weight: 5
    },
    {
      arbitrary: fc.constantFrom("write", "delete", "tag", "vanish").map((how): Step => ({ _tag: "Change", how })),
      weight: 3
    },
    { arbitrary: fc.constant<Step>({ _tag: "Read" }), weight: 1 },
    { arbitrary: fc.constant<Step>({ _tag: "Refresh" }), weight: 1 },
    { arbitrary: fc.constantFrom("soft", "eager", "ttl").map((past): Step => ({ _tag: "Pass", past })), weight: 3 }
  ),
  { minLength: 1, maxLength: 28 }
)

/**
 * The interleaving where a stale copy would outlive an invalidation: a fill, expiry, a reload that keeps the copy, a
 * delete while it runs, the reload failing (fail-safe answers the copy), and a caller after the delete.
 */
export const staleCopyRace: ReadonlyArray<Step> = [
  { _tag: "Start", via: "getOrLoad" },
  { _tag: "Finish", pick: 0, fails: false },
  { _tag: "Pass", past: "ttl" },
  { _tag: "Start", via: "getOrLoad" },
  { _tag: "Change", how: "delete" },
  { _tag: "Finish", pick: 0, fails: true },
  { _tag: "Start", via: "fetch" }
]

const Versioned = Schema.Struct({ version: Schema.Number })
type Versioned = typeof Versioned.Type

/** Fail-safe, both timeouts, eager refresh and negative caching, all on. */
export const allOn: Cache.CacheOptions = {
  failSafe: { maxStale: "1 minute", throttle: "5 seconds" },
  sourceTimeouts: { soft: "100 millis", hard: "8 seconds" },
  eagerRefresh: 0.5,
  negativeTtl: "5 seconds"
}
const ttl = "10 seconds"
const tag = "prop"
const passes = { soft: "150 millis", eager: "6 seconds", ttl: "11 seconds" } as const

/** What every finished load moves: a fill (a value, a negative entry or a kept stale copy), a fenced fill, a failure. */
const settled = (s: Cache.CacheStats) => s.fills + s.fencedFills + s.loadFailures

interface PendingLoad {
  readonly gate: Deferred.Deferred<boolean>
  finished: boolean
}

const waitMs = 5000
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) => TestClock.withLive(effect)

/**
 * Replays `interleaving` on a fresh cache over the `CacheStore` in context, failing on the first violation.
 * `key` must be unused in the store.
 */
export const replay = (key: string, interleaving: ReadonlyArray<Step>, options: Cache.CacheOptions = allOn) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cache = yield* Cache.make(options)
      const store = yield* CacheStore
      let source = 0
      /** The source version at the latest change: nothing older may be stored or answered from now on. */
      let floor = 0
      /** The versions at which the source did not have the key. */
      const absent = new Set<number>()
      const loads: Array<PendingLoad> = []
      const callers: Array<{ done: boolean }> = []
      const failures: Array<string> = []

      /** Whether the source lacked the key at some version since `since`: only then may "not found" be answered. */
      const absentSince = (since: number) => {
        for (let v = since; v <= source; v++) if (absent.has(v)) return true
        return false
      }

      /** One load of the source: waits at its gate, then answers the version it started at, none, or fails. */
      const loadOne = Effect.suspend(() => {
        const snapshot = source
        const pending: PendingLoad = { gate: Deferred.makeUnsafe<boolean>(), finished: false }
        loads.push(pending)
        // A load abandoned at the hard timeout is finished: no step may wait for it.
        const waited = Effect.onInterrupt(Deferred.await(pending.gate), () =>
          Effect.sync(() => (pending.finished = true))
        )
        return Effect.flatMap(waited, (fails) =>
          fails
            ? Effect.fail(new DataSource.LoadError({ key, message: "the source failed" }))
            : Effect.succeed(absent.has(snapshot) ? Option.none<Versioned>() : Option.some({ version: snapshot }))
        )
      })
      const loadValue = Effect.flatMap(loadOne, (found) =>
        Option.isSome(found)
          ? Effect.succeed(found.value)
          : Effect.fail(new DataSource.LoadError({ key, message: "absent" }))
      )
      const batchSource = DataSource.make({ load: () => loadOne })
      const loadOptions: Cache.LoadOptions<Versioned> = { schema: Versioned, ttl, tags: [tag] }

      const checkValue = (what: string, since: number, value: Versioned) => {
        if (value.version < since) failures.push(`${what} got version ${value.version} after floor ${since}`)
      }

      const checkStore = Effect.gen(function* () {
        const text = yield* store.get(key)
        if (text === undefined) return
        const stamped = Freshness.parse(text)
        if (stamped?.stamp.kind === "negative") {
          if (!absentSince(floor)) failures.push(`store holds a negative entry though the key exists since ${floor}`)
          return
        }
        checkValue("the store", floor, JSON.parse(stamped?.json ?? text) as Versioned)
      })

      /** Forks `effect` and waits until it is done or started, led or joined a load. */
      const begin = <A, E>(effect: Effect.Effect<A, E>, check: (a: A, since: number) => void) =>
        Effect.gen(function* () {
          const since = floor
          const before = (yield* cache.stats).sharedLoads + loads.length
          const caller = { done: false }
          callers.push(caller)
          yield* effect.pipe(
            Effect.tap((a) => Effect.sync(() => check(a, since))),
            Effect.ensuring(Effect.sync(() => void (caller.done = true))),
            Effect.ignore,
            Effect.forkScoped
          )
          yield* live(
            Poll.until(
              Effect.map(cache.stats, (s) => caller.done || s.sharedLoads + loads.length > before),
              { timeoutMs: waitMs, what: "the caller answered, led or joined a load", intervalMs: 0 }
            )
          )
        })

      for (const step of interleaving) {
        switch (step._tag) {
          case "Start": {
            if (step.via === "getOrLoad") {
              yield* begin(cache.getOrLoad(key, loadValue, loadOptions), (value, since) =>
                checkValue("a getOrLoad caller", since, value)
              )
            } else {
              yield* begin(cache.fetch(key, loadOne, loadOptions), (fetched, since) => {
                if (fetched._tag === "Found") checkValue("a fetch caller", since, fetched.value)
                else if (!absentSince(since)) failures.push(`a fetch caller got "not found" after floor ${since}`)
              })
            }
            break
          }
          case "Finish": {
            const waiting = loads.filter((l) => !l.finished)
            if (waiting.length === 0) break
            const chosen = waiting[step.pick % waiting.length]!
            const before = yield* cache.stats
            chosen.finished = true
            yield* Deferred.succeed(chosen.gate, step.fails)
            // Every finished load ends in a fill (a value, a negative entry or a kept stale copy), a fenced fill,
            // or a failure.
            yield* live(
              Poll.until(
                Effect.map(cache.stats, (s) => settled(s) > settled(before)),
                { timeoutMs: waitMs, what: "the finished load settled", intervalMs: 0 }
              )
            )
            break
          }
          case "Change":
            source++
            floor = source
            switch (step.how) {
              case "write":
                yield* cache.set(key, { version: source }, { schema: Versioned, ttl, tags: [tag] })
                break
              case "delete":
                yield* cache.delete(key)
                break
              case "tag":
                yield* cache.invalidate({ invalidation_type: "tag", tags: [tag] })
                break
              case "vanish":
                absent.add(source)
                yield* cache.delete(key)
            }
            break
          case "Read": {
            const since = floor
            const value = yield* cache.get(key, Versioned)
            if (Option.isSome(value)) checkValue("get", since, value.value)
            break
          }
          case "Refresh":
            yield* begin(
              Effect.provideService(cache.refreshMany([key], loadOptions), DataSource.DataSource, batchSource),
              (found, since) => {
                const value = found.get(key)
                if (value !== undefined) checkValue("a refreshing warm-up", since, value)
              }
            )
            break
          case "Pass":
            yield* TestClock.adjust(passes[step.past])
            break
        }
        yield* checkStore
        if (failures.length > 0) return failures
      }
      // Drain: finish every load (more may start as callers retry) and wait for every caller.
      yield* live(
        Poll.until(
          Effect.gen(function* () {
            for (const pending of loads) {
              if (!pending.finished) {
                pending.finished = true
                yield* Deferred.succeed(pending.gate, false)
              }
            }
            return callers.every((c) => c.done)
          }),
          { timeoutMs: waitMs, what: "every caller finished", intervalMs: 1 }
        )
      )
      yield* checkStore
      return failures
    })
  ).pipe(Effect.provide(TestClock.layer()), Effect.provideService(References.MinimumLogLevel, "Error"))
