/**
 * The handlers of the REST contract (`CacheApi.ts`), over the `Cache` and `Stats` in context and the data source
 * given as `InstanceSource` (none by default: `?load=true` and `/warm` then answer 503 `no_data_source`). Every
 * store failure is a 503, every value or key the contract refuses a 400, a miss a 404 — decided per request from
 * the read's own outcome, never from counters other requests move too.
 *
 * String values: a `string` entry's stored text is always JSON, the same text `Cache.get`/`getOrLoad` write through a
 * Schema codec. `PUT {value}` stores the JSON of `value` as given (`"ada"` → `"ada"`, `{"a":1}` → `{"a":1}`), and
 * `GET` answers the decoded JSON when it is a string, else its JSON text (a stored text that is not JSON, written by
 * another tool, is answered as it is). Values loaded from the source (`?load=true`) are filled as their JSON
 * through `getOrLoad` and answered by the same rule. `/warm` accepts `"default"` and the configured source's name.
 */
import { Duration, Effect, Option, Result, Schema, SchemaIssue } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Cache, type DeleteOutcome, type WriteOutcome } from "../../effects/Cache.ts"
import * as Stats from "../../effects/Stats.ts"
import * as Warm from "../../effects/Warm.ts"
import { CacheValue, type DataType } from "../../src/CacheValue.ts"
import { DataSource, type DataSourceShape, InstanceSource } from "../../src/DataSource.ts"
import type { Target } from "../../src/InvalidationEvent.ts"
import * as Ttl from "../../src/Ttl.ts"
import {
  type AnyValue,
  BadRequest,
  CacheApi,
  CacheMiss,
  NotReady,
  type PutEntry,
  ServiceUnavailable,
  type WarmRequest
} from "./CacheApi.ts"
import { Readiness } from "./Readiness.ts"

/** What the cache handlers are configured with. */
export interface HandlerOptions {
  /** The configured data source's name, accepted by `/warm` besides `"default"` (e.g. `"http"`). */
  readonly sourceName?: string | undefined
}

const badRequest = (error: string, message: string) => new BadRequest({ error, message })
const unavailable = (error: string, message: string) => new ServiceUnavailable({ error, message })
const invalidKey = (error: { readonly message: string }) => badRequest("invalid_key", error.message)

/** The API's view of a stored string: the decoded JSON if it is a string, else the JSON text (or raw text). */
const stringView = (text: string): string => {
  if (text.length === 0 || text.charCodeAt(0) !== 34 /* " */) return text
  try {
    const parsed: unknown = JSON.parse(text)
    return typeof parsed === "string" ? parsed : text
  } catch {
    return text
  }
}

/** The API's view of a loaded value, by the same rule. */
const loadedView = (value: unknown): string | undefined => {
  if (typeof value === "string") return value
  try {
    return JSON.stringify(value)
  } catch {
    return undefined
  }
}

const valueOf = (entry: CacheValue): typeof AnyValue.Type =>
  entry.type === "string" ? stringView(entry.value) : entry.value

/** A string from the request, quoted and cut short, for an error message. */
const quote = (s: string): string => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s)

const decodeCacheValue = Schema.decodeUnknownResult(CacheValue)
const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** The first issue of a refused value, as `value.a: Expected string`. */
const firstIssue = (issue: SchemaIssue.Issue): string => {
  const first = formatIssues(issue).issues[0]
  if (first === undefined) return "the value does not fit the data type"
  const path = (first.path ?? []).map((p) => {
    const segment = String(typeof p === "object" && p !== null && "key" in p ? p.key : p)
    return segment.length > 60 ? `${segment.slice(0, 60)}…` : segment
  })
  return `${path.length === 0 ? "value" : path.join(".")}: ${first.message.split("\n")[0]}`
}

/**
 * The value of a PUT as the data type says, or why it does not fit: a string entry holds any JSON value as its JSON
 * text; the other types are decoded with the `CacheValue` schema and must not be empty.
 */
const toCacheValue = (dataType: DataType, value: unknown): CacheValue | BadRequest => {
  const wrong = (message: string) => badRequest("invalid_value", `${dataType}: ${message}`)
  if (dataType === "string") {
    let text: string | undefined
    try {
      text = JSON.stringify(value)
    } catch {
      return wrong("the value is nested too deeply to store")
    }
    return text === undefined ? wrong("the value is not JSON") : { type: "string", value: text }
  }
  const decoded = decodeCacheValue({ type: dataType, value })
  if (Result.isFailure(decoded)) return wrong(firstIssue(decoded.failure.issue))
  const entry = decoded.success
  const empty = entry.type === "hash" ? Object.keys(entry.value).length === 0 : entry.value.length === 0
  return empty
    ? wrong(entry.type === "hash" ? "a hash must have at least one field" : "the value must not be empty")
    : entry
}

/** A loaded key the source does not have. */
class SourceMiss {
  readonly _tag = "SourceMiss"
}

const storeDown = (operation: string, cause: { readonly reason: string }) =>
  unavailable("store_unavailable", `the cache store failed to ${operation} (${cause.reason}); try again`)

const written = (outcome: WriteOutcome, operation: string): Effect.Effect<void, ServiceUnavailable> =>
  outcome._tag === "Written" ? Effect.void : Effect.fail(storeDown(operation, outcome.error))

const removed = (outcome: DeleteOutcome, operation: string): Effect.Effect<number, ServiceUnavailable> =>
  outcome._tag === "Deleted" ? Effect.succeed(outcome.removed) : Effect.fail(storeDown(operation, outcome.error))

const loadOptions = { schema: Schema.Json as Schema.Codec<unknown, unknown> }

/** The GET handler: the read's own outcome decides 200, 404 and 503 (or, with `?load=true`, a load). */
const makeGetEntry = (cache: Cache["Service"], source: DataSourceShape | undefined) => {
  const ttlSeconds = (key: string) => Effect.map(cache.ttl(key), Ttl.toSeconds)

  /** `?load=true` on a miss: fills the key from the source and answers it with `hit: false`. */
  const load = Effect.fnUntraced(function* (key: string, from: DataSourceShape) {
    const loaded = yield* cache
      .getOrLoad(
        key,
        Effect.flatMap(from.load(key), (found) =>
          Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(new SourceMiss())
        ),
        loadOptions
      )
      .pipe(
        Effect.catchTags({
          SourceMiss: () => Effect.fail(new CacheMiss({ key, hit: false })),
          LoadError: (error) =>
            Effect.fail(unavailable("source_failed", `the data source failed to load the key: ${error.message}`)),
          InvalidKeyError: (error) => Effect.fail(invalidKey(error))
        })
      )
    const value = loadedView(loaded)
    if (value === undefined) {
      return yield* unavailable("source_failed", "the data source answered a value that is not JSON")
    }
    const ttl = yield* ttlSeconds(key).pipe(Effect.orElseSucceed(() => -1))
    return { key, value, ttl, data_type: "string" as const, hit: false }
  })

  return Effect.fnUntraced(
    function* (key: string, loadOnMiss: boolean) {
      const read = yield* cache.readEntry(key)
      // With ?load=true a store that cannot answer degrades to the source, like a miss (getOrLoad serves the
      // loaded value without the store); without it, it is a 503.
      if (read._tag !== "Found" && loadOnMiss) {
        if (source === undefined) {
          return yield* unavailable("no_data_source", "no data source is configured; ?load=true cannot load")
        }
        return yield* load(key, source)
      }
      switch (read._tag) {
        case "Found": {
          // An entry that expired (or a store that failed) since the read has no TTL left: 0, not "never".
          const remaining = yield* cache.ttl(key)
          const ttl = remaining === undefined ? 0 : Ttl.toSeconds(remaining)
          return { key, value: valueOf(read.value), ttl, data_type: read.value.type, hit: true }
        }
        case "Unavailable":
          return yield* unavailable("store_unavailable", "the cache store is unavailable; the entry could not be read")
        case "Missing":
          return yield* new CacheMiss({ key, hit: false })
      }
    },
    Effect.catchTag("InvalidKeyError", (error) => Effect.fail(invalidKey(error)))
  )
}

/** The `/warm` handler: warms through `source` when `payload.source` names it. */
const makeWarm = (cache: Cache["Service"], source: DataSourceShape | undefined, sourceNames: ReadonlySet<string>) => {
  const unknownSource = (name: string) =>
    badRequest("unknown_source", `unknown data source ${quote(name)}; use ${[...sourceNames].map(quote).join(" or ")}`)
  return Effect.fn("CacheApi.warm")(function* (payload: WarmRequest) {
    if (!sourceNames.has(payload.source)) return yield* unknownSource(payload.source)
    if (source === undefined) {
      return yield* unavailable("no_data_source", "no data source is configured; nothing to warm from")
    }
    const warmOptions = {
      ttl: payload.ttl === undefined ? undefined : Duration.seconds(payload.ttl),
      tags: payload.tags
    }
    const report = yield* (
      "keys" in payload
        ? Warm.warm(payload.keys, warmOptions)
        : Warm.warmByPattern(payload.pattern, warmOptions).pipe(
            Effect.catchTags({
              KeyListingUnsupportedError: (error) => Effect.fail(badRequest("unsupported", error.message)),
              LoadError: (error) =>
                Effect.fail(unavailable("source_failed", `listing the source's keys failed: ${error.message}`))
            })
          )
    ).pipe(Effect.provideService(DataSource, source), Effect.provideService(Cache, cache))
    return Warm.summary(report)
  })
}

/** The handlers of `/api/v1/cache`, over the `Cache`, and the `InstanceSource` for `?load=true` and `/warm`. */
export const layerCacheHandlers = (options: HandlerOptions = {}) =>
  HttpApiBuilder.group(
    CacheApi,
    "cache",
    Effect.fn("CacheApi.cacheHandlers")(function* (handlers) {
      const cache = yield* Cache
      const stats = yield* Stats.Stats
      const source = Option.getOrUndefined(yield* InstanceSource)
      const sourceNames = new Set(["default", ...(options.sourceName === undefined ? [] : [options.sourceName])])

      const ttlSeconds = (key: string) => Effect.map(cache.ttl(key), Ttl.toSeconds)
      const getEntry = makeGetEntry(cache, source)
      const warm = makeWarm(cache, source, sourceNames)

      const putEntry = Effect.fnUntraced(
        function* (key: string, payload: PutEntry) {
          const value = toCacheValue(payload.data_type ?? "string", payload.value)
          if (value instanceof BadRequest) return yield* value
          const outcome = yield* cache.write(key, value, {
            ttl: payload.ttl === undefined ? undefined : Duration.seconds(payload.ttl),
            tags: payload.tags
          })
          yield* written(outcome, "write the entry")
          // Without a ttl the cache's default may apply: answer what the entry got.
          const ttl = payload.ttl ?? (yield* ttlSeconds(key))
          return { key, status: "set" as const, ttl }
        },
        Effect.catchTag("InvalidKeyError", (error) => Effect.fail(invalidKey(error)))
      )

      const invalidate = Effect.fnUntraced(function* (payload: Target) {
        const count = yield* cache.invalidate(payload).pipe(
          Effect.catchTags({
            InvalidKeyError: (error) => Effect.fail(invalidKey(error)),
            InvalidPatternError: (error) => Effect.fail(badRequest("invalid_pattern", error.message))
          }),
          Effect.flatMap((outcome) => removed(outcome, "invalidate"))
        )
        return { keys_invalidated: count, status: "success" as const }
      })

      return (
        handlers
          .handle("stats", () => stats.snapshot)
          .handle("getEntry", ({ params, query }) => getEntry(params.key, query.load === "true"))
          // A client that hangs up must not cut a write between the store and the publish to peers.
          .handle("putEntry", ({ params, payload }) => putEntry(params.key, payload), { uninterruptible: true })
          .handle(
            "deleteEntry",
            ({ params }) =>
              cache.delete(params.key).pipe(
                Effect.flatMap((outcome) => removed(outcome, "delete the entry")),
                Effect.as({ key: params.key, status: "deleted" as const }),
                Effect.catchTag("InvalidKeyError", (error) => Effect.fail(invalidKey(error)))
              ),
            { uninterruptible: true }
          )
          .handle(
            "invalidate",
            ({ payload }) =>
              Effect.map(invalidate(payload), (result) => {
                switch (payload.invalidation_type) {
                  case "pattern":
                    return { pattern: payload.pattern, ...result }
                  case "tag":
                    return { tags: payload.tags, ...result }
                  case "key":
                    return { key: payload.key, ...result }
                }
              }),
            { uninterruptible: true }
          )
          .handle("warm", ({ payload }) => warm(payload))
      )
    })
  )

/** The handlers of `/healthz`, `/readyz` and `/metrics`. */
export const layerSystemHandlers = HttpApiBuilder.group(
  CacheApi,
  "system",
  Effect.fn("CacheApi.systemHandlers")(function* (handlers) {
    const readiness = yield* Readiness
    const stats = yield* Stats.Stats
    return handlers
      .handle("healthz", () => Effect.succeed({ status: "ok" as const }))
      .handle("readyz", () =>
        Effect.flatMap(readiness.check, (status) =>
          status.ready
            ? Effect.succeed({ status: "ready" as const })
            : Effect.fail(new NotReady({ status: "not_ready", reason: status.reason ?? "not ready" }))
        )
      )
      .handle("metrics", () => stats.prometheusText)
  })
)
