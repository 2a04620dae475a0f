/**
 * A `DataSource` over a JSON file holding one object, key → value: a sample source of truth for a single instance
 * (the first hour, demos, fixtures). The file is read once, when the layer is built; a file that is missing, is not
 * JSON or is not an object fails the build with a typed error naming the option (or the variable) that pointed at
 * it, rather than the first load. `keys(pattern)` lists the file's keys matching a Redis glob, for warming by
 * pattern. Edits to the file are seen after a restart.
 */
import { Config, Effect, Layer, Option, Schema, Stream } from "effect"
import * as fs from "node:fs"
import { DataSource, type DataSourceShape } from "../../src/DataSource.ts"
import * as Glob from "../../src/Glob.ts"

/** A file that cannot serve as the source, refused when the source is built rather than on its first load. */
export class InvalidSourceOptionsError extends Schema.TaggedError<InvalidSourceOptionsError>()(
  "InvalidSourceOptionsError",
  { option: Schema.String, message: Schema.String }
) {}

const invalidFile = (option: string, message: string) =>
  new InvalidSourceOptionsError({ option, message: `${option}: ${message}` })

/** The entries of the JSON object in `file`; `option` names what pointed at the file in the error. */
const read = (file: string, option: string): Effect.Effect<ReadonlyMap<string, unknown>, InvalidSourceOptionsError> =>
  Effect.gen(function* () {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (cause) =>
        invalidFile(option, `cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`)
    })
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (cause) =>
        invalidFile(option, `${file} is not JSON (${cause instanceof Error ? cause.message : String(cause)})`)
    })
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* invalidFile(option, `${file} must hold a JSON object of key → value`)
    }
    return new Map(Object.entries(json))
  })

/** Reads `file` and builds the source over its entries; `option` names the setting in errors (default `path`). */
export const make = (file: string, option = "path"): Effect.Effect<DataSourceShape, InvalidSourceOptionsError> =>
  Effect.map(read(file, option), (entries) => ({
    load: (key) => Effect.sync(() => (entries.has(key) ? Option.some(entries.get(key)) : Option.none())),
    loadMany: (keys) =>
      Effect.sync(() => {
        const found = new Map<string, unknown>()
        for (const key of keys) if (entries.has(key)) found.set(key, entries.get(key))
        return found
      }),
    keys: (pattern) => Stream.fromIterable([...entries.keys()].filter((key) => Glob.matches(pattern, key)))
  }))

/** The source over the JSON object in `file`, read when the layer is built. */
export const layer = (file: string): Layer.Layer<DataSource, InvalidSourceOptionsError> =>
  Layer.effect(DataSource, make(file))

/** The source's setting from the environment: `CACHE_SOURCE_FILE`, the path of the JSON file. */
export const FileSourceConfig = Config.NonEmptyString("CACHE_SOURCE_FILE")

/** The source configured from the environment (see `FileSourceConfig`); errors name `CACHE_SOURCE_FILE`. */
export const layerConfig: Layer.Layer<DataSource, Config.ConfigError | InvalidSourceOptionsError> = Layer.effect(
  DataSource,
  Effect.flatMap(FileSourceConfig, (file) => make(file, "CACHE_SOURCE_FILE"))
)
