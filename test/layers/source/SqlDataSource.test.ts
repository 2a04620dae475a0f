/**
 * SqlDataSource against the real PostgreSQL on 127.0.0.1:5432 (`CACHE_TEST_PG_URL` overrides it), in a table named
 * for this run, dropped when the file's layer closes. An unreachable server fails every test: none is skipped.
 */
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Option, Redacted, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as SqlDataSource from "../../../layers/source/SqlDataSource.ts"
import { DataSource } from "../../../src/DataSource.ts"
import * as Glob from "../../../src/Glob.ts"

const url = process.env["CACHE_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
const table = `sql_source_${process.pid}_${Date.now()}`

/** Keys chosen to trip a naive translation: LIKE wildcards, the escape character, quotes, SQL, backslashes. */
const hostileKeys = [
  "a_b",
  "axb",
  "a%b",
  "a!b",
  "ab",
  "100%",
  "1000",
  "100x",
  "it's",
  `'; drop table ${table}; --`,
  "back\\slash",
  "backxslash",
  "[x]",
  "x",
  "line\nbreak"
]

const Pg = PgClient.layer({ url: Redacted.make(url) })

/** The table, created with its rows before the tests and dropped after them. */
const TableLayer = Layer.effectDiscard(
  Effect.acquireRelease(
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE ${sql(table)} (key text PRIMARY KEY, value jsonb, body text)`
      yield* sql`INSERT INTO ${sql(table)} (key, value, body) VALUES
        ('user:1', '{"id":1,"name":"Ada"}', 'plain text'),
        ('nulls', NULL, NULL)`
      yield* sql`INSERT INTO ${sql(table)} (key, value, body)
        SELECT 'bulk:' || n, jsonb_build_object('n', n), n::text FROM generate_series(1, 1000) n`
      for (const key of hostileKeys) {
        yield* sql`INSERT INTO ${sql(table)} (key, value, body) VALUES (${key}, ${JSON.stringify(key)}::jsonb, ${key})`
      }
    }),
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`DROP TABLE IF EXISTS ${sql(table)}`
      }).pipe(Effect.orDie)
  )
).pipe(Layer.provideMerge(Pg))

const tableExists = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly name: string | null }>`SELECT to_regclass(${table})::text AS name`
  return rows[0]?.name === table
})

/** A sorted copy, for comparing sets of keys. */
// oxlint-disable-next-line unicorn/no-array-sort -- sorts a fresh copy; the ES2022 lib has no toSorted
const sorted = (keys: Iterable<string>): Array<string> => Array.from(keys).sort()

const keysOf = (source: Context.Service.Shape<typeof DataSource>, pattern: string) =>
  Stream.runCollect(source.keys!(pattern)).pipe(Effect.map((keys) => sorted(keys)))

const allKeys = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly key: string }>`SELECT key FROM ${sql(table)}`
  return rows.map((row) => row.key)
})

layer(TableLayer, { timeout: "60 seconds" })("SqlDataSource against PostgreSQL", (it) => {
  describe("load", () => {
    it.effect("answers a jsonb column's JSON value and a text column's string", () =>
      Effect.gen(function* () {
        const json = yield* SqlDataSource.make({ table })
        const text = yield* SqlDataSource.make({ table: `public.${table}`, valueColumn: "body" })
        assert.deepStrictEqual(yield* json.load("user:1"), Option.some({ id: 1, name: "Ada" }))
        assert.deepStrictEqual(yield* text.load("user:1"), Option.some("plain text"))
      })
    )

    it.effect("answers none for a key without a row, and some(null) for a row whose value is NULL", () =>
      Effect.gen(function* () {
        const source = yield* SqlDataSource.make({ table })
        assert.deepStrictEqual(yield* source.load("user:404"), Option.none())
        assert.deepStrictEqual(yield* source.load("nulls"), Option.some(null))
      })
    )

    it.effect("binds hostile keys as values, so each finds exactly its own row", () =>
      Effect.gen(function* () {
        const source = yield* SqlDataSource.make({ table, valueColumn: "body" })
        for (const key of hostileKeys) assert.deepStrictEqual(yield* source.load(key), Option.some(key))
        assert.deepStrictEqual(yield* source.load("a?b"), Option.none())
        assert.deepStrictEqual(yield* source.load("' OR '1'='1"), Option.none())
        assert.isTrue(yield* tableExists)
      })
    )
  })

  describe("loadMany", () => {
    it.effect("answers the found keys of 1,000 present and 200 absent keys, with duplicates collapsed", () =>
      Effect.gen(function* () {
        const source = yield* SqlDataSource.make({ table })
        const present = Array.from({ length: 1000 }, (_, i) => `bulk:${i + 1}`)
        const absent = Array.from({ length: 200 }, (_, i) => `bulk:${i + 5000}`)
        const found = yield* source.loadMany([...present, ...absent, "bulk:1", "bulk:1"])
        assert.strictEqual(found.size, 1000)
        for (let i = 1; i <= 1000; i++) assert.deepStrictEqual(found.get(`bulk:${i}`), { n: i })
        assert.isFalse(found.has("bulk:5000"))
      })
    )

    it.effect("answers hostile keys as values and an empty request without a query", () =>
      Effect.gen(function* () {
        const source = yield* SqlDataSource.make({ table, valueColumn: "body" })
        const found = yield* source.loadMany([...hostileKeys, "a?b"])
        assert.deepStrictEqual(sorted(found.keys()), sorted(hostileKeys))
        for (const [key, value] of found) assert.strictEqual(value, key)
        assert.strictEqual((yield* source.loadMany([])).size, 0)
      })
    )
  })

  describe("keys", () => {
    const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      ["a_b", ["a_b"]],
      ["100%", ["100%"]],
      ["a%b", ["a%b"]],
      ["a!b", ["a!b"]],
      ["a?b", ["a!b", "a%b", "a_b", "axb"]],
      ["100*", ["100%", "1000", "100x"]],
      ["it's", ["it's"]],
      [`'; drop table ${table}; --`, [`'; drop table ${table}; --`]],
      ["'*", [`'; drop table ${table}; --`]],
      ["back\\\\slash", ["back\\slash"]],
      ["back?slash", ["back\\slash", "backxslash"]],
      ["a[_x]b", ["a_b", "axb"]],
      ["a[^_x]b", ["a!b", "a%b"]],
      ["\\[x\\]", ["[x]"]],
      ["[\\[]x*", ["[x]"]],
      ["line?break", ["line\nbreak"]],
      ["a[]b", []],
      ["bulk:100?", ["bulk:1000"]],
      ["bulk:[1-2]", ["bulk:1", "bulk:2"]],
      ["bulk:[9-8]", ["bulk:8", "bulk:9"]],
      ["user:*", ["user:1"]]
    ]

    for (const [pattern, expected] of cases) {
      it.effect(`streams exactly the keys the glob ${JSON.stringify(pattern)} matches`, () =>
        Effect.gen(function* () {
          const source = yield* SqlDataSource.make({ table })
          assert.deepStrictEqual(yield* keysOf(source, pattern), sorted(expected))
          assert.isTrue(yield* tableExists)
        })
      )
    }

    it.effect("streams every key for *", () =>
      Effect.gen(function* () {
        const source = yield* SqlDataSource.make({ table })
        assert.strictEqual((yield* keysOf(source, "*")).length, 2 + 1000 + hostileKeys.length)
      })
    )

    it.effect("narrows in SQL to the same keys the glob matches in process (no over- or under-match)", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const keys = yield* allKeys
        for (const [pattern] of cases) {
          const filter = SqlDataSource.keyFilter(pattern)
          const rows =
            filter._tag === "Like"
              ? yield* sql<{
                  readonly key: string
                }>`SELECT key FROM ${sql(table)} WHERE key LIKE ${filter.pattern} ESCAPE '!'`
              : filter._tag === "Regex"
                ? yield* sql<{ readonly key: string }>`SELECT key FROM ${sql(table)} WHERE key ~ ${filter.pattern}`
                : filter._tag === "All"
                  ? keys.map((key) => ({ key }))
                  : []
          const expected = sorted(keys.filter((key) => Glob.matches(pattern, key)))
          assert.deepStrictEqual(sorted(rows.map((row) => row.key)), expected, `pattern ${JSON.stringify(pattern)}`)
        }
      })
    )
  })

  describe("options", () => {
    it.effect("refuses a table or column that is not a plain identifier, before any query", () =>
      Effect.gen(function* () {
        const refused = [
          [{ table: `${table}; drop table x` }, "table"],
          [{ table: `"${table}"` }, "table"],
          [{ table: "a.b.c" }, "table"],
          [{ table: "1items" }, "table"],
          [{ table: "" }, "table"],
          [{ table: "x".repeat(64) }, "table"],
          [{ table, keyColumn: "key--" }, "keyColumn"],
          [{ table, valueColumn: "value, body" }, "valueColumn"]
        ] as const
        for (const [options, option] of refused) {
          const error = yield* Effect.flip(SqlDataSource.make(options))
          assert.strictEqual(error._tag, "InvalidSourceOptionsError")
          assert.strictEqual(error.option, option)
        }
        assert.isTrue(yield* tableExists)
      })
    )

    it.effect("builds from the environment with layerConfig", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(
          SqlDataSource.layerConfig.pipe(
            Layer.provide(
              ConfigProvider.layer(
                ConfigProvider.fromUnknown({
                  CACHE_SOURCE_SQL_URL: url,
                  CACHE_SOURCE_SQL_TABLE: table,
                  CACHE_SOURCE_SQL_VALUE_COLUMN: "body"
                })
              )
            )
          )
        )
        const source = Context.get(context, DataSource)
        assert.deepStrictEqual(yield* source.load("user:1"), Option.some("plain text"))
      })
    )
  })
})

describe("SqlDataSource without a server", () => {
  it.effect("fails load, loadMany and keys with a LoadError naming the key when PostgreSQL is down", () =>
    Effect.gen(function* () {
      const source = yield* SqlDataSource.make({ table: "items" })
      const load = yield* Effect.flip(source.load("k1"))
      assert.strictEqual(load._tag, "LoadError")
      assert.strictEqual(load.key, "k1")
      assert.match(load.message, /connect/i)
      const many = yield* Effect.flip(source.loadMany(["a", "b"]))
      assert.strictEqual(many.key, "a (and 1 more)")
      const keys = yield* Effect.flip(Stream.runCollect(source.keys!("user:*")))
      assert.strictEqual(keys.key, "user:*")
    }).pipe(
      Effect.provide(
        PgClient.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:1/test"), connectTimeout: "2 seconds" })
      )
    )
  )
})
