/**
 * The fenced-fill properties, written once and run against any store: for any generated interleaving of loads
 * starting, deletes, writes, reads and loads finishing on one key, (1) the store never holds a value loaded
 * before the latest delete or write, and no caller that started after one gets an older value; (2) K
 * concurrent `getOrLoad` calls of a key run the loader once and all get its value. Run with an L1 on the cache, the
 * same interleavings show that the L1 never answers a value older than the latest delete or write either.
 */
import { Deferred, Effect, Fiber, Option, Schema } from "effect"
import * as fc from "fast-check"
import * as Cache from "../effects/Cache.ts"
import { CacheStore } from "../src/CacheStore.ts"
import * as Poll from "../test/utils/Poll.ts"

/** One step of an interleaving. `Finish` picks among the loads still waiting, by index modulo their count. */
export type Step =
  | { readonly _tag: "Start" }
  | { readonly _tag: "Finish"; readonly pick: number }
  | { readonly _tag: "Delete" }
  | { readonly _tag: "Write" }
  | { readonly _tag: "Read" }

/** Interleavings biased towards overlapping loads. */
export const steps: fc.Arbitrary<ReadonlyArray<Step>> = fc.array(
  fc.oneof(
    { arbitrary: fc.constant<Step>({ _tag: "Start" }), weight: 4 },
    { arbitrary: fc.nat(7).map((pick): Step => ({ _tag: "Finish", pick })), weight: 3 },
    { arbitrary: fc.constant<Step>({ _tag: "Delete" }), weight: 2 },
    { arbitrary: fc.constant<Step>({ _tag: "Write" }), weight: 1 },
    { arbitrary: fc.constant<Step>({ _tag: "Read" }), weight: 1 }
  ),
  { minLength: 1, maxLength: 24 }
)

/** A stored value: the source version it was read at. */
const Versioned = Schema.Struct({ version: Schema.Number })
type Versioned = typeof Versioned.Type

interface PendingLoad {
  readonly gate: Deferred.Deferred<void>
  finished: boolean
}

const waitMs = 5000

/**
 * Replays `interleaving` on a fresh cache over the `CacheStore` in context, failing on the first violation.
 * `key` must be unused in the store.
 */
export const replay = (key: string, interleaving: ReadonlyArray<Step>, options: Cache.CacheOptions = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cache = yield* Cache.make(options)
      const store = yield* CacheStore
      let source = 0
      /** The source version at the latest delete or write: nothing older may be stored or returned from now on. */
      let floor = 0
      const loads: Array<PendingLoad> = []
      const callers: Array<{ done: boolean; readonly floor: number }> = []
      const failures: Array<string> = []

      const load = Effect.suspend(() => {
        const snapshot = source
        const pending: PendingLoad = { gate: Deferred.makeUnsafe<void>(), finished: false }
        loads.push(pending)
        return Effect.as(Deferred.await(pending.gate), { version: snapshot })
      })

      const checkStore = Effect.gen(function* () {
        const text = yield* store.get(key)
        if (text === undefined) return
        const stored = JSON.parse(text) as Versioned
        if (stored.version < floor) failures.push(`store holds version ${stored.version} after floor ${floor}`)
      })

      for (const step of interleaving) {
        switch (step._tag) {
          case "Start": {
            const before = (yield* cache.stats).sharedLoads + loads.length
            const caller = { done: false, floor }
            callers.push(caller)
            yield* cache.getOrLoad(key, load, { schema: Versioned }).pipe(
              Effect.tap((value) =>
                Effect.sync(() => {
                  if (value.version < caller.floor) {
                    failures.push(`a caller started at floor ${caller.floor} got version ${value.version}`)
                  }
                })
              ),
              Effect.ensuring(Effect.sync(() => void (caller.done = true))),
              Effect.forkScoped
            )
            // Wait until the caller has a hit, led a load, or joined one.
            yield* Poll.until(
              Effect.map(cache.stats, (s) => caller.done || s.sharedLoads + loads.length > before),
              { timeoutMs: waitMs, what: "the caller hit, led or joined a load", intervalMs: 0 }
            )
            break
          }
          case "Finish": {
            const waiting = loads.filter((l) => !l.finished)
            if (waiting.length === 0) break
            const chosen = waiting[step.pick % waiting.length]!
            const before = yield* cache.stats
            chosen.finished = true
            yield* Deferred.succeed(chosen.gate, undefined)
            // Every finished load ends in a fill or a fenced fill.
            yield* Poll.until(
              Effect.map(cache.stats, (s) => s.fills + s.fencedFills > before.fills + before.fencedFills),
              { timeoutMs: waitMs, what: "the finished load filled or was fenced", intervalMs: 0 }
            )
            break
          }
          case "Delete":
            source++
            floor = source
            yield* cache.delete(key)
            break
          case "Write":
            source++
            floor = source
            yield* cache.set(key, { version: source }, { schema: Versioned })
            break
          case "Read": {
            const value = yield* cache.get(key, Versioned)
            if (Option.isSome(value) && value.value.version < floor) {
              failures.push(`get answered version ${value.value.version} after floor ${floor}`)
            }
            break
          }
        }
        yield* checkStore
        if (failures.length > 0) return failures
      }
      // Drain: finish every load and wait for every caller.
      for (const pending of loads) yield* Deferred.succeed(pending.gate, undefined)
      yield* Poll.until(
        Effect.sync(() => callers.every((c) => c.done)),
        {
          timeoutMs: waitMs,
          what: "every caller finished",
          intervalMs: 0
        }
      )
      yield* checkStore
      return failures
    })
  )

/** K concurrent callers of one key: answers how many times the loader ran and what the callers got. */
export const concurrentCallers = (key: string, k: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const cache = yield* Cache.make()
      const gate = yield* Deferred.make<void>()
      let runs = 0
      const load = Effect.suspend(() => {
        runs++
        return Effect.as(Deferred.await(gate), `value of ${key}`)
      })
      const fibers = yield* Effect.forEach(Array.from({ length: k }), () =>
        Effect.forkScoped(cache.getOrLoad(key, load, { schema: Schema.String }))
      )
      yield* Poll.until(
        Effect.sync(() => runs > 0),
        { timeoutMs: waitMs, what: "the load started", intervalMs: 0 }
      )
      yield* Poll.until(
        Effect.map(cache.stats, (s) => s.sharedLoads + s.hits >= k - 1),
        {
          timeoutMs: waitMs,
          what: "every caller joined",
          intervalMs: 0
        }
      )
      yield* Deferred.succeed(gate, undefined)
      const values = yield* Effect.forEach(fibers, Fiber.join)
      return { runs, values }
    })
  )
