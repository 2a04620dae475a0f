/**
 * What must hold before a route of the REST API runs, and JSON for whatever fails: the global guard (Host, bearer
 * token, key, body size, media type, UTF-8), the `Authorization` and `RequestErrors` middleware, and the
 * normalisation of every error answer to `{error, message}`. Bad input never gets a 500, the token is compared in
 * constant time by one function, and a 405 names the methods the API declares for the path.
 */
import { ByteSize, Cause, Effect, Layer, Metric, Option, Redacted, SchemaIssue } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiError, HttpApiMiddleware } from "effect/http-api"
import { isUtf8 } from "node:buffer"
import { createHash, timingSafeEqual } from "node:crypto"
import * as CacheKey from "../../src/CacheKey.ts"
import { Authorization, BadRequest, CacheApi, docsPath, openApiPath, RequestErrors, Unauthorized } from "./CacheApi.ts"

/** What the guard and the bearer check are configured with. */
export interface GuardOptions {
  /** When set, `/api/v1/*` requires `Authorization: Bearer <token>`. */
  readonly apiToken?: Redacted.Redacted<string> | undefined
  /** The largest body accepted, in bytes. Default 1 MiB (1_048_576). */
  readonly maxBodyBytes?: number | undefined
  /** This instance's identity, sent in the `x-cache-instance` header of every answer. */
  readonly instanceId?: string | undefined
}

/** The default body limit: 1 MiB. */
export const defaultMaxBodyBytes = 1_048_576

/** Requests answered, by method and status. */
const httpRequests = Metric.counter("cache_http_requests_total", {
  description: "HTTP requests answered by the REST API, by method and status",
  incremental: true
})

// -----------------------------------------------------------------------------
// The bearer token
// -----------------------------------------------------------------------------

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest()

const digestOf = (token: Redacted.Redacted<string> | undefined) =>
  token === undefined ? undefined : sha256(Redacted.value(token))

/** The one token check, in constant time: SHA-256 digests have equal length whatever the input. */
const tokenMatches = (expected: Buffer, given: string): boolean => timingSafeEqual(sha256(given), expected)

/** Whether an `Authorization` header carries the expected bearer token. */
const headerMatches = (expected: Buffer, header: string | undefined): boolean => {
  if (header === undefined) return false
  // As Effect's own bearer decoding: scheme case-insensitive, then one or more spaces.
  const match = /^bearer +(.+)$/is.exec(header)
  return match !== null && tokenMatches(expected, match[1]!)
}

/** The bearer check of the `Authorization` middleware (the guard checks earlier too, before any body is read). */
export const layerAuthorization = (options: GuardOptions = {}): Layer.Layer<Authorization> => {
  const expected = digestOf(options.apiToken)
  return Layer.succeed(
    Authorization,
    Authorization.of({
      bearer: (httpEffect, { credential }) =>
        expected === undefined || tokenMatches(expected, Redacted.value(credential))
          ? httpEffect
          : Effect.fail(new Unauthorized({ error: "unauthorized", message: "missing or wrong bearer token" }))
    })
  )
}

// -----------------------------------------------------------------------------
// Request-decoding failures
// -----------------------------------------------------------------------------

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const pathSegment = (p: unknown): string => {
  const segment = String(typeof p === "object" && p !== null && "key" in p ? p.key : p)
  return segment.length > 60 ? `${segment.slice(0, 60)}…` : segment
}

/** A schema failure of the request as one line: `payload.ttl: Expected …; …`. */
const describeSchemaError = (error: HttpApiError.HttpApiSchemaError): string => {
  const slot = error.kind === "Params" ? "path" : error.kind.toLowerCase()
  try {
    const issues = formatIssues(error.cause.issue).issues
    if (issues.length === 0) return `invalid ${slot}`
    return issues
      .slice(0, 5)
      .map((issue) => {
        const path = (issue.path ?? []).map(pathSegment).join(".")
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
            ? new BadRequest({ error: "invalid_json", message: "the body is not valid JSON" })
            : new BadRequest({ error: "invalid_request", message: describeSchemaError(error) })
        )
)

// -----------------------------------------------------------------------------
// Paths and methods
// -----------------------------------------------------------------------------

const apiPrefix = "/api/v1/"
const entryPrefix = "/api/v1/cache/"

const isApiPath = (path: string) => path.startsWith(apiPrefix) || path === "/api/v1"

const isEntryPath = (path: string) => path.startsWith(entryPrefix) && path.indexOf("/", entryPrefix.length) === -1

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

const hasBody = (method: string) => method === "PUT" || method === "POST" || method === "PATCH"

const knownMethods = new Set(["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"])
const methodOrder = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

/** A declared route: its path split at `/`, a `:param` segment as undefined (it matches any one segment). */
interface DeclaredRoute {
  readonly method: string
  readonly segments: ReadonlyArray<string | undefined>
}

const declared = (method: string, path: string): DeclaredRoute => ({
  method,
  segments: path.split("/").map((segment) => (segment.startsWith(":") ? undefined : segment))
})

const matches = (route: DeclaredRoute, segments: ReadonlyArray<string>) =>
  route.segments.length === segments.length &&
  route.segments.every((segment, i) => segment === undefined || segment === segments[i])

/**
 * The methods each path answers, from the endpoints `CacheApi` declares plus the OpenAPI document and the docs
 * page (HEAD wherever GET is); undefined when the path names nothing. `/api/v1/cache/warm` also answers the entry
 * methods, as the router matches it as `/:key` too.
 */
const makeAllowedMethods = (): ((path: string) => string | undefined) => {
  const routes = [declared("GET", openApiPath), declared("GET", docsPath)]
  HttpApi.reflect(CacheApi, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => void routes.push(declared(endpoint.method, endpoint.path))
  })
  return (path) => {
    const segments = path.split("/")
    const methods = new Set<string>()
    for (const route of routes) {
      if (!matches(route, segments)) continue
      methods.add(route.method)
      if (route.method === "GET") methods.add("HEAD")
    }
    return methods.size === 0 ? undefined : methodOrder.filter((method) => methods.has(method)).join(", ")
  }
}

// -----------------------------------------------------------------------------
// Error answers
// -----------------------------------------------------------------------------

const errorResponse = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.jsonUnsafe({ error, message }, { status, ...(headers === undefined ? {} : { headers }) })

const statusCodes: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  408: "request_timeout",
  413: "payload_too_large",
  415: "unsupported_media_type",
  426: "upgrade_required",
  431: "headers_too_large",
  503: "service_unavailable"
}

const codeOf = (status: number): string => statusCodes[status] ?? (status >= 500 ? "internal_error" : "client_error")

/** The answer to anything that failed below the guard, or undefined when it is not a known failure. */
const fromCause = (
  cause: Cause.Cause<unknown>,
  request: HttpServerRequest.HttpServerRequest,
  path: string,
  allowedMethods: (path: string) => string | undefined
) => {
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

// -----------------------------------------------------------------------------
// Checks before a route runs
// -----------------------------------------------------------------------------

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

/**
 * The key of a GET the entry route answers (the path as the router matches it, percent-decoded as its `:key`), or
 * undefined for a path another route answers (`/api/v1/cache/stats`) or that the precheck has not vetted.
 */
const plainEntryKey = (path: string): string | undefined => {
  const collapsed = collapseSlashes(path)
  if (!isEntryPath(collapsed)) return undefined
  let key: string
  try {
    key = decodeURIComponent(collapsed.slice(entryPrefix.length))
  } catch {
    return undefined
  }
  return key === "stats" ? undefined : key
}

const tooLarge = (maxBodyBytes: number) =>
  errorResponse(413, "payload_too_large", `the body is larger than ${maxBodyBytes} bytes`)

/** 413 when the declared length is over the limit (or not a number). */
const declaredTooLarge = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) => {
  const length = request.headers["content-length"]
  if (length === undefined) return undefined
  const bytes = Number(length)
  return Number.isFinite(bytes) && bytes <= maxBodyBytes ? undefined : tooLarge(maxBodyBytes)
}

/** The answer to a request refused before its body is read, or undefined to go on. */
const precheck = (
  request: HttpServerRequest.HttpServerRequest,
  path: string,
  expected: Buffer | undefined,
  maxBodyBytes: number
) => {
  // RFC 9112 §3.2: a request without Host is refused (Node's own check would answer an empty 400).
  if (request.headers.host === undefined) return errorResponse(400, "bad_request", "the Host header is missing")
  // Only origin-form targets name a resource here (`*` and absolute URLs are for OPTIONS and proxies).
  if (!path.startsWith("/")) return errorResponse(400, "bad_request", "the request target must be a path")
  // Decided on the path as the router will match it, so `//api/v1/…` or `/%61pi/v1/…` get no way around the token
  // (the API's Authorization middleware checks it again on every endpoint it guards, wherever the path led).
  if (!isApiPath(routedPath(path))) return declaredTooLarge(request, maxBodyBytes)
  if (expected !== undefined && !headerMatches(expected, request.headers.authorization)) {
    return errorResponse(401, "unauthorized", "missing or wrong bearer token", {
      "www-authenticate": 'Bearer realm="embedded-cache"'
    })
  }
  const collapsed = collapseSlashes(path)
  if (isEntryPath(collapsed)) {
    const problem = entryKeyProblem(collapsed.slice(entryPrefix.length))
    if (problem !== undefined) return errorResponse(400, "invalid_key", problem)
  }
  const declared = declaredTooLarge(request, maxBodyBytes)
  if (declared !== undefined) return declared
  if (hasBody(request.method) && !isJsonContentType(request.headers["content-type"])) {
    return errorResponse(415, "unsupported_media_type", "the body must be application/json (UTF-8)")
  }
  return undefined
}

/** Reads the body (cached on the request for the route) and answers why it cannot be used, if it cannot. */
const readBody = (request: HttpServerRequest.HttpServerRequest, maxBodyBytes: number) =>
  request.arrayBuffer.pipe(
    Effect.match({
      onFailure: (error) =>
        error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge"
          ? tooLarge(maxBodyBytes)
          : errorResponse(400, "bad_request", "the request body could not be read"),
      onSuccess: (bytes) =>
        isUtf8(new Uint8Array(bytes)) ? undefined : errorResponse(400, "invalid_json", "the body is not valid UTF-8")
    })
  )

// -----------------------------------------------------------------------------
// The guard
// -----------------------------------------------------------------------------

/**
 * The global middleware of the API. Before a route runs it answers 400 (no Host), 401 (token, on `/api/v1/*`), 400 (a
 * key the path cannot carry), 413 (a declared length over the limit) and 415 (a body that is not JSON); then it reads
 * a body within the limit (413 past it, without buffering more) and refuses one that is not UTF-8 (400) — the routes
 * parse the same cached bytes. Whatever fails below it, error or defect, and every error response Effect renders
 * empty or as text, becomes JSON `{error, message}`.
 */
export const layerGuard = <R = never>(
  options: GuardOptions = {},
  entryAnswer?: Effect.Effect<(key: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>, never, R>
) => {
  const expected = digestOf(options.apiToken)
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes
  const bodyLimit = ByteSize.bytes(maxBodyBytes)
  const allowedMethods = makeAllowedMethods()
  /** The counter of each method and status, made once: attributes cost a key and a lookup per update otherwise. */
  const counters = new Map<string, typeof httpRequests>()
  const counted = (method: string, status: number) => {
    const name = `${method} ${status}`
    const known = counters.get(name)
    if (known !== undefined) return known
    const counter = Metric.withAttributes(httpRequests, { method, status: String(status) })
    counters.set(name, counter)
    return counter
  }

  const recover = (request: HttpServerRequest.HttpServerRequest, path: string) => (cause: Cause.Cause<unknown>) => {
    if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
    const mapped = fromCause(cause, request, path, allowedMethods)
    if (mapped !== undefined) return Effect.succeed(mapped)
    return Effect.as(
      Effect.logError("request failed unexpectedly", cause),
      errorResponse(500, "internal_error", "the server failed to answer this request")
    )
  }

  /** A request with a body: read within the limit (and checked) here, before the route parses the same bytes. */
  const withBody = Effect.fnUntraced(
    function* (
      request: HttpServerRequest.HttpServerRequest,
      path: string,
      httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>
    ) {
      if (isApiPath(routedPath(path))) {
        const unusable = yield* readBody(request, maxBodyBytes)
        if (unusable !== undefined) return unusable
      }
      return yield* httpEffect.pipe(Effect.catchCause(recover(request, path)))
    },
    Effect.provideService(HttpIncomingMessage.MaxBodySize, bodyLimit)
  )

  const answer = (
    request: HttpServerRequest.HttpServerRequest,
    path: string,
    hasQuery: boolean,
    httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>,
    answerEntry: ((key: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>) | undefined
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, unknown> => {
    const early = precheck(request, path, expected, maxBodyBytes)
    if (early !== undefined) return Effect.succeed(early)
    if (hasBody(request.method)) return withBody(request, path, httpEffect)
    // A plain GET of an entry (token and key checked above) is answered without routing it through the endpoint.
    const key = answerEntry === undefined || hasQuery || request.method !== "GET" ? undefined : plainEntryKey(path)
    const run = key === undefined ? httpEffect : answerEntry!(key)
    return Effect.catchCause(run, recover(request, path))
  }

  const middleware = (answerEntry?: (key: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>) =>
    Effect.fnUntraced(function* (httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, unknown>) {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = request.url
      const query = url.indexOf("?")
      const path = query === -1 ? url : url.slice(0, query)
      const response = normalize(yield* answer(request, path, query !== -1, httpEffect, answerEntry))
      yield* Metric.update(counted(knownMethods.has(request.method) ? request.method : "OTHER", response.status), 1)
      return options.instanceId === undefined
        ? response
        : HttpServerResponse.setHeader(response, "x-cache-instance", options.instanceId)
    })

  return HttpRouter.middleware(
    entryAnswer === undefined ? Effect.succeed(middleware()) : Effect.map(entryAnswer, middleware),
    { global: true }
  )
}
