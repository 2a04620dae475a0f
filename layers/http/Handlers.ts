/**
 * The handlers of the REST contract (`CacheApi.ts`), over the `Cache` and `Stats` in context and the data source
 * given as `InstanceSource` (none by default: `?load=true` and `/warm` then answer 503 `no_data_source`). Every
 * store failure is a 503, every value or key the contract refuses a 400, a miss a 404 — decided per request from
 * the read's own outcome, never from counters other requests move too.
 *
 * Values cross the API as `EntryValue.ts` says: a `string` entry answers the JSON value it was PUT with (or loaded as,
 * with `?load=true`). `PUT {ttl: -1}` writes an entry that never expires. `/warm` accepts `"database"` (the seed's
 * word), `"default"` and the configured source's name, all meaning the configured source, and a `mode` (`missing`,
 * `refresh`). `?load=true` goes through `Cache.fetch`: "not found" is a 404 (possibly from a negative entry), a
 * fail-safe answer is marked `stale: true` with a `Warning` header, a load past the hard timeout a 503
 * `source_timeout`.
 */
import { Duration, Effect, Option, Schema } from "effect"
import { HttpEffect, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Cache, type DeleteOutcome, type ReadResult, type WriteOutcome } from "../../effects/Cache.ts"
import * as Stats from "../../effects/Stats.ts"
import * as Warm from "../../effects/Warm.ts"
import { DataSource, type DataSourceShape, InstanceSource } from "../../src/DataSource.ts"
import type { Target } from "../../src/InvalidationEvent.ts"
import * as Ttl from "../../src/Ttl.ts"
import {
  apiIndex,
  BadRequest,
  CacheApi,
  CacheMiss,
  NotReady,
  type PutEntry,
  ServiceUnavailable,
  sourceAliases,
  type WarmRequest
} from "./CacheApi.ts"
import * as EntryValue from "./EntryValue.ts"
import { Readiness } from "./Readiness.ts"

/** What the cache handlers are configured with. */
export interface HandlerOptions {
  /** The configured data source's name, accepted by `/warm` besides `"database"` and `"default"` (e.g. `"http"`). */
  readonly sourceName?: string | undefined
}

const badRequest = (error: string, message: string) => new BadRequest({ error, message })
const unavailable = (error: string, message: string) => new ServiceUnavailable({ error, message })
const invalidKey = (error: { readonly message: string }) => badRequest("invalid_key", error.message)

/** A string from the request, quoted and cut short, for an error message. */
const quote = (s: string): string => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s)

/** The `Warning` header of an answer served stale by fail-safe (RFC 7234 warn-code 110). */
export const staleWarning = '110 - "Response is Stale"'

const storeDown = (operation: string, cause: { readonly reason: string }) =>
  unavailable("store_unavailable", `the cache store failed to ${operation} (${cause.reason}); try again`)

const written = (outcome: WriteOutcome, operation: string): Effect.Effect<void, ServiceUnavailable> =>
  outcome._tag === "Written" ? Effect.void : Effect.fail(storeDown(operation, outcome.error))

const removed = (outcome: DeleteOutcome, operation: string): Effect.Effect<number, ServiceUnavailable> =>
  outcome._tag === "Deleted" ? Effect.succeed(outcome.removed) : Effect.fail(storeDown(operation, outcome.error))

/** A PUT's `ttl` as the cache takes it: absent means the cache's default, `-1` no expiry. */
const putTtl = (ttl: number | undefined): Duration.Input | undefined =>
  ttl === undefined ? undefined : ttl === -1 ? Duration.infinity : Duration.seconds(ttl)

const loadOptions = { schema: Schema.Json as Schema.Codec<unknown, unknown> }

/** The GET handler: the read's own outcome decides 200, 404 and 503 (or, with `?load=true`, a load). */
const makeGetEntry = (cache: Cache["Service"], source: DataSourceShape | undefined) => {
  const ttlSeconds = (key: string) => Effect.map(cache.ttl(key), Ttl.toSeconds)

  /**
   * `?load=true` on a miss: fetches the key through the cache (fail-safe, timeouts and negative entries apply) and
   * answers it with `hit: false`; a stale fail-safe copy answers with `stale: true`, `ttl: 0` and a `Warning` header.
   */
  const load = Effect.fnUntraced(function* (key: string, from: DataSourceShape) {
    const fetched = yield* cache.fetch(key, from.load(key), loadOptions).pipe(
      Effect.catchTags({
        LoadError: (error) =>
          Effect.fail(unavailable("source_failed", `the data source failed to load the key: ${error.message}`)),
        LoadTimeoutError: (error) => Effect.fail(unavailable("source_timeout", error.message)),
        InvalidKeyError: (error) => Effect.fail(invalidKey(error))
      })
    )
    if (fetched._tag === "NotFound") return yield* new CacheMiss({ key, hit: false })
    const value = EntryValue.fromLoaded(fetched.value)
    if (value === undefined) {
      return yield* unavailable("source_failed", "the data source answered a value that is not JSON")
    }
    if (fetched.stale) {
      yield* HttpEffect.appendPreResponseHandler((_request, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "warning", staleWarning))
      )
      // Past its TTL: the store's remaining time is the stale copy's, not the entry's.
      return { key, value, ttl: 0, data_type: "string" as const, hit: false, stale: true }
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
        case "Found":
          // The TTL comes with the value, from the same read (or the L1 entry): one store round trip, or none.
          return {
            key,
            value: EntryValue.fromEntry(read.value),
            ttl: Ttl.toSeconds(read.ttlMs),
            data_type: read.value.type,
            hit: true
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

const jsonAnswer = (status: number, body: unknown) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" })

const storeUnavailable = jsonAnswer(503, {
  error: "store_unavailable",
  message: "the cache store is unavailable; the entry could not be read"
})

/** The answer of the entry route to a read of `key`. */
const entryResponse = (key: string, read: ReadResult): HttpServerResponse.HttpServerResponse => {
  switch (read._tag) {
    case "Found":
      return jsonAnswer(200, {
        key,
        value: EntryValue.fromEntry(read.value),
        ttl: Ttl.toSeconds(read.ttlMs),
        data_type: read.value.type,
        hit: true
      })
    case "Missing":
      return jsonAnswer(404, { key, hit: false })
    case "Unavailable":
      return storeUnavailable
  }
}

/**
 * `GET /api/v1/cache/{key}` without a query, answered from the cache in one step: the same status codes and JSON
 * bodies as the `getEntry` endpoint (200 the entry, 404 `{key, hit: false}`, 503 `{error, message}`), without the
 * endpoint's per-request schema work. The guard has already checked the token and the key (it serves this only
 * then); every other GET (`?load=true`, HEAD) goes to the endpoint.
 */
export const entryAnswer: Effect.Effect<
  (key: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>,
  never,
  Cache
> = Effect.map(
  Effect.service(Cache),
  (cache) => (key) =>
    Effect.match(cache.readEntry(key), {
      onFailure: (error) => jsonAnswer(400, { error: "invalid_key", message: error.message }),
      onSuccess: (read) => entryResponse(key, read)
    })
)

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
      tags: payload.tags,
      mode: payload.mode
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
      const sourceNames = new Set([...sourceAliases, ...(options.sourceName === undefined ? [] : [options.sourceName])])

      const ttlSeconds = (key: string) => Effect.map(cache.ttl(key), Ttl.toSeconds)
      const getEntry = makeGetEntry(cache, source)
      const warm = makeWarm(cache, source, sourceNames)

      const putEntry = Effect.fnUntraced(
        function* (key: string, payload: PutEntry) {
          const value = EntryValue.fromPut(payload.data_type ?? "string", payload.value)
          if (value instanceof BadRequest) return yield* value
          const outcome = yield* cache.write(key, value, {
            ttl: putTtl(payload.ttl),
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

/** The handlers of `/`, `/healthz`, `/readyz` and `/metrics`. */
export const layerSystemHandlers = HttpApiBuilder.group(
  CacheApi,
  "system",
  Effect.fn("CacheApi.systemHandlers")(function* (handlers) {
    const readiness = yield* Readiness
    const stats = yield* Stats.Stats
    return handlers
      .handle("index", () => Effect.succeed(apiIndex))
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
