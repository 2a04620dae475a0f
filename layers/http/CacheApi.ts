/**
 * The REST admin API of the seed contract (DESIGN.md, "REST API"), declared with `effect/http-api` and implemented
 * over the `Cache` in context: entries of the five data types by key, invalidation by key / pattern / tag, warming
 * from the `DataSource`, stats, health, readiness, Prometheus metrics, an OpenAPI document and a docs page. Every
 * answer that is not a success is JSON `{error, message}` with a 4xx/503 status — bad input never gets a 500 —
 * and `/api/v1/*` requires `Authorization: Bearer <token>` when a token is configured (compared in constant time).
 *
 * String values: a `string` entry's stored text is always JSON, the same text `Cache.get`/`getOrLoad` write through a
 * Schema codec. `PUT {value}` stores the JSON of `value` as given (`"ada"` → `"ada"`, `{"a":1}` → `{"a":1}`), so a
 * program reading the key with a schema gets the structured value back. `GET` answers, for a string entry, the
 * decoded JSON when it is a string, and otherwise its JSON text (DESIGN: "a non-string JSON value is stored as its
 * JSON text"); a stored text that is not JSON (written by another tool) is answered as it is. Values loaded from the
 * data source (`?load=true`) are filled as their JSON through `getOrLoad` and answered by the same rule.
 *
 * Warming: `source` names the data source. The configured source answers to `"default"` and to the name the server
 * was given (`sourceName`, e.g. `"http"` — what `CACHE_SOURCE` says); any other name is a 400, and no configured
 * source is a 503.
 */
import {
  ByteSize,
  Cause,
  Context,
  Duration,
  Effect,
  Layer,
  Metric,
  Option,
  Redacted,
  Schema,
  SchemaIssue
} from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiError,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  HttpApiSwagger,
  OpenApi
} from "effect/http-api"
import { isUtf8 } from "node:buffer"
import { createHash, timingSafeEqual } from "node:crypto"
import { Cache, type DeleteOutcome, type WriteOutcome } from "../../effects/Cache.ts"
import * as Stats from "../../effects/Stats.ts"
import * as Warm from "../../effects/Warm.ts"
import * as CacheKey from "../../src/CacheKey.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import type { CacheValue } from "../../src/CacheValue.ts"
import { DataType, ScoredMember } from "../../src/CacheValue.ts"
import { DataSource } from "../../src/DataSource.ts"
import { Pattern, Tag, type Target } from "../../src/InvalidationEvent.ts"
import * as Ttl from "../../src/Ttl.ts"

// -----------------------------------------------------------------------------
// Errors: every one is `{error, message}` on the wire, with its status
// -----------------------------------------------------------------------------

const errorFields = {
  /** A short machine-readable code, e.g. `invalid_key`. */
  error: Schema.String,
  /** What went wrong, for a person. */
  message: Schema.String
}

/** 400: the request is malformed or violates the schema. */
export class BadRequest extends Schema.Error<BadRequest>("embedded-cache/BadRequest")(errorFields, {
  httpApiStatus: 400,
  description: "The request is malformed or violates the schema."
}) {}

/** 401: `/api/v1/*` needs `Authorization: Bearer <token>` and it was missing or wrong. */
export class Unauthorized extends Schema.Error<Unauthorized>("embedded-cache/Unauthorized")(errorFields, {
  httpApiStatus: 401,
  description: "Missing or wrong bearer token."
}) {}

/** 413: the body is larger than the configured limit. */
export class PayloadTooLarge extends Schema.Error<PayloadTooLarge>("embedded-cache/PayloadTooLarge")(errorFields, {
  httpApiStatus: 413,
  description: "The body is larger than the configured limit."
}) {}

/** 415: a body that is not `application/json`. */
export class UnsupportedMediaType extends Schema.Error<UnsupportedMediaType>("embedded-cache/UnsupportedMediaType")(
  errorFields,
  { httpApiStatus: 415, description: "The body must be application/json." }
) {}

/** 503: the store failed, or the data source is missing or failing. */
export class ServiceUnavailable extends Schema.Error<ServiceUnavailable>("embedded-cache/ServiceUnavailable")(
  errorFields,
  { httpApiStatus: 503, description: "The store or the data source is unavailable." }
) {}

/** 404 `{key, hit: false}`: the key holds nothing (and, with `?load=true`, the source has nothing either). */
export class CacheMiss extends Schema.Error<CacheMiss>("embedded-cache/CacheMiss")(
  { key: Schema.String, hit: Schema.Literal(false) },
  { httpApiStatus: 404, description: "A miss." }
) {}

/** 503 `{status: "not_ready", reason}` from `/readyz`. */
export class NotReady extends Schema.Error<NotReady>("embedded-cache/NotReady")(
  { status: Schema.Literal("not_ready"), reason: Schema.String },
  { httpApiStatus: 503, description: "Not ready to serve (warming up, or the store is down)." }
) {}

// -----------------------------------------------------------------------------
// Ports the API needs from the wiring
// -----------------------------------------------------------------------------

/** Whether the instance should receive traffic; `reason` says why not. */
export interface ReadinessStatus {
  readonly ready: boolean
  readonly reason?: string | undefined
}

/** What `/readyz` asks: false until startup warm-up finished and while the store is down. */
export class Readiness extends Context.Service<Readiness, { readonly check: Effect.Effect<ReadinessStatus> }>()(
  "embedded-cache/Readiness"
) {}

/** Always ready: for tests and for runs without a startup phase. */
export const layerAlwaysReady: Layer.Layer<Readiness> = Layer.succeed(
  Readiness,
  Readiness.of({ check: Effect.succeed({ ready: true }) })
)

/**
 * Ready while `startupDone` answers true and the store answers a ping within `timeout` (default 1 s); otherwise not
 * ready, with the reason.
 */
export const layerReadinessFromStore = (options: {
  readonly startupDone?: Effect.Effect<boolean> | undefined
  readonly timeout?: Duration.Input | undefined
}): Layer.Layer<Readiness, never, CacheStore> =>
  Layer.effect(
    Readiness,
    Effect.map(Effect.service(CacheStore), (store) => {
      const timeout = options.timeout ?? "1 second"
      const startupDone = options.startupDone ?? Effect.succeed(true)
      return Readiness.of({
        check: Effect.flatMap(startupDone, (done): Effect.Effect<ReadinessStatus> => {
          if (!done) return Effect.succeed({ ready: false, reason: "startup warm-up has not finished" })
          return store.ping.pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(`no answer within ${Duration.format(Duration.fromInputUnsafe(timeout))}`)
            }),
            Effect.match({
              onFailure: (error) => ({
                ready: false,
                reason: `the store is down: ${typeof error === "string" ? error : error.reason}`
              }),
              onSuccess: () => ({ ready: true })
            })
          )
        })
      })
    })
  )

/** Requests answered, by method and status. */
const httpRequests = Metric.counter("cache_http_requests_total", {
  description: "HTTP requests answered by the REST API, by method and status",
  incremental: true
})

// -----------------------------------------------------------------------------
// Schemas of the contract
// -----------------------------------------------------------------------------

/** A key as the path carries it (percent-decoded): non-empty, at most 512 UTF-8 bytes, no control characters. */
const KeyParam = Schema.String.pipe(
  Schema.check(Schema.makeFilter((key: string) => CacheKey.validate(key) ?? true)),
  Schema.annotate({ description: "The cache key, percent-encoded in the path (`user%3A1` is `user:1`)." })
)

const Tags = Schema.Array(Tag).pipe(Schema.check(Schema.isMaxLength(100)))
const TtlField = Ttl.TtlSeconds.pipe(Schema.annotate({ description: "Time to live in whole seconds (≥ 1)." }))

/** A value of any data type, as the API answers it. */
const AnyValue = Schema.Union([
  Schema.String,
  Schema.Record(Schema.String, Schema.String),
  Schema.Array(Schema.String),
  Schema.Array(ScoredMember)
])

const EntryFound = Schema.Struct({
  key: Schema.String,
  value: AnyValue,
  ttl: Schema.Int.pipe(Schema.annotate({ description: "Remaining seconds, -1 when the entry never expires." })),
  data_type: DataType,
  hit: Schema.Boolean.pipe(Schema.annotate({ description: "false when the value was just loaded from the source." }))
})

const PutEntry = Schema.Struct({
  value: Schema.Unknown.pipe(
    Schema.annotate({
      description:
        "string: any JSON value (a non-string is stored as its JSON text); hash: object of strings; set, list: array of strings; sorted_set: array of {member, score}."
    })
  ),
  ttl: Schema.optionalKey(TtlField),
  data_type: Schema.optionalKey(DataType),
  tags: Schema.optionalKey(Tags)
})

const EntrySet = Schema.Struct({ key: Schema.String, status: Schema.Literal("set"), ttl: Schema.Int })
const EntryDeleted = Schema.Struct({ key: Schema.String, status: Schema.Literal("deleted") })

const Invalidation = Schema.Union([
  Schema.Struct({
    invalidation_type: Schema.Literal("pattern"),
    pattern: Pattern,
    all: Schema.optionalKey(Schema.Boolean)
  }),
  Schema.Struct({
    invalidation_type: Schema.Literal("tag"),
    tags: Schema.NonEmptyArray(Tag).pipe(Schema.check(Schema.isMaxLength(100)))
  }),
  Schema.Struct({ invalidation_type: Schema.Literal("key"), key: KeyParam })
])

const invalidated = { keys_invalidated: Schema.Int, status: Schema.Literal("success") }
const Invalidated = Schema.Union([
  Schema.Struct({ pattern: Schema.String, ...invalidated }),
  Schema.Struct({ tags: Schema.Array(Schema.String), ...invalidated }),
  Schema.Struct({ key: Schema.String, ...invalidated })
])

const warmOptions = {
  source: Schema.String.pipe(Schema.annotate({ description: 'The data source: "default" or the configured name.' })),
  ttl: Schema.optionalKey(TtlField),
  tags: Schema.optionalKey(Tags)
}
const WarmRequest = Schema.Union([
  Schema.Struct({ keys: Schema.Array(Schema.String).pipe(Schema.check(Schema.isMaxLength(100_000))), ...warmOptions }),
  Schema.Struct({ pattern: Pattern, ...warmOptions })
])
const Warmed = Schema.Struct({
  keys_warmed: Schema.Int,
  failed: Schema.Int,
  missing: Schema.Int,
  status: Schema.Literal("success"),
  total: Schema.Int,
  already_cached: Schema.Int,
  duration_ms: Schema.Number
})

const StatsBody = Stats.StatsSnapshot.annotate({
  description: "The seed's fields first, then store health, latency percentiles, counters and alerts."
})

// -----------------------------------------------------------------------------
// The API
// -----------------------------------------------------------------------------

/** Bearer-token security on `/api/v1/*`; a server without a token lets every request through. */
export class Authorization extends HttpApiMiddleware.Service<Authorization>()("embedded-cache/Authorization", {
  security: { bearer: HttpApiSecurity.bearer },
  error: Unauthorized
}) {}

/** Renders request-decoding failures as 400 `{error, message}` and documents the other request errors. */
export class RequestErrors extends HttpApiMiddleware.Service<RequestErrors>()("embedded-cache/RequestErrors", {
  error: [BadRequest, PayloadTooLarge, UnsupportedMediaType]
}) {}

/** Entries, invalidation, warming and stats under `/api/v1/cache`. */
export class CacheGroup extends HttpApiGroup.make("cache")
  .add(
    HttpApiEndpoint.get("stats", "/stats", { success: StatsBody }),
    HttpApiEndpoint.post("invalidate", "/invalidate", {
      payload: Invalidation,
      success: Invalidated,
      error: ServiceUnavailable
    }),
    HttpApiEndpoint.post("warm", "/warm", { payload: WarmRequest, success: Warmed, error: ServiceUnavailable }),
    HttpApiEndpoint.get("getEntry", "/:key", {
      params: { key: KeyParam },
      query: { load: Schema.optionalKey(Schema.Literals(["true", "false"])) },
      success: EntryFound,
      error: [CacheMiss, ServiceUnavailable]
    }),
    HttpApiEndpoint.put("putEntry", "/:key", {
      params: { key: KeyParam },
      payload: PutEntry,
      success: EntrySet,
      error: ServiceUnavailable
    }),
    HttpApiEndpoint.delete("deleteEntry", "/:key", {
      params: { key: KeyParam },
      success: EntryDeleted,
      error: ServiceUnavailable
    })
  )
  .middleware(Authorization)
  .prefix("/api/v1/cache")
  .annotate(HttpApi.PayloadParseOptions, { onExcessProperty: "error" })
  .annotateMerge(OpenApi.annotations({ title: "cache", description: "Entries, invalidation, warming and stats." })) {}

/** Liveness, readiness and metrics, outside `/api/v1` (no token needed). */
export class SystemGroup extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("healthz", "/healthz", { success: Schema.Struct({ status: Schema.Literal("ok") }) }),
  HttpApiEndpoint.get("readyz", "/readyz", {
    success: Schema.Struct({ status: Schema.Literal("ready") }),
    error: NotReady
  }),
  HttpApiEndpoint.get("metrics", "/metrics", {
    success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
  })
) {}

/** The whole REST API. */
export class CacheApi extends HttpApi.make("embedded-cache")
  .add(CacheGroup)
  .add(SystemGroup)
  .middleware(RequestErrors)
  .annotateMerge(
    OpenApi.annotations({
      title: "embedded-cache",
      version: "0.1.0",
      description: "Admin API of an embedded local Redis cache. Errors are JSON {error, message}."
    })
  ) {}

// -----------------------------------------------------------------------------
// Handlers
// -----------------------------------------------------------------------------

/** What the handlers and the guard are configured with. */
export interface ApiOptions {
  /** When set, `/api/v1/*` requires `Authorization: Bearer <token>`. */
  readonly apiToken?: Redacted.Redacted<string> | undefined
  /** The largest body accepted, in bytes. Default 1 MiB (1_048_576). */
  readonly maxBodyBytes?: number | undefined
  /** The configured data source's name, accepted by `/warm` besides `"default"` (e.g. `"http"`). */
  readonly sourceName?: string | undefined
  /** This instance's identity, sent in the `x-cache-instance` header of every answer. */
  readonly instanceId?: string | undefined
}

/** The default body limit: 1 MiB. */
export const defaultMaxBodyBytes = 1_048_576

const badRequest = (error: string, message: string) => new BadRequest({ error, message })
const unavailable = (error: string, message: string) => new ServiceUnavailable({ error, message })

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

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** The value of a PUT as the data type says, or why it does not fit. */
const toCacheValue = (dataType: DataType, value: unknown): CacheValue | BadRequest => {
  const wrong = (message: string) => badRequest("invalid_value", `${dataType}: ${message}`)
  switch (dataType) {
    case "string": {
      let text: string | undefined
      try {
        text = JSON.stringify(value)
      } catch {
        return wrong("the value is nested too deeply to store")
      }
      return text === undefined ? wrong("the value is not JSON") : { type: "string", value: text }
    }
    case "hash": {
      if (!isPlainObject(value)) return wrong("the value must be an object of strings")
      const fields = Object.keys(value)
      if (fields.length === 0) return wrong("a hash must have at least one field")
      for (const field of fields) {
        if (typeof value[field] !== "string") return wrong(`field ${quote(field)} must be a string`)
      }
      return { type: "hash", value: value as Record<string, string> }
    }
    case "set":
    case "list": {
      if (!Array.isArray(value)) return wrong("the value must be an array of strings")
      if (value.length === 0) return wrong("the value must not be empty")
      for (let i = 0; i < value.length; i++) {
        if (typeof value[i] !== "string") return wrong(`element ${i} must be a string`)
      }
      return { type: dataType, value: value as ReadonlyArray<string> }
    }
    case "sorted_set": {
      if (!Array.isArray(value)) return wrong("the value must be an array of {member, score}")
      if (value.length === 0) return wrong("the value must not be empty")
      const members: Array<ScoredMember> = []
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i]
        if (!isPlainObject(item) || typeof item.member !== "string") {
          return wrong(`element ${i} must be {member: string, score: number}`)
        }
        if (typeof item.score !== "number" || !Number.isFinite(item.score)) {
          return wrong(`element ${i} must have a finite number score`)
        }
        members.push({ member: item.member, score: item.score })
      }
      return { type: "sorted_set", value: members }
    }
  }
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

const invalidKey = (error: { readonly message: string }) => badRequest("invalid_key", error.message)

/** The handlers of `/api/v1/cache`, over the `Cache` (and the `DataSource`, when one is in context). */
export const layerCacheHandlers = (options: ApiOptions = {}) =>
  HttpApiBuilder.group(
    CacheApi,
    "cache",
    Effect.fn(function* (handlers) {
      const cache = yield* Cache
      const stats = yield* Stats.Stats
      const source = Option.getOrUndefined(yield* Effect.serviceOption(DataSource))
      const sourceNames = new Set(["default", ...(options.sourceName === undefined ? [] : [options.sourceName])])

      const ttlSeconds = (key: string) => Effect.map(cache.ttl(key), Ttl.toSeconds)

      /** A miss: 404, unless the store failed while answering it (then 503). */
      const missOr503 = (key: string, degradedBefore: number): Effect.Effect<never, CacheMiss | ServiceUnavailable> =>
        Effect.flatMap(cache.stats, (after) =>
          Effect.fail(
            after.degradedReads > degradedBefore
              ? unavailable("store_unavailable", "the cache store is unavailable; the entry could not be read")
              : new CacheMiss({ key, hit: false })
          )
        )

      const load = (key: string) =>
        Effect.gen(function* () {
          if (source === undefined) {
            return yield* unavailable("no_data_source", "no data source is configured; ?load=true cannot load")
          }
          const loaded = yield* cache
            .getOrLoad(
              key,
              Effect.flatMap(source.load(key), (found) =>
                Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(new SourceMiss())
              ),
              { schema: Schema.Json as Schema.Codec<unknown, unknown> }
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
          return {
            key,
            value,
            ttl: yield* ttlSeconds(key).pipe(Effect.orElseSucceed(() => -1)),
            data_type: "string" as const,
            hit: false
          }
        })

      return handlers
        .handle("stats", () => stats.snapshot)
        .handle("getEntry", ({ params, query }) =>
          Effect.gen(function* () {
            const key = params.key
            const before = (yield* cache.stats).degradedReads
            const entry = yield* cache.read(key)
            if (entry !== undefined) {
              // An entry that expired (or a store that failed) since the read has no TTL left: 0, not "never".
              const remaining = yield* cache.ttl(key)
              const ttl = remaining === undefined ? 0 : Ttl.toSeconds(remaining)
              return { key, value: valueOf(entry), ttl, data_type: entry.type, hit: true }
            }
            if (query.load === "true") return yield* load(key)
            return yield* missOr503(key, before)
          }).pipe(Effect.catchTag("InvalidKeyError", (error) => Effect.fail(invalidKey(error))))
        )
        .handle(
          "putEntry",
          ({ params, payload }) =>
            Effect.gen(function* () {
              const value = toCacheValue(payload.data_type ?? "string", payload.value)
              if (value instanceof BadRequest) return yield* value
              const outcome = yield* cache.write(params.key, value, {
                ttl: payload.ttl === undefined ? undefined : Duration.seconds(payload.ttl),
                tags: payload.tags
              })
              yield* written(outcome, "write the entry")
              // Without a ttl the cache's default may apply: answer what the entry got.
              const ttl = payload.ttl ?? (yield* ttlSeconds(params.key))
              return { key: params.key, status: "set" as const, ttl }
            }).pipe(Effect.catchTag("InvalidKeyError", (error) => Effect.fail(invalidKey(error)))),
          // A client that hangs up must not cut a write between the store and the publish to peers.
          { uninterruptible: true }
        )
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
            Effect.gen(function* () {
              const target: Target = payload
              const count = yield* cache.invalidate(target).pipe(
                Effect.catchTags({
                  InvalidKeyError: (error) => Effect.fail(invalidKey(error)),
                  InvalidPatternError: (error) => Effect.fail(badRequest("invalid_pattern", error.message))
                }),
                Effect.flatMap((outcome) => removed(outcome, "invalidate"))
              )
              const result = { keys_invalidated: count, status: "success" as const }
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
        .handle("warm", ({ payload }) =>
          Effect.gen(function* () {
            if (!sourceNames.has(payload.source)) {
              return yield* badRequest(
                "unknown_source",
                `unknown data source ${quote(payload.source)}; use ${[...sourceNames].map(quote).join(" or ")}`
              )
            }
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
            return {
              keys_warmed: report.warmed,
              failed: report.failed,
              missing: report.missing,
              status: "success" as const,
              total: report.total,
              already_cached: report.alreadyCached,
              duration_ms: report.durationMs
            }
          })
        )
    })
  )

/** The handlers of `/healthz`, `/readyz` and `/metrics`. */
export const layerSystemHandlers = HttpApiBuilder.group(
  CacheApi,
  "system",
  Effect.fn(function* (handlers) {
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
      .handle("metrics", () =>
        Effect.gen(function* () {
          return yield* stats.prometheusText
        })
      )
  })
)

/** Token check in constant time: SHA-256 digests have equal length whatever the input. */
const tokenMatches = (expected: Buffer, header: string | undefined): boolean => {
  if (header === undefined) return false
  // As Effect's own bearer decoding: scheme case-insensitive, then one or more spaces.
  const match = /^bearer +(.+)$/is.exec(header)
  if (match === null) return false
  const given = createHash("sha256").update(match[1]!, "utf8").digest()
  return timingSafeEqual(given, expected)
}

const digestOf = (token: Redacted.Redacted<string> | undefined) =>
  token === undefined ? undefined : createHash("sha256").update(Redacted.value(token), "utf8").digest()

/** The bearer check of the `Authorization` middleware (the guard checks earlier too, before any body is read). */
export const layerAuthorization = (options: ApiOptions = {}): Layer.Layer<Authorization> => {
  const expected = digestOf(options.apiToken)
  return Layer.succeed(
    Authorization,
    Authorization.of({
      bearer: (httpEffect, { credential }) =>
        expected === undefined ||
        timingSafeEqual(createHash("sha256").update(Redacted.value(credential), "utf8").digest(), expected)
          ? httpEffect
          : Effect.fail(new Unauthorized({ error: "unauthorized", message: "missing or wrong bearer token" }))
    })
  )
}

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** A schema failure of the request as one line: `payload.ttl: Expected …; …`. */
const describeSchemaError = (error: HttpApiError.HttpApiSchemaError): string => {
  const slot = error.kind === "Params" ? "path" : error.kind.toLowerCase()
  try {
    const issues = formatIssues(error.cause.issue).issues
    if (issues.length === 0) return `invalid ${slot}`
    return issues
      .slice(0, 5)
      .map((issue) => {
        const path = (issue.path ?? [])
          .map((p) => {
            const segment = String(typeof p === "object" && p !== null && "key" in p ? p.key : p)
            return segment.length > 60 ? `${segment.slice(0, 60)}…` : segment
          })
          .join(".")
        const where = path.length === 0 ? slot : `${slot}.${path}`
        return `${where}: ${issue.message.split("\n")[0]}`
      })
      .join("; ")
  } catch {
    return `invalid ${slot}`
  }
}

/** Request-decoding failures become 400 `{error, message}`. */
export const layerRequestErrors: Layer.Layer<RequestErrors> = HttpApiMiddleware.layerSchemaErrorTransform(
  RequestErrors,
  (error) =>
    error.kind === "Body" || error.kind === "ResponseHeaders"
      ? Effect.fail(error)
      : Effect.fail(
          error.cause.issue._tag === "InvalidValue" && error.cause.message.includes("valid JSON")
            ? badRequest("invalid_json", "the body is not valid JSON")
            : badRequest("invalid_request", describeSchemaError(error))
        )
)

// -----------------------------------------------------------------------------
// The guard: what must hold before a route runs, and JSON for whatever fails
// -----------------------------------------------------------------------------

const json = (status: number, body: unknown, headers?: Record<string, string>) =>
  HttpServerResponse.jsonUnsafe(body, { status, ...(headers === undefined ? {} : { headers }) })

const errorResponse = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  json(status, { error, message }, headers)

const codeOf = (status: number): string => {
  switch (status) {
    case 400:
      return "bad_request"
    case 401:
      return "unauthorized"
    case 403:
      return "forbidden"
    case 404:
      return "not_found"
    case 405:
      return "method_not_allowed"
    case 408:
      return "request_timeout"
    case 413:
      return "payload_too_large"
    case 415:
      return "unsupported_media_type"
    case 426:
      return "upgrade_required"
    case 431:
      return "headers_too_large"
    case 503:
      return "service_unavailable"
    default:
      return status >= 500 ? "internal_error" : "client_error"
  }
}

const apiPrefix = "/api/v1/"
const entryPrefix = "/api/v1/cache/"

const isApiPath = (path: string) => path.startsWith(apiPrefix) || path === "/api/v1"

/** Runs of slashes as one, as the router (`ignoreDuplicateSlashes`) matches them. */
const collapseSlashes = (path: string) => (path.includes("//") ? path.replace(/\/{2,}/g, "/") : path)

/** The path as the router matches it: slashes collapsed and the escapes `decodeURI` undoes decoded. */
const routedPath = (path: string): string => {
  const collapsed = collapseSlashes(path)
  if (!collapsed.includes("%")) return collapsed
  try {
    return decodeURI(collapsed)
  } catch {
    return collapsed // the router cannot decode it either, and so routes it nowhere
  }
}
const entryMethods = "GET, HEAD, PUT, DELETE"

/** The methods a known path answers, for 405 (undefined: the path names nothing). */
const allowedMethods = (path: string): string | undefined => {
  switch (path) {
    case "/healthz":
    case "/readyz":
    case "/metrics":
    case "/openapi.json":
    case "/docs":
      return "GET, HEAD"
    // Also keys: GET/PUT/DELETE of /api/v1/cache/warm name the key "warm" (GET /api/v1/cache/stats is the stats).
    case "/api/v1/cache/invalidate":
    case "/api/v1/cache/warm":
      return `POST, ${entryMethods}`
  }
  return path.startsWith(entryPrefix) && path.indexOf("/", entryPrefix.length) === -1 ? entryMethods : undefined
}

/** Whether a media type is JSON: `application/json` or `application/<x>+json`, in UTF-8 when a charset is given. */
const isJsonContentType = (header: string | undefined): boolean => {
  if (header === undefined) return false
  const [type = "", ...params] = header.toLowerCase().split(";")
  const essence = type.trim()
  if (essence !== "application/json" && !/^application\/[a-z0-9.+-]+\+json$/.test(essence)) return false
  for (const param of params) {
    const [name, value] = param.split("=").map((s) => s.trim())
    if (name === "charset" && value !== undefined && value.replace(/"/g, "") !== "utf-8") return false
  }
  return true
}

/** Why the key in an entry path is not acceptable, or undefined. */
const entryKeyProblem = (rawSegment: string): string | undefined => {
  // The router treats a raw ';' or '#' as the end of the path; inside a key they must be percent-encoded.
  if (rawSegment.includes(";") || rawSegment.includes("#")) {
    return "';' and '#' in a key must be percent-encoded (%3B, %23)"
  }
  let key: string
  try {
    key = decodeURIComponent(rawSegment)
  } catch {
    return "the key is not valid percent-encoded UTF-8"
  }
  return CacheKey.validate(key)
}

const knownMethods = new Set(["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"])

/** The answer to anything that failed below the guard. */
const fromCause = (cause: Cause.Cause<unknown>, request: HttpServerRequest.HttpServerRequest, path: string) => {
  const failure = Cause.findErrorOption(cause)
  const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
  if (HttpServerError.isHttpServerError(error)) {
    const reason = error.reason
    if (reason._tag === "RouteNotFound") {
      const allowed = allowedMethods(routedPath(path))
      return allowed === undefined
        ? errorResponse(
            404,
            "not_found",
            `nothing at ${request.method} ${path.length > 200 ? `${path.slice(0, 200)}…` : path}`
          )
        : errorResponse(405, "method_not_allowed", `${path} answers ${allowed}`, { allow: allowed })
    }
    if (reason._tag === "RequestParseError") {
      return reason.reason === "BodyTooLarge"
        ? errorResponse(413, "payload_too_large", "the body is larger than the limit")
        : errorResponse(400, "bad_request", "the request body could not be read")
    }
  }
  if (HttpApiError.HttpApiSchemaError.is(error) && error.kind !== "Body" && error.kind !== "ResponseHeaders") {
    return errorResponse(400, "invalid_request", describeSchemaError(error))
  }
  if (HttpApiError.HttpApiPayloadTooLarge.is(error)) {
    return errorResponse(413, "payload_too_large", "the body is larger than the limit")
  }
  return undefined
}

/** A 4xx/5xx answer without a JSON body (Effect's defaults are empty or text) gets `{error, message}`. */
const normalize = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse => {
  if (response.status < 400) return response
  const contentType = response.headers["content-type"]
  if (contentType !== undefined && contentType.includes("json")) return response
  const body = response.body
  const text =
    body._tag === "Uint8Array" && body.contentType.startsWith("text/") ? new TextDecoder().decode(body.body) : ""
  const message = text.length > 0 && text.length < 300 ? text : (response.statusText ?? codeOf(response.status))
  return HttpServerResponse.jsonUnsafe(
    { error: codeOf(response.status), message },
    { status: response.status, headers: response.headers }
  ).pipe(HttpServerResponse.removeHeader("content-length"))
}

/**
 * The global middleware of the API. Before a route runs it answers 400 (no Host), 401 (token, on `/api/v1/*`), 400 (a
 * key the path cannot carry), 413 (a declared length over the limit) and 415 (a body that is not JSON); then it reads
 * a body within the limit (413 past it, without buffering more) and refuses one that is not UTF-8 (400) — the routes
 * parse the same cached bytes. Whatever fails below it, error or defect, and every error response Effect renders
 * empty or as text, becomes JSON `{error, message}`.
 */
export const layerGuard = (options: ApiOptions = {}) => {
  const expected = digestOf(options.apiToken)
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes
  const bodyLimit = ByteSize.bytes(maxBodyBytes)

  const precheck = (request: HttpServerRequest.HttpServerRequest, path: string) => {
    // RFC 9112 §3.2: a request without Host is refused (Node's own check would answer an empty 400).
    if (request.headers.host === undefined) return errorResponse(400, "bad_request", "the Host header is missing")
    // Decided on the path as the router will match it, so `//api/v1/…` or `/%61pi/v1/…` get no way around the token
    // (the API's Authorization middleware checks it again on every endpoint it guards, wherever the path led).
    if (!isApiPath(routedPath(path))) return declaredTooLarge(request)
    if (expected !== undefined && !tokenMatches(expected, request.headers.authorization)) {
      return errorResponse(401, "unauthorized", "missing or wrong bearer token", {
        "www-authenticate": 'Bearer realm="embedded-cache"'
      })
    }
    const collapsed = collapseSlashes(path)
    if (collapsed.startsWith(entryPrefix) && collapsed.indexOf("/", entryPrefix.length) === -1) {
      const problem = entryKeyProblem(collapsed.slice(entryPrefix.length))
      if (problem !== undefined) return errorResponse(400, "invalid_key", problem)
    }
    const tooLarge = declaredTooLarge(request)
    if (tooLarge !== undefined) return tooLarge
    if (hasBody(request.method) && !isJsonContentType(request.headers["content-type"])) {
      return errorResponse(415, "unsupported_media_type", "the body must be application/json (UTF-8)")
    }
    return undefined
  }

  const declaredTooLarge = (request: HttpServerRequest.HttpServerRequest) => {
    const length = request.headers["content-length"]
    if (length === undefined) return undefined
    const bytes = Number(length)
    return Number.isFinite(bytes) && bytes <= maxBodyBytes
      ? undefined
      : errorResponse(413, "payload_too_large", `the body is larger than ${maxBodyBytes} bytes`)
  }

  /** Reads the body (cached on the request for the route) and answers why it cannot be used, if it cannot. */
  const readBody = (request: HttpServerRequest.HttpServerRequest) =>
    request.arrayBuffer.pipe(
      Effect.match({
        onFailure: (error) =>
          error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
            ? errorResponse(413, "payload_too_large", `the body is larger than ${maxBodyBytes} bytes`)
            : errorResponse(400, "bad_request", "the request body could not be read"),
        onSuccess: (bytes) =>
          isUtf8(new Uint8Array(bytes)) ? undefined : errorResponse(400, "invalid_json", "the body is not valid UTF-8")
      })
    )

  const answer = (
    request: HttpServerRequest.HttpServerRequest,
    path: string,
    httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>
  ) =>
    Effect.gen(function* () {
      const early = precheck(request, path)
      if (early !== undefined) return early
      if (hasBody(request.method) && isApiPath(routedPath(path))) {
        const unusable = yield* readBody(request)
        if (unusable !== undefined) return unusable
      }
      return yield* httpEffect.pipe(
        Effect.catchCause((cause) => {
          if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
          const mapped = fromCause(cause, request, path)
          if (mapped !== undefined) return Effect.succeed(mapped)
          return Effect.as(
            Effect.logError("request failed unexpectedly", cause),
            errorResponse(500, "internal_error", "the server failed to answer this request")
          )
        })
      )
    }).pipe(Effect.provideService(HttpIncomingMessage.MaxBodySize, bodyLimit))

  return HttpRouter.middleware(
    (httpEffect) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const url = request.url
        const query = url.indexOf("?")
        const path = query === -1 ? url : url.slice(0, query)
        const response = normalize(yield* answer(request, path, httpEffect))
        const method = knownMethods.has(request.method) ? request.method : "OTHER"
        yield* Metric.update(Metric.withAttributes(httpRequests, { method, status: String(response.status) }), 1)
        return options.instanceId === undefined
          ? response
          : HttpServerResponse.setHeader(response, "x-cache-instance", options.instanceId)
      }),
    { global: true }
  )
}

const hasBody = (method: string) => method === "PUT" || method === "POST" || method === "PATCH"

/**
 * Every route of the API — `/api/v1/cache/*`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs` — with the
 * guard, for `HttpRouter.serve`. Needs `Cache`, `Stats` and `Readiness`; uses the `DataSource` when there is one.
 */
export const layerRoutes = (options: ApiOptions = {}) =>
  Layer.mergeAll(
    HttpApiBuilder.layer(CacheApi, { openapiPath: "/openapi.json" }).pipe(
      Layer.provide([layerCacheHandlers(options), layerSystemHandlers]),
      Layer.provide([layerAuthorization(options), layerRequestErrors])
    ),
    HttpApiSwagger.layer(CacheApi, { path: "/docs" }),
    layerGuard(options)
  )
