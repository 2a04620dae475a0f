/**
 * Tiny loaders for tests: a counting loader whose completion the test releases through a gate, so races between
 * a load and an invalidation are driven step by step instead of by timing.
 */
import { Deferred, Effect } from "effect"

/** A loader that counts its runs and waits at a gate the test opens. */
export interface GatedLoader<A> {
  /** The load effect to hand to the cache. */
  readonly load: Effect.Effect<A>
  /** Runs started so far. */
  readonly runs: () => number
  /** Resolves once a run has started (the first one). */
  readonly started: Deferred.Deferred<void>
  /** Lets every waiting run finish with the value given at creation. */
  readonly open: Effect.Effect<void>
}

/** A gated loader answering `value`. */
export const gated = <A>(value: A): Effect.Effect<GatedLoader<A>> =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const started = yield* Deferred.make<void>()
    let runs = 0
    return {
      load: Effect.suspend(() => {
        runs++
        return Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(gate)), Effect.as(value))
      }),
      runs: () => runs,
      started,
      open: Effect.asVoid(Deferred.succeed(gate, undefined))
    }
  })

/** A loader that counts its runs and answers at once. */
export const counting = <A>(value: A) => {
  let runs = 0
  return { load: Effect.sync(() => (runs++, value)), runs: () => runs }
}
