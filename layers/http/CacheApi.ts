/**
 * The REST contract of the seed (DESIGN.md, "REST API"), declared with `effect/http-api` and nothing else: the
 * error classes, the request and response schemas, the two groups, the API and its middleware declarations.
 * Every non-success answer it declares is JSON `{error, message}` with a 4xx/503 status (a miss is
 * `404 {key, hit: false}`); the handlers (`Handlers.ts`), the guard (`Guard.ts`) and the routes (`Routes.ts`)
 * implement it.
 */
import { Schema } from "effect"
import {
  HttpApi,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  OpenApi
} from "effect/http-api"
import * as Stats from "../../effects/Stats.ts"
import * as Warm from "../../effects/Warm.ts"
import { WarmMode } from "../../src/CacheConfig.ts"
import * as CacheKey from "../../src/CacheKey.ts"
import { DataType, ScoredMember } from "../../src/CacheValue.ts"
import { Pattern, Tag } from "../../src/InvalidationEvent.ts"
import * as Ttl from "../../src/Ttl.ts"
import * as ApiDocs from "./ApiDocs.ts"

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
// Schemas of the contract
// -----------------------------------------------------------------------------

/** A key as the path carries it (percent-decoded): non-empty, at most 512 UTF-8 bytes, no control characters. */
const KeyParam = Schema.String.pipe(
  Schema.check(Schema.makeFilter((key: string) => CacheKey.validate(key) ?? true)),
  Schema.annotate({ description: "The cache key, percent-encoded in the path (`user%3A1` is `user:1`)." })
)

const Tags = Schema.Array(Tag).pipe(Schema.check(Schema.isMaxLength(100)))
const TtlField = Ttl.TtlSeconds.pipe(Schema.annotate({ description: "Time to live in whole seconds (≥ 1)." }))

/** A value of any data type, as the API answers it: a string entry's JSON value, or a collection. */
export const AnyValue = Schema.Union([
  Schema.Json.annotate({
    description: "string: the JSON value PUT (an object stays an object, a string a string), or a non-JSON text as is"
  }),
  Schema.Record(Schema.String, Schema.String).annotate({ description: "hash: an object of strings" }),
  Schema.Array(Schema.String).annotate({ description: "set, list: an array of strings" }),
  Schema.Array(ScoredMember).annotate({ description: "sorted_set: {member, score} by score" })
])
/** A value of any data type, as the API answers it. */
export type AnyValue = typeof AnyValue.Type

/**
 * The `value` of a GET answer as declared: any JSON value. The handler builds it from the store (JSON it parsed, or
 * the store's own collections), so encoding it checks nothing — checking `AnyValue` on every answer cost ~45 µs for
 * a 200-element object; the document still says what each data type answers.
 */
const AnswerValue = Schema.Unknown.annotate({
  description:
    "Any JSON value. string: the JSON value PUT (an object stays an object, a string a string), or a non-JSON " +
    "text as is; hash: an object of strings; set, list: an array of strings; sorted_set: [{member, score}] by score."
})

const EntryFound = Schema.Struct({
  key: Schema.String,
  value: AnswerValue,
  ttl: Schema.Int.pipe(
    Schema.annotate({ description: "Remaining seconds, -1 when the entry never expires, 0 for a stale answer." })
  ),
  data_type: DataType,
  hit: Schema.Boolean.pipe(Schema.annotate({ description: "false when the value was just loaded from the source." })),
  stale: Schema.optionalKey(
    Schema.Boolean.pipe(
      Schema.annotate({
        description:
          "With ?load=true: true when the source failed, timed out or is resting and the last good value answers " +
          '(fail-safe); the answer then carries `Warning: 110 - "Response is Stale"`. Absent otherwise.'
      })
    )
  )
})

/** `-1`, the contract's "no expiry". */
const NoExpiry = Schema.Literal(-1)

/** The body of a PUT: the value, as its data type says, with optional TTL, data type and tags. */
export const PutEntry = Schema.Struct({
  value: Schema.Unknown.pipe(
    Schema.annotate({
      description:
        "string: any JSON value, answered by GET as the same JSON value; hash: object of strings; " +
        "set, list: array of strings; sorted_set: array of {member, score}."
    })
  ),
  ttl: Schema.optionalKey(
    Schema.Union([NoExpiry, Ttl.TtlSeconds]).annotate({
      description: "Time to live in whole seconds (≥ 1), or -1 for no expiry; omitted: the server's default TTL."
    })
  ),
  data_type: Schema.optionalKey(DataType),
  tags: Schema.optionalKey(Tags)
})

/** The body of a PUT. */
export type PutEntry = typeof PutEntry.Type

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

/** The names `/warm` accepts for the configured data source besides its own name: the seed's word and "default". */
export const sourceAliases: ReadonlyArray<string> = ["database", "default"]

const warmOptions = {
  source: Schema.String.pipe(
    Schema.annotate({
      description:
        'The data source: "database" (the seed\'s word), "default" or the configured source\'s name (e.g. "http", ' +
        '"sql") — all mean the configured source; any other name is a 400.'
    })
  ),
  ttl: Schema.optionalKey(TtlField),
  tags: Schema.optionalKey(Tags),
  mode: Schema.optionalKey(
    WarmMode.annotate({
      description:
        '"missing" (default): load only the keys the cache does not hold; "refresh": reload present keys too, the ' +
        "old value readable until the new one lands."
    })
  )
}
/** The body of `/warm`: keys or a pattern, the source's name, optional TTL, tags and mode. */
export const WarmRequest = Schema.Union([
  Schema.Struct({ keys: Schema.Array(Schema.String).pipe(Schema.check(Schema.isMaxLength(100_000))), ...warmOptions }),
  Schema.Struct({ pattern: Pattern, ...warmOptions })
])
/** The body of `/warm`. */
export type WarmRequest = typeof WarmRequest.Type

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

/** Where the entries, invalidation, warming and stats are served. */
export const apiPath = "/api/v1/cache"

/** Where the OpenAPI document of `CacheApi` is served. */
export const openApiPath = "/openapi.json"

/** Where the docs page of `CacheApi` is served. */
export const docsPath = "/docs"

/** Entries, invalidation, warming and stats under `/api/v1/cache`. */
export class CacheGroup extends HttpApiGroup.make("cache")
  .add(
    HttpApiEndpoint.get("stats", "/stats", { success: StatsBody }).annotateMerge(ApiDocs.operations.stats),
    HttpApiEndpoint.post("invalidate", "/invalidate", {
      payload: Invalidation,
      success: Invalidated,
      error: ServiceUnavailable
    }).annotateMerge(ApiDocs.operations.invalidate),
    HttpApiEndpoint.post("warm", "/warm", {
      payload: WarmRequest,
      success: Warm.WarmSummary,
      error: ServiceUnavailable
    }).annotateMerge(ApiDocs.operations.warm),
    HttpApiEndpoint.get("getEntry", "/:key", {
      params: { key: KeyParam },
      query: { load: Schema.optionalKey(Schema.Literals(["true", "false"])) },
      success: EntryFound,
      error: [CacheMiss, ServiceUnavailable]
    }).annotateMerge(ApiDocs.operations.getEntry),
    HttpApiEndpoint.put("putEntry", "/:key", {
      params: { key: KeyParam },
      payload: PutEntry,
      success: EntrySet,
      error: ServiceUnavailable
    }).annotateMerge(ApiDocs.operations.putEntry),
    HttpApiEndpoint.delete("deleteEntry", "/:key", {
      params: { key: KeyParam },
      success: EntryDeleted,
      error: ServiceUnavailable
    }).annotateMerge(ApiDocs.operations.deleteEntry)
  )
  .middleware(Authorization)
  .prefix(apiPath)
  .annotate(HttpApi.PayloadParseOptions, { onExcessProperty: "error" })
  .annotateMerge(OpenApi.annotations({ title: "cache", description: "Entries, invalidation, warming and stats." })) {}

/** The answer of `GET /`: where the docs, the OpenAPI document, the API and the probes are. */
const ApiIndex = Schema.Struct({
  name: Schema.String,
  docs: Schema.String,
  openapi: Schema.String,
  api: Schema.String,
  health: Schema.String,
  ready: Schema.String,
  metrics: Schema.String
})

/** `GET /`'s answer. */
export const apiIndex: typeof ApiIndex.Type = {
  name: "embedded-cache",
  docs: docsPath,
  openapi: openApiPath,
  api: apiPath,
  health: "/healthz",
  ready: "/readyz",
  metrics: "/metrics"
}

/** The index, liveness, readiness and metrics, outside `/api/v1` (no token needed). */
export class SystemGroup extends HttpApiGroup.make("system", { topLevel: true }).add(
  HttpApiEndpoint.get("index", "/", { success: ApiIndex }).annotateMerge(ApiDocs.operations.index),
  HttpApiEndpoint.get("healthz", "/healthz", {
    success: Schema.Struct({ status: Schema.Literal("ok") })
  }).annotateMerge(ApiDocs.operations.healthz),
  HttpApiEndpoint.get("readyz", "/readyz", {
    success: Schema.Struct({ status: Schema.Literal("ready") }),
    error: NotReady
  }).annotateMerge(ApiDocs.operations.readyz),
  HttpApiEndpoint.get("metrics", "/metrics", {
    success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
  }).annotateMerge(ApiDocs.operations.metrics)
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
