/**
 * A `DataSource` over a SQL table through Effect's `SqlClient` (PostgreSQL via `@effect/sql-pg`): one row per key,
 * `load` reads one row, `loadMany` all the keys in one `= ANY($1)` query, `keys(pattern)` streams the keys matching a
 * Redis glob. Table and column names are validated identifiers, always quoted; keys, patterns and values only ever
 * travel as bound parameters, so no user data is spliced into SQL. A json/jsonb value column answers its JSON value,
 * a text column its string; a row whose value is SQL NULL is a hit with the value `null`.
 */
import { PgClient } from "@effect/sql-pg"
import { Config, Effect, Layer, Option, Stream } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { DataSource, type DataSourceShape, InvalidSourceOptionsError, LoadError } from "../../src/DataSource.ts"
import * as Glob from "../../src/Glob.ts"

/** Where the values live. Names are quoted, so they match exactly as written (case-sensitive). */
export interface SqlDataSourceOptions {
  /** The table, optionally schema-qualified (`items`, `cache.items`). */
  readonly table: string
  /** The column holding the key (text). Default `key`. */
  readonly keyColumn?: string | undefined
  /** The column holding the value (json, jsonb or text). Default `value`. */
  readonly valueColumn?: string | undefined
}

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/

/** PostgreSQL silently truncates longer names (NAMEDATALEN - 1), which could address another object. */
const maxIdentifierLength = 63

const checkName = (option: string, name: string, maxParts: number): InvalidSourceOptionsError | undefined => {
  const parts = name.split(".")
  return parts.length <= maxParts && parts.every((part) => identifier.test(part) && part.length <= maxIdentifierLength)
    ? undefined
    : new InvalidSourceOptionsError({
        option,
        message:
          `${option} must be ${maxParts > 1 ? "an optionally schema-qualified" : "an"} identifier matching ` +
          `${identifier.source} (at most ${maxIdentifierLength} characters), got ${JSON.stringify(name)}`
      })
}

/**
 * How a glob narrows the keys in SQL: every key, none, a `LIKE … ESCAPE '!'` pattern (globs without character
 * classes), or an anchored PostgreSQL regular expression for the `~` operator (globs with `[...]` classes).
 */
export type KeyFilter =
  | { readonly _tag: "All" }
  | { readonly _tag: "Nothing" }
  | { readonly _tag: "Like"; readonly pattern: string }
  | { readonly _tag: "Regex"; readonly pattern: string }

/** The escape character of the `LIKE` patterns (`!` rather than `\`, so it reads the same under any string setting). */
export const likeEscape = "!"

const hex = (code: number, digits: number) => code.toString(16).padStart(digits, "0")

/** A character as a PostgreSQL ARE character-entry escape (`\uXXXX`), valid inside and outside brackets. */
const regexChar = (code: number) => `\\u${hex(code, 4)}`

const regexLiteral = (text: string) => {
  let out = ""
  for (const char of text) {
    const code = char.codePointAt(0)!
    out += /[A-Za-z0-9]/.test(char) ? char : code > 0xffff ? `\\U${hex(code, 8)}` : regexChar(code)
  }
  return out
}

/**
 * Translates a Redis glob into the SQL condition that selects the same keys. Every literal is escaped: `%`, `_`
 * and `!` as `!%`, `!_`, `!!` in `LIKE`, every non-alphanumeric character as `\uXXXX` in a regular expression.
 */
export const keyFilter = (pattern: string): KeyFilter => {
  const tokens = Glob.tokenize(pattern)
  if (tokens.length > 0 && tokens.every((token) => token._tag === "Star")) return { _tag: "All" }
  if (tokens.some((token) => token._tag === "Class" && !token.negated && token.ranges.length === 0)) {
    return { _tag: "Nothing" }
  }
  if (!tokens.some((token) => token._tag === "Class")) {
    let like = ""
    for (const token of tokens) {
      if (token._tag === "Star") like += "%"
      else if (token._tag === "One") like += "_"
      else if (token._tag === "Literal") {
        like +=
          token.char === "%" || token.char === "_" || token.char === likeEscape ? likeEscape + token.char : token.char
      }
    }
    return { _tag: "Like", pattern: like }
  }
  let regex = "^"
  let literal = ""
  for (const token of tokens) {
    if (token._tag === "Literal") {
      literal += token.char
      continue
    }
    regex += regexLiteral(literal)
    literal = ""
    if (token._tag === "Star") regex += ".*"
    else if (token._tag === "One") regex += "."
    else if (token._tag === "Class") {
      regex +=
        token.ranges.length === 0
          ? "."
          : `[${token.negated ? "^" : ""}${token.ranges
              .map(([lo, hi]) => (lo === hi ? regexChar(lo) : `${regexChar(lo)}-${regexChar(hi)}`))
              .join("")}]`
    }
  }
  return { _tag: "Regex", pattern: `${regex}${regexLiteral(literal)}$` }
}

const failure = (key: string, what: string) => (error: SqlError.SqlError) => {
  const detail = error.cause instanceof Error && error.cause.message !== "" ? `: ${error.cause.message}` : ""
  return new LoadError({ key, message: `${what} failed: ${error.message}${detail}`, cause: error })
}

interface Row {
  readonly k: unknown
  readonly v: unknown
}

/**
 * Builds the source over the `SqlClient` in context, refusing a table or column name that is not a plain
 * identifier. Names are used as written (the client's name transforms are bypassed).
 */
export const make: (
  options: SqlDataSourceOptions
) => Effect.Effect<DataSourceShape, InvalidSourceOptionsError, SqlClient.SqlClient> = Effect.fn("SqlDataSource.make")(
  function* (options: SqlDataSourceOptions) {
    const keyColumn = options.keyColumn ?? "key"
    const valueColumn = options.valueColumn ?? "value"
    const invalid =
      checkName("table", options.table, 2) ??
      checkName("keyColumn", keyColumn, 1) ??
      checkName("valueColumn", valueColumn, 1)
    if (invalid !== undefined) return yield* invalid

    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const table = sql(options.table)
    const k = sql(keyColumn)
    const v = sql(valueColumn)

    const load = (key: string): Effect.Effect<Option.Option<unknown>, LoadError> =>
      sql<Row>`SELECT ${v} AS v FROM ${table} WHERE ${k} = ${key} LIMIT 1`.pipe(
        Effect.map((rows) => (rows.length === 0 ? Option.none() : Option.some(rows[0]!.v))),
        Effect.mapError(failure(key, `load from ${options.table}`))
      )

    const loadMany = (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, unknown>, LoadError> => {
      const unique = [...new Set(keys)]
      if (unique.length === 0) return Effect.succeed(new Map())
      const label = unique.length === 1 ? unique[0]! : `${unique[0]!} (and ${unique.length - 1} more)`
      return sql<Row>`SELECT ${k} AS k, ${v} AS v FROM ${table} WHERE ${k} = ANY(${unique})`.pipe(
        Effect.map((rows) => {
          const found = new Map<string, unknown>()
          for (const row of rows) found.set(String(row.k), row.v)
          return found
        }),
        Effect.mapError(failure(label, `loadMany from ${options.table}`))
      )
    }

    const keys = (pattern: string): Stream.Stream<string, LoadError> => {
      const filter = keyFilter(pattern)
      if (filter._tag === "Nothing") return Stream.empty
      const where =
        filter._tag === "All"
          ? sql`${k} IS NOT NULL`
          : filter._tag === "Like"
            ? sql`${k} LIKE ${filter.pattern} ESCAPE '!'`
            : sql`${k} ~ ${filter.pattern}`
      return sql<Pick<Row, "k">>`SELECT ${k} AS k FROM ${table} WHERE ${where} ORDER BY ${k}`.stream.pipe(
        Stream.map((row) => String(row.k)),
        // SQL narrows by characters under the column's collation; the glob decides, as Redis would.
        Stream.filter((key) => Glob.matches(pattern, key)),
        Stream.mapError(failure(pattern, `keys of ${options.table}`))
      )
    }

    return { load, loadMany, keys }
  }
)

/** The source over the `SqlClient` provided to it (e.g. `PgClient.layer`). */
export const layer = (
  options: SqlDataSourceOptions
): Layer.Layer<DataSource, InvalidSourceOptionsError, SqlClient.SqlClient> => Layer.effect(DataSource, make(options))

/**
 * The source's settings from the environment: `CACHE_SOURCE_SQL_URL`, `CACHE_SOURCE_SQL_TABLE`,
 * `CACHE_SOURCE_SQL_KEY_COLUMN` (default `key`), `CACHE_SOURCE_SQL_VALUE_COLUMN` (default `value`).
 */
export const SqlSourceConfig = Config.all({
  url: Config.Redacted("CACHE_SOURCE_SQL_URL"),
  table: Config.NonEmptyString("CACHE_SOURCE_SQL_TABLE"),
  keyColumn: Config.NonEmptyString("CACHE_SOURCE_SQL_KEY_COLUMN").pipe(Config.withDefault("key")),
  valueColumn: Config.NonEmptyString("CACHE_SOURCE_SQL_VALUE_COLUMN").pipe(Config.withDefault("value"))
})

/**
 * The source configured from the environment (see `SqlSourceConfig`) over its own PostgreSQL pool, closed with the
 * layer. The pool connects lazily: an unreachable server fails loads with `LoadError`, not the layer.
 */
export const layerConfig: Layer.Layer<DataSource, Config.ConfigError | InvalidSourceOptionsError | SqlError.SqlError> =
  Layer.unwrap(
    Effect.map(SqlSourceConfig, (config) =>
      layer({ table: config.table, keyColumn: config.keyColumn, valueColumn: config.valueColumn }).pipe(
        Layer.provide(PgClient.layer({ url: config.url }))
      )
    )
  )
