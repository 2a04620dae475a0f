/**
 * An in-process `DataSource` over a mutable Map, for tests and demos: the test changes the source of truth with
 * `set`/`remove`, makes keys fail with `fail`, and reads back how the cache used it (`loads`, `batches`). A batch
 * containing a failing key fails as a whole, as a real batch endpoint would; listing keys matches globs exactly as
 * Redis does.
 */
import { Effect, Layer, Option, Stream } from "effect"
import { DataSource, type DataSourceShape, LoadError } from "../../src/DataSource.ts"
import * as Glob from "../../src/Glob.ts"

/** A memory source and the knobs a test turns. */
export interface MemoryDataSource {
  /** The port implementation, to provide as `DataSource`. */
  readonly source: DataSourceShape
  /** Puts (or replaces) the value of `key` in the source of truth. */
  readonly set: (key: string, value: unknown) => void
  /** Removes `key` from the source of truth; later loads answer none. */
  readonly remove: (key: string) => void
  /** Makes loads of `key` fail with a `LoadError` (true) or succeed again (false). */
  readonly fail: (key: string, failing?: boolean) => void
  /** Calls of `load` so far. */
  readonly loads: () => number
  /** The keys of each `loadMany` call so far, in call order. */
  readonly batches: () => ReadonlyArray<ReadonlyArray<string>>
}

const failure = (key: string) => new LoadError({ key, message: `the source fails for ${key}` })

/** A memory source holding `entries`; each call is a new, independent source. */
export const make = (
  entries: Iterable<readonly [string, unknown]> | Readonly<Record<string, unknown>>
): MemoryDataSource => {
  const data = new Map<string, unknown>(
    Symbol.iterator in entries ? (entries as Iterable<readonly [string, unknown]>) : Object.entries(entries)
  )
  const failing = new Set<string>()
  const batches: Array<ReadonlyArray<string>> = []
  let loads = 0

  const source: DataSourceShape = {
    load: (key) =>
      Effect.suspend(() => {
        loads++
        if (failing.has(key)) return Effect.fail(failure(key))
        return Effect.succeed(data.has(key) ? Option.some(data.get(key)) : Option.none())
      }),
    loadMany: (keys) =>
      Effect.suspend(() => {
        batches.push([...keys])
        const bad = keys.find((key) => failing.has(key))
        if (bad !== undefined) return Effect.fail(failure(bad))
        const found = new Map<string, unknown>()
        for (const key of keys) if (data.has(key)) found.set(key, data.get(key))
        return Effect.succeed(found)
      }),
    keys: (pattern) =>
      Stream.suspend(() => Stream.fromIterable([...data.keys()].filter((key) => Glob.matches(pattern, key))))
  }

  return {
    source,
    set: (key, value) => void data.set(key, value),
    remove: (key) => void data.delete(key),
    fail: (key, fails = true) => void (fails ? failing.add(key) : failing.delete(key)),
    loads: () => loads,
    batches: () => batches
  }
}

/** A fresh memory source holding `entries`, as the `DataSource` service. */
export const layer = (
  entries: Iterable<readonly [string, unknown]> | Readonly<Record<string, unknown>>
): Layer.Layer<DataSource> => {
  // Snapshot once, so a one-shot iterator gives every build of the layer the same entries.
  const snapshot = [
    ...(Symbol.iterator in entries ? (entries as Iterable<readonly [string, unknown]>) : Object.entries(entries))
  ]
  return Layer.sync(DataSource, () => make(snapshot).source)
}
