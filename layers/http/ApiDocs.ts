/**
 * The OpenAPI documentation of the REST API beyond what its schemas say: a summary and examples for each operation
 * (path parameters, request body and success answer, as the `example`s Swagger's try-it-out fills in), and a pass
 * over the whole document that renders numbers as plain JSON Schema numbers. The examples agree with each other: the
 * PUT example writes `user:1`, and the GET example reads that same entry back.
 */
import { OpenApi } from "effect/http-api"

/** The key every entry example uses. */
export const exampleKey = "user:1"

/** The body of the PUT example, which the GET example answers. */
export const examplePutBody = { value: { name: "ada" }, ttl: 600 }

/** What an operation's documentation holds besides its schemas. */
export interface OperationDocs {
  /** One line for the operation list. */
  readonly summary: string
  /** More detail, when the summary is not enough. */
  readonly description?: string | undefined
  /** An example value per parameter name (path or query). */
  readonly parameters?: Readonly<Record<string, unknown>> | undefined
  /** An example request body. */
  readonly request?: unknown
  /** An example success answer. */
  readonly response: unknown
}

type Json = Record<string, any>

/** Sets `example` on every media type of `content`. */
const setExample = (content: Json | undefined, example: unknown): void => {
  if (content === undefined) return
  for (const mediaType of Object.values(content)) (mediaType as Json).example = example
}

/** The operation with the examples of `docs`: parameters, request body, and the first 2xx answer. */
const withExamples =
  (docs: OperationDocs) =>
  (operation: Json): Json => {
    for (const parameter of (operation.parameters ?? []) as Array<Json>) {
      const example = docs.parameters?.[parameter.name]
      if (example !== undefined) parameter.example = example
    }
    if (docs.request !== undefined) setExample(operation.requestBody?.content, docs.request)
    const success = Object.keys(operation.responses ?? {}).find((status) => status.startsWith("2"))
    if (success !== undefined) setExample(operation.responses[success].content, docs.response)
    return operation
  }

/** The annotations documenting one endpoint: its summary, description and examples. */
export const operation = (docs: OperationDocs) =>
  OpenApi.annotations({ summary: docs.summary, description: docs.description, transform: withExamples(docs) })

// -----------------------------------------------------------------------------
// The operations
// -----------------------------------------------------------------------------

const keyParameter = { key: exampleKey }

/** The documentation of every endpoint of `CacheApi`, by endpoint name. */
export const operations = {
  index: operation({
    summary: "Where the docs, the OpenAPI document, the API and the probes are",
    response: {
      name: "embedded-cache",
      docs: "/docs",
      openapi: "/openapi.json",
      api: "/api/v1/cache",
      health: "/healthz",
      ready: "/readyz",
      metrics: "/metrics"
    }
  }),
  stats: operation({
    summary: "This instance's statistics",
    description:
      "The seed's fields first (the example shows only those), then store health, latency, counters, alerts.",
    response: {
      instance_id: "web-1",
      total_keys: 1204,
      memory_used: 2_097_152,
      memory_limit: 268_435_456,
      memory_usage_percent: 0.78,
      hits: 9120,
      misses: 880,
      hit_rate: 0.912,
      evictions: 0,
      operations_per_second: 41.5,
      uptime_seconds: 3600
    }
  }),
  invalidate: operation({
    summary: "Invalidate entries by key, pattern or tags, here and on the bus's peers",
    description:
      'Bodies: {"invalidation_type": "key", "key"}, {"invalidation_type": "pattern", "pattern"} (a pattern ' +
      'matching everything needs "all": true) or {"invalidation_type": "tag", "tags"}.',
    request: { invalidation_type: "key", key: exampleKey },
    response: { key: exampleKey, keys_invalidated: 1, status: "success" }
  }),
  warm: operation({
    summary: "Load keys (or a pattern's keys) from the data source into the cache",
    description:
      'source: "database" (the seed\'s word), "default" or the configured source\'s name — all mean the ' +
      'configured source. mode: "missing" (default) loads only absent keys, "refresh" reloads present ones too.',
    request: { keys: [exampleKey, "user:2"], source: "database", ttl: 600 },
    response: { keys_warmed: 2, failed: 0, missing: 0, status: "success", total: 2, already_cached: 0, duration_ms: 3 }
  }),
  getEntry: operation({
    summary: "Read an entry; with ?load=true a miss is loaded from the data source",
    description:
      "A string entry answers the JSON value it was written with; a miss is 404 {key, hit: false}. With " +
      "?load=true, a key the source does not have is 404 too (remembered for CACHE_NEGATIVE_TTL); when the source " +
      'fails or is slow and fail-safe holds the last good value, that value answers with "stale": true, ttl 0 and ' +
      'the header Warning: 110 - "Response is Stale"; a load past CACHE_SOURCE_TIMEOUT_MS is 503 source_timeout.',
    parameters: keyParameter,
    response: { key: exampleKey, value: examplePutBody.value, ttl: examplePutBody.ttl, data_type: "string", hit: true }
  }),
  putEntry: operation({
    summary: "Write an entry (ttl in seconds, -1 for no expiry; omitted: the default TTL)",
    parameters: keyParameter,
    request: examplePutBody,
    response: { key: exampleKey, status: "set", ttl: examplePutBody.ttl }
  }),
  deleteEntry: operation({
    summary: "Delete an entry, here and on the bus's peers",
    parameters: keyParameter,
    response: { key: exampleKey, status: "deleted" }
  }),
  healthz: operation({ summary: "Liveness: the process answers", response: { status: "ok" } }),
  readyz: operation({
    summary: "Readiness: warmed up and the store is reachable (503 otherwise)",
    response: { status: "ready" }
  }),
  metrics: operation({
    summary: "Prometheus metrics",
    response: "# TYPE cache_hits_total counter\ncache_hits_total 9120\n"
  })
}
