/**
 * How the one-shot commands of `embedded-cache` report. With `--json`, or when stdout is not a terminal (a pipe,
 * a file, a script), each prints one JSON document as its last line on stdout — the contract scripts rely on; on a
 * terminal it prints the same result as readable text. Errors are one `error: …` line on stderr and an exit code
 * (1 a bad argument or a failed request, 2 a warm past its ratios, 3 `get` of a key that is not cached).
 */
import { Console, Data, Effect, Runtime } from "effect"
import { Flag } from "effect/cli"

/** A command that stops with `message` on stderr and the exit code `code` (already reported, not logged again). */
export class CliFailure extends Data.TaggedError("CliFailure")<{ readonly message: string; readonly code: number }> {
  override get [Runtime.errorExitCode](): number {
    return this.code
  }
  override readonly [Runtime.errorReported] = false
}

/** Prints `error: message` on stderr and fails with exit code `code`. */
export const failWith = (message: string, code = 1): Effect.Effect<never, CliFailure> =>
  Effect.andThen(Console.error(`error: ${message}`), Effect.fail(new CliFailure({ message, code })))

/** The `--json` flag every one-shot command takes. */
export const jsonFlag = Flag.Boolean("json").pipe(
  Flag.withDescription("print the result as one JSON line (the default when stdout is not a terminal)"),
  Flag.withDefault(false)
)

/** Whether to print JSON: asked for, or stdout is not a terminal. */
export const wantsJson = (json: boolean): boolean => json || process.stdout.isTTY !== true

/** Prints `result`: as one JSON line when `json` (see `wantsJson`), else as `human(result)`. */
export const print = <A>(json: boolean, result: A, human: (result: A) => string): Effect.Effect<void> =>
  Console.log(wantsJson(json) ? JSON.stringify(result) : human(result))

/** A comma-separated list, trimmed, without empty items. */
export const splitList = (text: string): ReadonlyArray<string> =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0)

/** `n` and a noun, plural unless `n` is 1. */
export const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`

/** A JSON object as aligned `name  value` lines (nested values as compact JSON). */
export const table = (record: Readonly<Record<string, unknown>>): string => {
  const width = Math.max(0, ...Object.keys(record).map((name) => name.length))
  return Object.entries(record)
    .map(([name, value]) => `${name.padEnd(width)}  ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join("\n")
}

/** A cached value for reading: a string as it is, any other value as indented JSON. */
export const showValue = (value: unknown): string =>
  typeof value === "string" ? value : JSON.stringify(value, undefined, 2)
