/**
 * A tiny client for the REST API tests: Node's `fetch` against the `HttpServer` in context, answers with their status,
 * text and parsed JSON. The server layers here are the API on the memory store (or on a given cache) with its
 * `CacheStore` left in the output, so a test can write what another tool would have written.
 */
import { Effect, Layer, Option } from "effect"
import { HttpServer } from "effect/http"
import type { Cache } from "../../../effects/Cache.ts"
import * as Stats from "../../../effects/Stats.ts"
import * as CacheLayers from "../../../layers/CacheLayers.ts"
import * as HttpServerLayer from "../../../layers/http/HttpServer.ts"
import * as Readiness from "../../../layers/http/Readiness.ts"
import type { CacheStore } from "../../../src/CacheStore.ts"
import { type DataSourceShape, InstanceSource } from "../../../src/DataSource.ts"

/** An answer of the server. */
export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** The body parsed as JSON, or undefined when it is not JSON. */
  readonly json: any
}

/** The base URL of the server in context. */
export const baseUrl = Effect.map(Effect.service(HttpServer.HttpServer), (server) =>
  HttpServer.formatAddress(server.address)
)

/** What a request sends besides its method and path. */
export interface Call {
  /** A body encoded as JSON. */
  readonly body?: unknown
  /** A body sent as it is (no JSON encoding). */
  readonly raw?: string | Uint8Array | ReadableStream<Uint8Array> | undefined
  /** Headers, over the JSON content type a body gets. */
  readonly headers?: Record<string, string>
  /** Sent as a bearer token. */
  readonly token?: string
}

/** Sends `method path` with `call`'s body, headers and token, without following redirects. */
export const request = (
  method: string,
  path: string,
  call: Call = {}
): Effect.Effect<Answer, never, HttpServer.HttpServer> =>
  Effect.flatMap(baseUrl, (base) =>
    Effect.promise(async () => {
      const headers: Record<string, string> = {}
      if (call.body !== undefined || call.raw !== undefined) headers["content-type"] = "application/json"
      if (call.token !== undefined) headers.authorization = `Bearer ${call.token}`
      Object.assign(headers, call.headers)
      const init: RequestInit & { duplex?: "half" } = { method, headers, redirect: "manual" }
      if (call.raw !== undefined) {
        init.body = call.raw as BodyInit
        if (call.raw instanceof ReadableStream) init.duplex = "half"
      } else if (call.body !== undefined) init.body = JSON.stringify(call.body)
      const response = await fetch(base + path, init)
      const text = await response.text()
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: response.status, headers: response.headers, text, json }
    })
  )

/** Sends `method path` with `body` as JSON (when given), without following redirects. */
export const send = (
  method: string,
  path: string,
  body?: unknown
): Effect.Effect<Answer, never, HttpServer.HttpServer> => request(method, path, body === undefined ? {} : { body })

/** The path of `key`'s entry, percent-encoded. */
export const entryPath = (key: string) => `/api/v1/cache/${encodeURIComponent(key)}`

/** The data source the API loads through, and the name `/warm` knows it by. */
export interface NamedSource {
  readonly name: string
  readonly source: DataSourceShape
}

/** The API on `cache` (a `Cache` over a `CacheStore`), with `Cache` and `CacheStore` in the output too. */
export const serverOn = (cache: Layer.Layer<Cache | CacheStore>, source?: NamedSource) =>
  HttpServerLayer.layer({
    host: "127.0.0.1",
    port: 0,
    logRequests: false,
    instanceId: "rest-test",
    sourceName: source?.name
  }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(Stats.layer({ instanceId: "rest-test" }), Readiness.layerAlwaysReady).pipe(
        Layer.provideMerge(cache)
      )
    ),
    Layer.provide(Layer.succeed(InstanceSource, Option.fromNullishOr(source?.source)))
  ) as Layer.Layer<HttpServer.HttpServer | Cache | CacheStore>

/** The API on the memory store, `sourceName` naming `source`, with `Cache` and `CacheStore` in the output too. */
export const memoryServer = (source?: NamedSource) => serverOn(CacheLayers.layerMemory(), source)
