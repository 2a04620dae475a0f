/**
 * A store that can be switched down: it wraps a real store and, while down, fails every call with
 * `Unavailable` without reaching it. It counts the calls that did reach the store, so tests can see a circuit
 * breaker stop the traffic.
 */
import { Context, Effect, Layer } from "effect"
import { CacheStore, CacheStoreError } from "../../src/CacheStore.ts"

/** The switch and the counter of a flaky store. */
export class FlakyControl extends Context.Service<
  FlakyControl,
  {
    readonly setDown: (down: boolean) => Effect.Effect<void>
    /** Calls that reached the wrapped store. */
    readonly calls: Effect.Effect<number>
    /** Calls refused while down. */
    readonly refused: Effect.Effect<number>
  }
>()("test/FlakyControl") {}

/** Wraps the `CacheStore` built by `inner`; provides the wrapped store and its control. */
export const layer = <E>(inner: Layer.Layer<CacheStore, E>): Layer.Layer<CacheStore | FlakyControl, E> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const store = yield* CacheStore
      let down = false
      let calls = 0
      let refused = 0
      const guard = <A>(operation: string, effect: Effect.Effect<A, CacheStoreError>) =>
        Effect.suspend(() => {
          if (!down) {
            calls++
            return effect
          }
          refused++
          return Effect.fail(
            new CacheStoreError({ operation, reason: "Unavailable", cause: new Error("store is down") })
          )
        })
      const wrapped: Record<string, unknown> = {}
      for (const [name, op] of Object.entries(store)) {
        wrapped[name] =
          typeof op === "function"
            ? (...args: Array<unknown>) =>
                guard(
                  name,
                  Effect.suspend(() =>
                    (op as (...a: Array<unknown>) => Effect.Effect<unknown, CacheStoreError>)(...args)
                  )
                )
            : guard(name, op as Effect.Effect<unknown, CacheStoreError>)
      }
      return Context.make(CacheStore, wrapped as unknown as CacheStore["Service"]).pipe(
        Context.add(FlakyControl, {
          setDown: (value) => Effect.sync(() => void (down = value)),
          calls: Effect.sync(() => calls),
          refused: Effect.sync(() => refused)
        })
      )
    })
  ).pipe(Layer.provide(inner))
