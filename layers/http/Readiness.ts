/**
 * Readiness of an instance for `/readyz`: the port the REST API asks, and its two implementations. An instance is
 * ready once its startup warm-up has finished and while its store answers a ping in time; the answer always says
 * why it is not ready.
 */
import { Context, Duration, Effect, Layer } from "effect"
import { CacheStore } from "../../src/CacheStore.ts"

/** Whether the instance should receive traffic; `reason` says why not. */
export interface ReadinessStatus {
  readonly ready: boolean
  readonly reason?: string | undefined
}

/** What `/readyz` asks: false until startup warm-up finished and while the store is down. */
export class Readiness extends Context.Service<Readiness, { readonly check: Effect.Effect<ReadinessStatus> }>()(
  "embedded-cache/Readiness"
) {}

/** Always ready: for tests and for runs without a startup phase. */
export const layerAlwaysReady: Layer.Layer<Readiness> = Layer.succeed(
  Readiness,
  Readiness.of({ check: Effect.succeed({ ready: true }) })
)

/**
 * Ready while `startupDone` answers true, `caughtUp` answers true (a restart has caught up with its peers' events)
 * and the store answers a ping within `timeout` (default 1 s); otherwise not ready, with the reason.
 */
export const layerReadinessFromStore = (options: {
  readonly startupDone?: Effect.Effect<boolean> | undefined
  readonly caughtUp?: Effect.Effect<boolean> | undefined
  readonly timeout?: Duration.Input | undefined
}): Layer.Layer<Readiness, never, CacheStore> =>
  Layer.effect(
    Readiness,
    Effect.map(Effect.service(CacheStore), (store) => {
      const timeout = options.timeout ?? "1 second"
      const startupDone = options.startupDone ?? Effect.succeed(true)
      const caughtUp = options.caughtUp ?? Effect.succeed(true)
      const both = Effect.zip(startupDone, caughtUp)
      return Readiness.of({
        check: Effect.flatMap(both, ([done, current]): Effect.Effect<ReadinessStatus> => {
          if (!done) return Effect.succeed({ ready: false, reason: "startup warm-up has not finished" })
          if (!current) {
            return Effect.succeed({
              ready: false,
              reason: "catching up with the invalidations published while this instance was down"
            })
          }
          return store.ping.pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(`no answer within ${Duration.format(Duration.fromInputUnsafe(timeout))}`)
            }),
            Effect.match({
              onFailure: (error) => ({
                ready: false,
                reason: `the store is down: ${typeof error === "string" ? error : error.reason}`
              }),
              onSuccess: () => ({ ready: true })
            })
          )
        })
      })
    })
  )
