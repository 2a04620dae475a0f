/**
 * The port of the source of truth a cache sits in front of. `load` answers `Option.none()` for a key the source
 * does not have (a miss, not an error); `loadMany` answers only the keys it found. Any Effect function can be
 * turned into a source with `make`.
 */
import { Context, Effect, Option, Schema, type Stream } from "effect"

/** A failed load from the source of truth. */
export class LoadError extends Schema.TaggedError<LoadError>()("LoadError", {
  key: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** A load abandoned at the cache's hard timeout (`CacheOptions.sourceTimeouts.hard`). */
export class LoadTimeoutError extends Schema.TaggedError<LoadTimeoutError>()("LoadTimeoutError", {
  key: Schema.String,
  timeoutMs: Schema.Finite
}) {
  override get message(): string {
    return `the load of ${JSON.stringify(this.key)} did not finish within ${this.timeoutMs} ms`
  }
}

/** Options a data source adapter cannot work with, refused when the source is built rather than on its first load. */
export class InvalidSourceOptionsError extends Schema.TaggedError<InvalidSourceOptionsError>()(
  "InvalidSourceOptionsError",
  { option: Schema.String, message: Schema.String }
) {}

/** The shape a data source provides. */
export interface DataSourceShape {
  /** The value of `key`, or none when the source has no such key. */
  readonly load: (key: string) => Effect.Effect<Option.Option<unknown>, LoadError>
  /** The values of those `keys` the source has; batched where the source can. */
  readonly loadMany: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, unknown>, LoadError>
  /** The keys matching a glob pattern, for sources that can list them (warming by pattern). */
  readonly keys?: ((pattern: string) => Stream.Stream<string, LoadError>) | undefined
}

/** The source of truth the cache is in front of. */
export class DataSource extends Context.Service<DataSource, DataSourceShape>()("embedded-cache/DataSource") {}

/**
 * The source an instance loads through when one is configured — for programs that also run without one, such as
 * the REST API (`?load=true`, `/warm` answer 503 `no_data_source` without it) and the sidecar's warm-ups. Its
 * default is `Option.none()`: no source; the sidecar provides `Option.some(source)` when `CACHE_SOURCE` names one.
 */
export const InstanceSource = Context.Reference<Option.Option<DataSourceShape>>("embedded-cache/InstanceSource", {
  defaultValue: () => Option.none()
})

/**
 * A data source from a load function; `loadMany` defaults to loading each key, `concurrency` at a time.
 */
export const make = (options: {
  readonly load: DataSourceShape["load"]
  readonly loadMany?: DataSourceShape["loadMany"] | undefined
  readonly keys?: DataSourceShape["keys"]
  readonly concurrency?: number | undefined
}): DataSourceShape => ({
  load: options.load,
  loadMany:
    options.loadMany ??
    ((keys) =>
      Effect.forEach(keys, (key) => Effect.map(options.load(key), (value) => [key, value] as const), {
        concurrency: options.concurrency ?? 16
      }).pipe(
        Effect.map((loaded) => {
          const found = new Map<string, unknown>()
          for (const [key, value] of loaded) if (Option.isSome(value)) found.set(key, value.value)
          return found
        })
      )),
  keys: options.keys
})
