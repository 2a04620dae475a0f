/**
 * HttpDataSource against a real HTTP server on 127.0.0.1 (an OS-chosen port), one per test, whose answers each test
 * scripts. Slow answers are held by the server until the test releases them or the client gives up, so timeouts
 * and the concurrency bound are observed, never slept for.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Fiber, Layer, Option } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as HttpDataSource from "../../../layers/source/HttpDataSource.ts"
import { DataSource } from "../../../src/DataSource.ts"
import * as Poll from "../../utils/Poll.ts"

type Handler = (request: IncomingMessage, response: ServerResponse, arrival: number) => void

/** A scripted server: what it received, what it holds, and how many requests were open at once. */
interface TestServer {
  readonly base: string
  /** Request URLs (path and query, as sent), in arrival order. */
  readonly urls: Array<string>
  readonly headers: Array<IncomingMessage["headers"]>
  /** Responses held open by `hold`, oldest first. */
  readonly held: Array<ServerResponse>
  /** Held requests the client abandoned (closed the connection) before an answer. */
  readonly abandoned: () => number
  readonly maxOpen: () => number
  handle: Handler
}

const send = (response: ServerResponse, status: number, body: string, contentType = "application/json") => {
  response.writeHead(status, { "content-type": contentType })
  response.end(body)
}

/** A handler that holds every response until the test sends it. */
const hold =
  (server: TestServer): Handler =>
  (_request, response) =>
    void server.held.push(response)

/** Starts a server on 127.0.0.1:0; it is closed, with every connection, when the scope closes. */
const startServer = Effect.acquireRelease(
  Effect.callback<{ server: TestServer; close: () => void }>((resume) => {
    let open = 0
    let maxOpen = 0
    let abandoned = 0
    const state: TestServer = {
      base: "",
      urls: [],
      headers: [],
      held: [],
      abandoned: () => abandoned,
      maxOpen: () => maxOpen,
      handle: (_request, response) => send(response, 404, "")
    }
    const http = createServer((request, response) => {
      open++
      maxOpen = Math.max(maxOpen, open)
      response.once("close", () => {
        open--
        if (!response.writableFinished) abandoned++
      })
      state.urls.push(request.url ?? "")
      state.headers.push(request.headers)
      state.handle(request, response, state.urls.length)
    })
    http.listen(0, "127.0.0.1", () => {
      const { port } = http.address() as AddressInfo
      resume(
        Effect.succeed({
          server: Object.assign(state, { base: `http://127.0.0.1:${port}` }),
          close: () => {
            http.closeAllConnections()
            http.close()
          }
        })
      )
    })
  }),
  ({ close }) => Effect.sync(close)
).pipe(Effect.map(({ server }) => server))

/** The source built by the production layer, alive until the test's scope closes. */
const sourceOf = (options: HttpDataSource.HttpDataSourceOptions) =>
  Effect.map(Layer.build(HttpDataSource.layer(options)), (context) => Context.get(context, DataSource))

describe("HttpDataSource.load", () => {
  it.live("answers a 200's JSON body as the value, sending the configured headers", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (request, response) => send(response, 200, JSON.stringify({ id: 1, url: request.url }))
      const source = yield* sourceOf({
        urlTemplate: `${server.base}/items/{key}`,
        headers: { authorization: "Bearer t0ken" }
      })
      assert.deepStrictEqual(yield* source.load("user:1"), Option.some({ id: 1, url: "/items/user%3A1" }))
      assert.strictEqual(server.headers[0]!.authorization, "Bearer t0ken")
    })
  )

  it.live("answers a body that is not JSON (or is declared as text) as its text", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (request, response) =>
        request.url === "/items/plain"
          ? send(response, 200, "123", "text/plain")
          : send(response, 200, "hello, not json", "application/octet-stream")
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}` })
      assert.deepStrictEqual(yield* source.load("plain"), Option.some("123"))
      assert.deepStrictEqual(yield* source.load("other"), Option.some("hello, not json"))
    })
  )

  it.live("answers none for a 404, a miss rather than an error", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (_request, response) => send(response, 404, "not found", "text/plain")
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}` })
      assert.deepStrictEqual(yield* source.load("nope"), Option.none())
      assert.strictEqual(server.urls.length, 1)
    })
  )

  it.live("retries a 5xx and answers the value of the attempt that succeeds", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (_request, response, arrival) =>
        arrival <= 2 ? send(response, 500, "busy") : send(response, 200, '"third time"')
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}`, retries: 2 })
      assert.deepStrictEqual(yield* source.load("k"), Option.some("third time"))
      assert.strictEqual(server.urls.length, 3)
    })
  )

  it.live("retries a dropped connection", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (request, response, arrival) =>
        arrival === 1 ? request.socket.destroy() : send(response, 200, "42")
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}` })
      assert.deepStrictEqual(yield* source.load("k"), Option.some(42))
      assert.strictEqual(server.urls.length, 2)
    })
  )

  it.live("fails with a LoadError naming the status once the retries of a persistent 5xx are spent", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (_request, response) => send(response, 503, "down for maintenance", "text/plain")
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}`, retries: 2 })
      const error = yield* Effect.flip(source.load("k"))
      assert.strictEqual(error._tag, "LoadError")
      assert.strictEqual(error.key, "k")
      assert.include(error.message, "503")
      assert.include(error.message, "down for maintenance")
      assert.strictEqual(server.urls.length, 3)
    })
  )

  it.live("never retries a 4xx other than 404: one request, a LoadError naming the status", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (_request, response) => send(response, 429, "slow down", "text/plain")
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}`, retries: 5 })
      const error = yield* Effect.flip(source.load("k"))
      assert.include(error.message, "429")
      assert.strictEqual(server.urls.length, 1)
    })
  )

  it.live("gives up on an answer slower than the timeout, retries it, then fails with a LoadError", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = hold(server)
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}`, timeout: "100 millis", retries: 1 })
      const error = yield* Effect.flip(source.load("slow"))
      assert.strictEqual(error._tag, "LoadError")
      assert.include(error.message, "no answer within 100 ms")
      assert.strictEqual(server.urls.length, 2)
      // The client abandons each attempt (closes its request) rather than leaving it open.
      yield* Poll.until(
        Effect.sync(() => server.abandoned() === 2),
        {
          timeoutMs: 5000,
          what: "the server saw both attempts abandoned"
        }
      )
    })
  )

  it.live("URL-encodes the key into the template, so any character reaches the server intact", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (request, response) => {
        const [, , segment] = (request.url ?? "").split("/")
        send(response, 200, JSON.stringify(decodeURIComponent(segment!.split("?")[0]!)))
      }
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}?v=1` })
      const key = "a b/c?d=e&f#g%h:é,+"
      assert.deepStrictEqual(yield* source.load(key), Option.some(key))
      assert.strictEqual(server.urls[0], `/items/${encodeURIComponent(key)}?v=1`)
    })
  )
})

describe("HttpDataSource concurrency", () => {
  it.live("keeps at most `concurrency` requests in flight across load and loadMany together", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = hold(server)
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}`, concurrency: 4 })
      const total = 20
      const singles = Effect.forEach(
        Array.from({ length: 10 }, (_, i) => `single:${i}`),
        (key) => source.load(key),
        { concurrency: "unbounded" }
      )
      const batch = source.loadMany(Array.from({ length: 10 }, (_, i) => `many:${i}`))
      const all = yield* Effect.forkChild(Effect.all([singles, batch], { concurrency: "unbounded" }))
      // Answer in waves: each time the server holds as many requests as the bound allows, release them all. A
      // client that sent more would never leave the server holding exactly that many, and the wait would fail.
      let answered = 0
      while (answered < total) {
        const expected = Math.min(4, total - answered)
        yield* Poll.until(
          Effect.sync(() => server.held.length === expected),
          {
            timeoutMs: 5000,
            what: `the server held ${expected} requests`
          }
        )
        for (const response of server.held.splice(0)) send(response, 200, "1")
        answered += expected
      }
      const [loaded, many] = yield* Fiber.join(all)
      assert.strictEqual(loaded.length, 10)
      assert.strictEqual(many.size, 10)
      assert.strictEqual(server.urls.length, total)
      assert.strictEqual(server.maxOpen(), 4)
    })
  )
})

describe("HttpDataSource.loadMany", () => {
  it.live("without a batch URL, loads each key and answers only the keys found", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (request, response) =>
        request.url === "/items/missing" ? send(response, 404, "") : send(response, 200, '"v"')
      const source = yield* sourceOf({ urlTemplate: `${server.base}/items/{key}` })
      const found = yield* source.loadMany(["a", "missing", "b", "a"])
      assert.deepStrictEqual(Object.fromEntries(found), { a: "v", b: "v" })
      assert.strictEqual(server.urls.length, 3)
    })
  )

  it.live("with a batch URL, asks for many keys per request (URL-encoded, comma-separated), in batches", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (request, response) => {
        // Split before decoding: a comma inside a key arrives encoded.
        const raw = (request.url ?? "").split("keys=")[1]!.split(",").map(decodeURIComponent)
        const keys = raw.filter((key) => key !== "missing")
        send(response, 200, JSON.stringify(Object.fromEntries(keys.map((key) => [key, key.length]))))
      }
      const source = yield* sourceOf({
        urlTemplate: `${server.base}/items/{key}`,
        batchUrl: `${server.base}/items?keys={keys}`,
        batchSize: 2
      })
      const found = yield* source.loadMany(["a", "b,c", "missing"])
      assert.deepStrictEqual(Object.fromEntries(found), { a: 1, "b,c": 3 })
      assert.deepStrictEqual(server.urls, ["/items?keys=a,b%2Cc", "/items?keys=missing"])
    })
  )

  it.live("fails a batch whose answer is not a JSON object with a LoadError", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (_request, response) => send(response, 200, "[1,2]")
      const source = yield* sourceOf({
        urlTemplate: `${server.base}/items/{key}`,
        batchUrl: `${server.base}/items?keys={keys}`
      })
      const error = yield* Effect.flip(source.loadMany(["a", "b"]))
      assert.strictEqual(error._tag, "LoadError")
      assert.include(error.message, "not an object")
    })
  )
})

/** The option a refused construction names. */
const refused = (options: HttpDataSource.HttpDataSourceOptions) =>
  Effect.map(Effect.flip(sourceOf(options)), (error) => [error._tag, error.option] as const)

/** The source `layerConfig` builds from `env`. */
const withEnv = (env: Record<string, string>) =>
  Layer.build(HttpDataSource.layerConfig).pipe(
    Effect.map((context) => Context.get(context, DataSource)),
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env))
  )

describe("HttpDataSource construction", () => {
  it.live("refuses options that cannot work with a typed error naming the option", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* refused({ urlTemplate: "http://127.0.0.1/items/" }), [
        "InvalidSourceOptionsError",
        "urlTemplate"
      ])
      assert.deepStrictEqual(yield* refused({ urlTemplate: "ftp://127.0.0.1/{key}" }), [
        "InvalidSourceOptionsError",
        "urlTemplate"
      ])
      assert.deepStrictEqual(yield* refused({ urlTemplate: "not a url/{key}" }), [
        "InvalidSourceOptionsError",
        "urlTemplate"
      ])
      assert.deepStrictEqual(
        yield* refused({ urlTemplate: "http://127.0.0.1/{key}", batchUrl: "http://127.0.0.1/items" }),
        ["InvalidSourceOptionsError", "batchUrl"]
      )
      assert.deepStrictEqual(yield* refused({ urlTemplate: "http://127.0.0.1/{key}", concurrency: 0 }), [
        "InvalidSourceOptionsError",
        "concurrency"
      ])
      assert.deepStrictEqual(yield* refused({ urlTemplate: "http://127.0.0.1/{key}", timeout: 0 }), [
        "InvalidSourceOptionsError",
        "timeout"
      ])
    })
  )

  it.live("layerConfig reads CACHE_SOURCE_URL and its optional settings from the environment", () =>
    Effect.gen(function* () {
      const server = yield* startServer
      server.handle = (_request, response) => send(response, 200, '"from config"')
      const source = yield* withEnv({
        CACHE_SOURCE_URL: `${server.base}/items/{key}`,
        CACHE_SOURCE_ATTEMPT_TIMEOUT_MS: "500",
        CACHE_SOURCE_CONCURRENCY: "2"
      })
      assert.deepStrictEqual(yield* source.load("k"), Option.some("from config"))
      assert.strictEqual((yield* Effect.flip(withEnv({})))._tag, "ConfigError")
      assert.strictEqual(
        (yield* Effect.flip(withEnv({ CACHE_SOURCE_URL: "http://x/y" })))._tag,
        "InvalidSourceOptionsError"
      )
      assert.strictEqual(
        (yield* Effect.flip(withEnv({ CACHE_SOURCE_URL: "http://x/{key}", CACHE_SOURCE_CONCURRENCY: "0" })))._tag,
        "ConfigError"
      )
    })
  )
})
