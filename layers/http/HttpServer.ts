/**
 * Serves the REST API (`Routes.ts`) on Node's `node:http`, bound to 127.0.0.1 unless told otherwise. Input
 * Node rejects before the app sees it (a malformed request line, headers over the limit, a request timeout) is
 * answered with JSON `{error, message}` too. When the layer's scope closes the server stops accepting connections,
 * lets the requests in flight finish (up to `gracefulShutdownTimeout`, default 20 s), and only then releases what
 * the handlers use — so a SIGTERM'd `NodeRuntime.runMain(Layer.launch(...))` answers its in-flight requests.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { type Duration, Layer, type Redacted } from "effect"
import { HttpRouter, type HttpServer, type HttpServerError } from "effect/http"
import type { Cache } from "../../effects/Cache.ts"
import type { Stats } from "../../effects/Stats.ts"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { Duplex } from "node:stream"
import type { Readiness } from "./Readiness.ts"
import * as Routes from "./Routes.ts"

/** Where and how to serve. */
export interface HttpServerOptions {
  /** Interface to bind (`CACHE_HTTP_HOST`). Default 127.0.0.1: only this machine can connect. */
  readonly host?: string | undefined
  /** Port to bind; 0 picks a free one (`CACHE_HTTP_PORT`). Default 8080. */
  readonly port?: number | undefined
  /** When set, `/api/v1/*` requires `Authorization: Bearer <token>` (`CACHE_API_TOKEN`). */
  readonly apiToken?: Redacted.Redacted<string> | undefined
  /** The largest request body in bytes; larger ones get 413 before they are read. Default 1 MiB. */
  readonly maxBodyBytes?: number | undefined
  /** This instance's identity, sent back in the `x-cache-instance` header. */
  readonly instanceId: string
  /** The configured data source's name, accepted by `/warm` besides `"default"` (e.g. `"http"`). */
  readonly sourceName?: string | undefined
  /**
   * Log one line per request (Effect's HTTP logger). Default false: an access log costs CPU and output on every
   * request, health probes included (`serve` turns it on with `CACHE_ACCESS_LOG=true`). The bound address is not
   * logged here: the caller says it in its own startup line (`HttpServer.HttpServer` has it).
   */
  readonly logRequests?: boolean | undefined
  /** How long closing waits for requests in flight before giving up on them. Default 20 s. */
  readonly gracefulShutdownTimeout?: Duration.Input | undefined
}

/** The status and body Node's own parser errors are answered with. */
const clientErrorStatus = (code: string | undefined): readonly [number, string, string] => {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return [431, "headers_too_large", "the request line and headers are larger than the server accepts"]
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [408, "request_timeout", "the request was not received in time"]
    default:
      return [400, "bad_request", "the request is not valid HTTP"]
  }
}

const statusText: Record<number, string> = {
  400: "Bad Request",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  431: "Request Header Fields Too Large"
}

/** A whole HTTP/1.1 answer with a JSON body, for a socket Node has taken away from the request pipeline. */
const rawResponse = (status: number, body: string) =>
  `HTTP/1.1 ${status} ${statusText[status]}\r\ncontent-type: application/json\r\n` +
  `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`

/**
 * A `node:http` server whose protocol-level rejections are JSON like every other error of the API, and which, once
 * closing, answers each request still in flight with `connection: close` and drops idle keep-alive connections, so
 * `close` completes when the last in-flight answer is sent rather than when clients' idle connections time out.
 */
export const makeNodeServer = (): Server => {
  // Host is checked by the API's guard instead, so that its absence is answered in JSON too.
  const server = createServer({ requireHostHeader: false })
  const inFlight = new Set<ServerResponse>()
  let closing = false
  const track = (_request: unknown, response: ServerResponse) => {
    if (closing) response.shouldKeepAlive = false
    inFlight.add(response)
    response.once("close", () => {
      inFlight.delete(response)
      if (closing) setImmediate(() => server.closeIdleConnections())
    })
  }
  server.on("request", track)
  server.on("checkContinue", track)
  const close = server.close.bind(server)
  server.close = (callback?: (error?: Error) => void) => {
    closing = true
    for (const response of inFlight) if (!response.headersSent) response.shouldKeepAlive = false
    close(callback)
    server.closeIdleConnections()
    return server
  }
  server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => {
    // As Node's default: no answer on a dead socket, nor into a response already under way on it.
    const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (error.code === "ECONNRESET" || !socket.writable || current?.headersSent === true) {
      socket.destroy()
      return
    }
    const [status, code, message] = clientErrorStatus(error.code)
    const body = JSON.stringify({ error: code, message })
    socket.end(rawResponse(status, body))
  })
  // CONNECT (a proxy request) would otherwise close the connection without an answer.
  server.on("connect", (_request, socket: Duplex) => {
    socket.on("error", () => socket.destroy())
    socket.end(rawResponse(405, JSON.stringify({ error: "method_not_allowed", message: "CONNECT is not served" })))
  })
  // The platform answers a non-WebSocket upgrade request whose body has a Transfer-Encoding (it can only frame a body
  // by Content-Length there) with an empty 411: the same status, in JSON, before the platform sees it.
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: Array<unknown>) => boolean
  server.emit = ((event: string | symbol, ...args: Array<unknown>) => {
    if (event === "upgrade") {
      const [request, socket] = args as [IncomingMessage, Duplex]
      const protocol = request.headers.upgrade?.toLowerCase()
      if (request.headers["transfer-encoding"] !== undefined && protocol !== undefined && protocol !== "websocket") {
        socket.on("error", () => socket.destroy())
        const message = "an upgrade request's body must be framed by Content-Length"
        socket.end(rawResponse(411, JSON.stringify({ error: "length_required", message })))
        return true
      }
    }
    return emit(event, ...args)
  }) as typeof server.emit
  // An Expect other than 100-continue would otherwise get Node's empty 417.
  server.on("checkExpectation", (_request, response: ServerResponse) => {
    const body = JSON.stringify({ error: "expectation_failed", message: "only Expect: 100-continue is supported" })
    response.writeHead(417, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    response.end(body)
  })
  return server
}

/**
 * The API served on `host:port`, with the `HttpServer` (its bound address) as output. Needs `Cache`, `Stats`
 * and `Readiness` (and `CacheStore` through them, depending on the layers given); loads through the `InstanceSource`
 * when one is provided (`?load=true` and `/warm`; without one those answer 503).
 */
export const layer = (
  options: HttpServerOptions
): Layer.Layer<HttpServer.HttpServer, HttpServerError.ServeError, Cache | Stats | Readiness> =>
  HttpRouter.serve(Routes.layerRoutes(options), {
    // Keys are at most 512 bytes; the guard refuses longer ones before routing, with a 400 rather than a 404.
    routerConfig: { maxParamLength: 2048 },
    disableLogger: options.logRequests !== true,
    disableListenLog: true
  }).pipe(
    Layer.provide(NodeHttpServer.layerHttpServices),
    Layer.provideMerge(
      NodeHttpServer.layerServer(makeNodeServer, {
        host: options.host ?? "127.0.0.1",
        port: options.port ?? 8080,
        gracefulShutdownTimeout: options.gracefulShutdownTimeout
      })
    )
  )
