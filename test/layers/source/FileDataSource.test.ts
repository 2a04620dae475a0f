/**
 * FileDataSource over real JSON files in a temp dir: what the file holds is what loads answer, keys list by glob
 * exactly as Redis matches, and a file that cannot serve is refused when the layer is built, naming the option or
 * the variable that pointed at it.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FileDataSource from "../../../layers/source/FileDataSource.ts"
import { DataSource } from "../../../src/DataSource.ts"
import * as TempDir from "../../utils/TempDir.ts"

/** Writes `content` to a fresh file in a temp dir that lives as long as the test's scope. */
const fileWith = (content: string) =>
  Effect.map(TempDir.make, (dir) => {
    const file = path.join(dir, "source.json")
    fs.writeFileSync(file, content)
    return file
  })

/** The source a layer builds, read from the context. */
const build = <E>(layer: Layer.Layer<DataSource, E>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, DataSource))

/** The error building the source over `file` fails with. */
const refused = (file: string) => Effect.flip(build(FileDataSource.layer(file)))

/** The source `layerConfig` builds from `env`. */
const withEnv = (env: Record<string, string>) =>
  build(FileDataSource.layerConfig).pipe(
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env))
  )

const users = { "user:1": { name: "ada" }, "user:2": { name: "grace" }, "order:1": [1, 2], flag: false }

describe("FileDataSource", () => {
  it.live("answers each key the file holds, and none for a key it does not", () =>
    Effect.gen(function* () {
      const source = yield* build(FileDataSource.layer(yield* fileWith(JSON.stringify(users))))
      assert.deepStrictEqual(yield* source.load("user:1"), Option.some({ name: "ada" }))
      assert.deepStrictEqual(yield* source.load("flag"), Option.some(false))
      assert.deepStrictEqual(yield* source.load("user:9"), Option.none())
      const many = yield* source.loadMany(["user:2", "user:9", "order:1"])
      assert.deepStrictEqual(
        [...many],
        [
          ["user:2", { name: "grace" }],
          ["order:1", [1, 2]]
        ]
      )
    })
  )

  it.live("lists the keys matching a Redis glob, for warming by pattern", () =>
    Effect.gen(function* () {
      const source = yield* build(FileDataSource.layer(yield* fileWith(JSON.stringify(users))))
      const keys = (pattern: string) => Stream.runCollect(source.keys!(pattern))
      assert.deepStrictEqual(yield* keys("user:*"), ["user:1", "user:2"])
      assert.deepStrictEqual(yield* keys("*:1"), ["user:1", "order:1"])
      assert.deepStrictEqual(yield* keys("user:[^1]"), ["user:2"])
      assert.deepStrictEqual(yield* keys("nothing*"), [])
    })
  )

  it.live("refuses a missing file, a file that is not JSON and JSON that is not an object, naming the option", () =>
    Effect.gen(function* () {
      const missing = yield* refused("/nonexistent/embedded-cache/users.json")
      assert.strictEqual(missing._tag, "InvalidSourceOptionsError")
      assert.strictEqual(missing.option, "path")
      assert.include(missing.message, "ENOENT")
      const notJson = yield* refused(yield* fileWith("{ user:1 }"))
      assert.include(notJson.message, "is not JSON")
      const array = yield* refused(yield* fileWith('[["user:1", 1]]'))
      assert.include(array.message, "must hold a JSON object")
      const scalar = yield* refused(yield* fileWith("null"))
      assert.include(scalar.message, "must hold a JSON object")
    })
  )

  it.live("layerConfig reads the file named by CACHE_SOURCE_FILE, and its errors name the variable", () =>
    Effect.gen(function* () {
      const source = yield* withEnv({ CACHE_SOURCE_FILE: yield* fileWith(JSON.stringify(users)) })
      assert.deepStrictEqual(yield* source.load("user:2"), Option.some({ name: "grace" }))
      const unset = yield* Effect.flip(withEnv({}))
      assert.strictEqual(unset._tag, "ConfigError")
      assert.include(String(unset), "CACHE_SOURCE_FILE")
      const missing = yield* Effect.flip(withEnv({ CACHE_SOURCE_FILE: "/nonexistent/users.json" }))
      assert.strictEqual(missing._tag, "InvalidSourceOptionsError")
      assert.include(missing.message, "CACHE_SOURCE_FILE")
    })
  )

  it.live("the shipped sample file is a valid source of a few users", () =>
    Effect.gen(function* () {
      const sample = path.resolve(import.meta.dirname, "../../../examples/data/users.json")
      const source = yield* build(FileDataSource.layer(sample))
      assert.isTrue(Option.isSome(yield* source.load("user:1")))
      assert.isAtLeast((yield* Stream.runCollect(source.keys!("user:*"))).length, 3)
    })
  )
})
