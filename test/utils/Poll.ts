/**
 * Waiting for an observable state in tests instead of sleeping: a check is re-run at a short interval until it holds
 * or a deadline passes. A missed deadline is a test failure naming what was awaited.
 */
import { Effect, Schedule } from "effect"

/** Re-runs `check` every `intervalMs` (default 5) until it returns true; dies if that takes longer than `timeoutMs`. */
export const until = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  options: { readonly timeoutMs: number; readonly what: string; readonly intervalMs?: number }
): Effect.Effect<void, E, R> =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(`${options.intervalMs ?? 5} millis`), until: (ok) => ok }),
    Effect.timeoutOrElse({
      duration: options.timeoutMs,
      orElse: () => Effect.die(new Error(`timed out after ${options.timeoutMs} ms waiting until ${options.what}`))
    }),
    Effect.asVoid
  )
