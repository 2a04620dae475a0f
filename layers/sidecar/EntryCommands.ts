/**
 * `embedded-cache get`, `set` and `del`: one entry at a time, over the running sidecar's REST API (the local one,
 * or `--url`). `set`'s VALUE is parsed as JSON when it is JSON (`'{"a":1}'`, `42`, `'"quoted"'`) and taken as a
 * plain string otherwise. `get` of a key that is not cached exits with code 3, so scripts can tell a miss from a
 * failure (1).
 */
import { Effect, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { DataType } from "../../src/CacheValue.ts"
import * as ApiClient from "./ApiClient.ts"
import * as CliOutput from "./CliOutput.ts"

/** The exit code of `get` when the key is not cached. */
export const missExitCode = 3

/** A command-line VALUE: its JSON value when it parses as JSON, else the text itself. */
export const parseValue = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

const keyArgument = Argument.String("key").pipe(Argument.withDescription("the cache key"))

const get = Command.make(
  "get",
  {
    key: keyArgument,
    load: Flag.Boolean("load").pipe(
      Flag.withDescription("on a miss, load the key from the data source (GET ?load=true)"),
      Flag.withDefault(false)
    ),
    url: ApiClient.urlFlag,
    token: ApiClient.tokenFlag,
    json: CliOutput.jsonFlag
  },
  Effect.fnUntraced(function* ({ key, load, url, token, json }) {
    const path = `${ApiClient.entryPath(key)}${load ? "?load=true" : ""}`
    const answer = yield* ApiClient.request({ url, token }, "GET", path, undefined, [404])
    if (answer.status === 404) {
      if (CliOutput.wantsJson(json)) yield* CliOutput.print(true, answer.body, () => "")
      return yield* CliOutput.failWith(
        `${key} is not cached${load ? " and the data source does not have it" : ""}`,
        missExitCode
      )
    }
    const entry = answer.body as { readonly value?: unknown }
    yield* CliOutput.print(json, answer.body, () => CliOutput.showValue(entry.value))
  })
).pipe(Command.withDescription("Print a key's value (--json: the API's whole answer, with ttl and data_type)"))

const set = Command.make(
  "set",
  {
    key: keyArgument,
    value: Argument.String("value").pipe(
      Argument.withDescription("the value: JSON (an object, array, number, quoted string) or a plain string")
    ),
    ttl: Flag.Int("ttl").pipe(
      Flag.withDescription("time to live in seconds (default: the sidecar's CACHE_DEFAULT_TTL)"),
      Flag.optional
    ),
    tags: Flag.String("tags").pipe(Flag.withDescription("comma-separated tags of the entry"), Flag.optional),
    type: Flag.String("type").pipe(
      Flag.withDescription("data type: string (default), hash, set, sorted_set or list"),
      Flag.optional
    ),
    url: ApiClient.urlFlag,
    token: ApiClient.tokenFlag,
    json: CliOutput.jsonFlag
  },
  Effect.fnUntraced(function* ({ key, value, ttl, tags, type, url, token, json }) {
    if (Option.isSome(type) && !Schema.is(DataType)(type.value)) {
      return yield* CliOutput.failWith(
        `--type must be one of string, hash, set, sorted_set, list (not ${JSON.stringify(type.value)})`
      )
    }
    const body = {
      value: parseValue(value),
      ...(Option.isSome(ttl) ? { ttl: ttl.value } : {}),
      ...(Option.isSome(tags) ? { tags: CliOutput.splitList(tags.value) } : {}),
      ...(Option.isSome(type) ? { data_type: type.value } : {})
    }
    const answer = yield* ApiClient.call({ url, token }, "PUT", ApiClient.entryPath(key), body)
    const ttlSeconds = (answer as { readonly ttl?: number }).ttl
    yield* CliOutput.print(json, answer, () =>
      ttlSeconds === undefined || ttlSeconds < 0 ? `set ${key} (no expiry)` : `set ${key} (expires in ${ttlSeconds} s)`
    )
  })
).pipe(Command.withDescription("Write a key's value (and announce it to the other instances when synced)"))

const del = Command.make(
  "del",
  { key: keyArgument, url: ApiClient.urlFlag, token: ApiClient.tokenFlag, json: CliOutput.jsonFlag },
  Effect.fnUntraced(function* ({ key, url, token, json }) {
    const answer = yield* ApiClient.call({ url, token }, "DELETE", ApiClient.entryPath(key))
    yield* CliOutput.print(json, answer, () => `deleted ${key}`)
  })
).pipe(Command.withDescription("Delete a key (and announce it to the other instances when synced)"))

/** The `get`, `set` and `del` subcommands. */
export const commands = [get, set, del] as const
