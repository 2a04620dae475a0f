/**
 * A `DataSource` over HTTP: `GET` a URL template with the key URL-encoded into `{key}`; 200 is the value (its JSON,
 * or its text when the body is not JSON), 404 is a miss, anything else a `LoadError` naming the status. Each
 * attempt has a timeout; network errors, timeouts and 5xx are retried with exponential backoff (4xx never are);
 * one semaphore bounds the requests in flight across `load` and `loadMany`. With a `batchUrl`, `loadMany` asks for
 * many keys per request (`{keys}` = the keys, URL-encoded, comma-separated; the answer a JSON object key → value).
 */
import { NodeHttpClient } from "@effect/platform-node"
import { Config, Duration, Effect, Layer, Option, Schedule, Schema, Semaphore } from "effect"
import { HttpClient, type HttpClientError } from "effect/http"
import { DataSource, type DataSourceShape, InvalidSourceOptionsError, LoadError } from "../../src/DataSource.ts"

/** How to reach the source. */
export interface HttpDataSourceOptions {
  /** The URL of one key, containing `{key}` (replaced by the URL-encoded key), e.g. `http://api/items/{key}`. */
  readonly urlTemplate: string
  /** Timeout of one attempt (not counting the wait for a slot under `concurrency`). Default 2 s. */
  readonly timeout?: Duration.Input | undefined
  /** Retries after a network error, a timeout or a 5xx; backoff doubles from 50 ms. Default 2. */
  readonly retries?: number | undefined
  /** Requests in flight at most, `load` and `loadMany` together. Default 16. */
  readonly concurrency?: number | undefined
  /** Headers sent with every request (an authorization header, say). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /**
   * The URL of a batch, containing `{keys}`, e.g. `http://api/items?keys={keys}`, answering a JSON object
   * key → value (a key absent from it is missing). Without it `loadMany` makes one request per key.
   */
  readonly batchUrl?: string | undefined
  /** Keys per batch request (bounds the URL's length). Default 100. */
  readonly batchSize?: number | undefined
}

/** Why one attempt failed, and whether trying again could help. */
class AttemptFailed {
  readonly retryable: boolean
  readonly message: string
  readonly cause: unknown
  constructor(retryable: boolean, message: string, cause?: unknown) {
    this.retryable = retryable
    this.message = message
    this.cause = cause
  }
}

/** The answer of one request, read whole. */
interface Answer {
  readonly status: number
  readonly contentType: string | undefined
  readonly body: string
}

const checkTemplate = (option: string, template: string, placeholder: string) => {
  const invalid = (message: string) => new InvalidSourceOptionsError({ option, message })
  if (!template.includes(placeholder)) return invalid(`${option} must contain ${placeholder}: ${template}`)
  let url: URL
  try {
    url = new URL(template.replaceAll(placeholder, "x"))
  } catch {
    return invalid(`${option} is not a URL: ${template}`)
  }
  return url.protocol === "http:" || url.protocol === "https:"
    ? undefined
    : invalid(`${option} must be an http or https URL: ${template}`)
}

const checkCount = (option: string, value: number, minimum: number) =>
  Number.isInteger(value) && value >= minimum
    ? undefined
    : new InvalidSourceOptionsError({ option, message: `${option} must be an integer ≥ ${minimum}, got ${value}` })

/** The value of a 200 body: its JSON, or its text when it is not JSON (or is declared as non-JSON text). */
const bodyValue = (answer: Answer): unknown => {
  const type = answer.contentType?.toLowerCase()
  if (type !== undefined && type.startsWith("text/") && !type.includes("json")) return answer.body
  try {
    return JSON.parse(answer.body)
  } catch {
    return answer.body
  }
}

const snippet = (body: string) => {
  const text = body.trim()
  return text.length === 0 ? "" : `: ${text.length > 200 ? `${text.slice(0, 200)}…` : text}`
}

/** The HTTP status, or the transport failure, as an attempt's outcome. */
const transportFailure = (error: HttpClientError.HttpClientError): AttemptFailed => {
  const reason = error.reason._tag
  // A request that cannot be built or addressed fails the same way every time.
  const retryable = reason !== "EncodeError" && reason !== "InvalidUrlError"
  return new AttemptFailed(retryable, error.message, error)
}

/** The options with their defaults, or the first one that cannot work. */
const settingsOf = (options: HttpDataSourceOptions) => {
  const retries = options.retries ?? 2
  const concurrency = options.concurrency ?? 16
  const batchSize = options.batchSize ?? 100
  const timeoutMs = Duration.toMillis(options.timeout ?? "2 seconds")
  const invalid =
    checkTemplate("urlTemplate", options.urlTemplate, "{key}") ??
    (options.batchUrl === undefined ? undefined : checkTemplate("batchUrl", options.batchUrl, "{keys}")) ??
    checkCount("retries", retries, 0) ??
    checkCount("concurrency", concurrency, 1) ??
    checkCount("batchSize", batchSize, 1) ??
    (timeoutMs > 0
      ? undefined
      : new InvalidSourceOptionsError({ option: "timeout", message: "timeout must be longer than zero" }))
  return invalid !== undefined ? Effect.fail(invalid) : Effect.succeed({ retries, concurrency, batchSize, timeoutMs })
}

/** The values a batch answer holds for `keys`, or why it holds none (a 404 holds none and is no failure). */
const batchValues = (answer: Answer, keys: ReadonlyArray<string>): ReadonlyMap<string, unknown> | string => {
  if (answer.status === 404) return new Map<string, unknown>()
  if (answer.status !== 200) return `answered status ${answer.status}${snippet(answer.body)}`
  let body: unknown
  try {
    body = JSON.parse(answer.body)
  } catch {
    return "answered a body that is not JSON"
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return "answered JSON that is not an object of key → value"
  }
  const found = new Map<string, unknown>()
  for (const key of keys) if (Object.hasOwn(body, key)) found.set(key, (body as Record<string, unknown>)[key])
  return found
}

/**
 * Builds the source over the `HttpClient` in context, refusing options that cannot work (a template without its
 * placeholder, a non-http URL, a concurrency below 1).
 */
export const make: (
  options: HttpDataSourceOptions
) => Effect.Effect<DataSourceShape, InvalidSourceOptionsError, HttpClient.HttpClient> = Effect.fn(
  "HttpDataSource.make"
)(function* (options: HttpDataSourceOptions) {
  const { retries, concurrency, batchSize, timeoutMs } = yield* settingsOf(options)

  const client = yield* HttpClient.HttpClient
  const slots = yield* Semaphore.make(concurrency)
  const headers = options.headers ?? {}
  const backoff = Schedule.exponential("50 millis", 2).pipe(Schedule.jittered)

  /** One attempt: a slot, the request, the whole body, within the timeout. */
  const attempt = (url: string): Effect.Effect<Answer, AttemptFailed> =>
    client.get(url, { headers }).pipe(
      Effect.flatMap((response) =>
        Effect.map(response.text, (body): Answer => ({
          status: response.status,
          contentType: response.headers["content-type"],
          body
        }))
      ),
      Effect.mapError(transportFailure),
      Effect.timeoutOrElse({
        duration: timeoutMs,
        orElse: () => Effect.fail(new AttemptFailed(true, `no answer within ${timeoutMs} ms`))
      }),
      Effect.flatMap((answer) =>
        answer.status >= 500
          ? Effect.fail(new AttemptFailed(true, `status ${answer.status}${snippet(answer.body)}`))
          : Effect.succeed(answer)
      ),
      slots.withPermits(1)
    )

  /** A request with retries; a failure that remains becomes a `LoadError` about `key`. */
  const request = (url: string, key: string, what: string): Effect.Effect<Answer, LoadError> =>
    attempt(url).pipe(
      Effect.retry({ schedule: backoff, times: retries, while: (failure) => failure.retryable }),
      Effect.mapError(
        (failure) => new LoadError({ key, message: `GET ${what} failed: ${failure.message}`, cause: failure.cause })
      )
    )

  const urlOf = (key: string) => options.urlTemplate.replaceAll("{key}", encodeURIComponent(key))

  const load = (key: string): Effect.Effect<Option.Option<unknown>, LoadError> =>
    Effect.flatMap(request(urlOf(key), key, urlOf(key)), (answer) => {
      if (answer.status === 200) return Effect.succeed(Option.some(bodyValue(answer)))
      if (answer.status === 404) return Effect.succeed(Option.none())
      return Effect.fail(
        new LoadError({ key, message: `GET ${urlOf(key)} answered status ${answer.status}${snippet(answer.body)}` })
      )
    })

  const loadBatch = (batchUrl: string, keys: ReadonlyArray<string>) => {
    const url = batchUrl.replaceAll("{keys}", keys.map(encodeURIComponent).join(","))
    const label = keys.length === 1 ? keys[0]! : `${keys[0]!} (and ${keys.length - 1} more)`
    return Effect.flatMap(request(url, label, url), (answer) => {
      const values = batchValues(answer, keys)
      return typeof values === "string"
        ? Effect.fail(new LoadError({ key: label, message: `GET ${url} ${values}` }))
        : Effect.succeed(values)
    })
  }

  const loadMany = (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, unknown>, LoadError> => {
    const unique = [...new Set(keys)]
    if (options.batchUrl !== undefined) {
      const batchUrl = options.batchUrl
      const chunks: Array<ReadonlyArray<string>> = []
      for (let i = 0; i < unique.length; i += batchSize) chunks.push(unique.slice(i, i + batchSize))
      return Effect.map(
        Effect.forEach(chunks, (chunk) => loadBatch(batchUrl, chunk), { concurrency }),
        (maps) => new Map(maps.flatMap((map) => [...map]))
      )
    }
    return Effect.map(
      Effect.forEach(unique, (key) => Effect.map(load(key), (value) => [key, value] as const), { concurrency }),
      (loaded) => {
        const found = new Map<string, unknown>()
        for (const [key, value] of loaded) if (Option.isSome(value)) found.set(key, value.value)
        return found
      }
    )
  }

  return { load, loadMany, keys: undefined }
})

/** The source over HTTP with Node's undici client, whose connections close with the layer. */
export const layer = (options: HttpDataSourceOptions): Layer.Layer<DataSource, InvalidSourceOptionsError> =>
  Layer.effect(DataSource, make(options)).pipe(Layer.provide(NodeHttpClient.layerUndici))

const PositiveInt = Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1)))

/** The source's settings from the environment: `CACHE_SOURCE_URL`, `CACHE_SOURCE_ATTEMPT_TIMEOUT_MS` (per attempt; `CACHE_SOURCE_TIMEOUT_MS` is the cache's hard timeout of a whole load), `CACHE_SOURCE_CONCURRENCY`. */
export const HttpSourceConfig = Config.all({
  urlTemplate: Config.NonEmptyString("CACHE_SOURCE_URL"),
  timeoutMs: Config.option(Config.schema(PositiveInt, "CACHE_SOURCE_ATTEMPT_TIMEOUT_MS")),
  concurrency: Config.option(Config.schema(PositiveInt, "CACHE_SOURCE_CONCURRENCY"))
})

/** The source configured from the environment (see `HttpSourceConfig`). */
export const layerConfig: Layer.Layer<DataSource, Config.ConfigError | InvalidSourceOptionsError> = Layer.unwrap(
  Effect.map(HttpSourceConfig, (config) =>
    layer({
      urlTemplate: config.urlTemplate,
      timeout: Option.getOrUndefined(config.timeoutMs),
      concurrency: Option.getOrUndefined(config.concurrency)
    })
  )
)
