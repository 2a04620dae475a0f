/**
 * A file of keys to warm, as `CACHE_WARM_KEYS_FILE` and `embedded-cache warm --keys-file` take it: one key per line,
 * blank lines and `#` comments skipped. Read in one place, so the startup warm-up, the scheduled warm-up and the CLI
 * agree on the format and on the error.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"

/** The keys file could not be read. */
export class KeysFileError extends Schema.TaggedError<KeysFileError>()("KeysFileError", {
  file: Schema.String,
  /** Why, as the file system said it. */
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot read ${this.file}: ${this.reason}`
  }
}

/** The keys of a keys file's text. */
export const parse = (text: string): ReadonlyArray<string> =>
  text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"))

/** Reads and parses `file`. */
export const read = (file: string): Effect.Effect<ReadonlyArray<string>, KeysFileError> =>
  Effect.try({
    try: () => parse(fs.readFileSync(file, "utf8")),
    catch: (cause) => new KeysFileError({ file, reason: cause instanceof Error ? cause.message : String(cause) })
  })
