/**
 * The REST API end to end: a real `node:http` server on 127.0.0.1 (an OS-chosen port) called with Node's `fetch`,
 * on the memory store and on a real embedded redis-server. Every endpoint, every data type, the error contract
 * (`{error, message}` with 400/401/404/405/413/415/503, never a 500 for bad input), `?load=true` through a real HTTP
 * data source, and the graceful shutdown of a SIGTERM'd process with a request in flight.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted, Scope } from "effect"
import { HttpServer } from "effect/http"
import { spawn } from "node:child_process"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import * as Cache from "../../../effects/Cache.ts"
import * as CacheLayers from "../../../layers/CacheLayers.ts"
import * as RedisCache from "../../../layers/RedisCache.ts"
import * as Stats from "../../../effects/Stats.ts"
import * as HttpDataSource from "../../../layers/source/HttpDataSource.ts"
import * as HttpServerLayer from "../../../layers/http/HttpServer.ts"
import * as Readiness from "../../../layers/http/Readiness.ts"
import * as MemoryDataSource from "../../../layers/source/MemoryDataSource.ts"
import * as MemoryStore from "../../../layers/store/MemoryStore.ts"
import { CacheStore } from "../../../src/CacheStore.ts"
import { DataSource, InstanceSource } from "../../../src/DataSource.ts"
import * as DataSourceModule from "../../../src/DataSource.ts"
import { defaults } from "../../../src/EmbeddedRedis.ts"
import { type Answer, baseUrl, type Call, request as send } from "./RestClient.ts"
import * as FlakyStore from "../../utils/FlakyStore.ts"
import * as Poll from "../../utils/Poll.ts"
import * as TempDir from "../../utils/TempDir.ts"

const get = (path_: string, call?: Call) => send("GET", path_, call)
const put = (key: string, body: unknown, call?: Call) =>
  send("PUT", `/api/v1/cache/${encodeURIComponent(key)}`, { ...call, body })
const getKey = (key: string, call?: Call) => get(`/api/v1/cache/${encodeURIComponent(key)}`, call)
const post = (path_: string, body: unknown, call?: Call) => send("POST", path_, { ...call, body })

/** Asserts a JSON `{error, message}` answer with `status`. */
const assertError = (answer: Answer, status: number, what = "") => {
  assert.strictEqual(answer.status, status, `${what} → ${answer.status} ${answer.text.slice(0, 200)}`)
  assert.include(answer.headers.get("content-type") ?? "", "application/json", what)
  assert.isString(answer.json?.error, `${what}: error is a string`)
  assert.isString(answer.json?.message, `${what}: message is a string`)
}

const quiet = { host: "127.0.0.1", port: 0, logRequests: false } as const

/** The server on `cache` (a layer with Cache and CacheStore) with always-ready readiness and the seed stats. */
const serverOn = <E>(
  cache: Layer.Layer<Cache.Cache | CacheStore, E>,
  options: Partial<HttpServerLayer.HttpServerOptions> = {}
) =>
  HttpServerLayer.layer({ ...quiet, instanceId: "test-1", ...options }).pipe(
    Layer.provide(
      Layer.mergeAll(Stats.layer({ instanceId: options.instanceId ?? "test-1" }), Readiness.layerAlwaysReady).pipe(
        Layer.provideMerge(cache)
      )
    )
  )

const source = MemoryDataSource.make({ "src:1": { name: "ada" }, "src:2": "two", "src:3": [1, 2], "user:9": 9 })

// -----------------------------------------------------------------------------
// The memory store
// -----------------------------------------------------------------------------

const memoryServer = serverOn(CacheLayers.layerMemory(), { sourceName: "memory" }).pipe(
  Layer.provide(Layer.succeed(InstanceSource, Option.some(source.source)))
)

interface Tests {
  readonly effect: (name: string, self: () => Effect.Effect<void, never, HttpServer.HttpServer>) => void
}

/** PUT then GET of each data type, answering the same value and `data_type`. */
const roundTrips = (it: Tests, prefix: string) => {
  const cases: ReadonlyArray<readonly [string, string | undefined, unknown, unknown]> = [
    ["a string", undefined, "ada lovelace", "ada lovelace"],
    ["a string given as data_type", "string", "", ""],
    ["an object, as the same object", "string", { a: 1, b: [true, null] }, undefined],
    ["a number, as the same number", undefined, 42.5, undefined],
    ["an array, as the same array", undefined, [1, "two", { three: 3 }], undefined],
    ["true, as true", undefined, true, undefined],
    ["null, as null", undefined, null, undefined],
    ["a string holding JSON text, as that string", undefined, '{"a":1}', undefined],
    ["a string holding a number, as that string", undefined, "42", undefined],
    ["a hash", "hash", { name: "ada", "field with spaces": "x", "": "empty field" }, undefined],
    ["a list, in order", "list", ["c", "a", "b", "a"], undefined],
    [
      "a sorted set, by score",
      "sorted_set",
      [
        { member: "b", score: 2 },
        { member: "a", score: -1.5 }
      ],
      [
        { member: "a", score: -1.5 },
        { member: "b", score: 2 }
      ]
    ]
  ]
  for (const [what, dataType, value, expected] of cases) {
    it.effect(`round-trips ${what} through PUT then GET with data_type ${dataType ?? "string"}`, () =>
      Effect.gen(function* () {
        const key = `${prefix}:${what}`
        const body = dataType === undefined ? { value } : { value, data_type: dataType }
        const written = yield* put(key, body)
        assert.strictEqual(written.status, 200, written.text)
        assert.deepStrictEqual(written.json, { key, status: "set", ttl: -1 })
        const read = yield* getKey(key)
        assert.strictEqual(read.status, 200, read.text)
        const answer = expected ?? value
        assert.deepStrictEqual(read.json, { key, value: answer, ttl: -1, data_type: dataType ?? "string", hit: true })
      })
    )
  }
  it.effect("round-trips a set (members in any order) with data_type set", () =>
    Effect.gen(function* () {
      const key = `${prefix}:set`
      assert.strictEqual((yield* put(key, { value: ["x", "y", "x", "z"], data_type: "set" })).status, 200)
      const read = yield* getKey(key)
      assert.strictEqual(read.json.data_type, "set")
      assert.sameMembers(read.json.value, ["x", "y", "z"])
      assert.lengthOf(read.json.value, 3)
    })
  )
  it.effect("reports a TTL in seconds: the given one after PUT, counting down on GET; -1 for none", () =>
    Effect.gen(function* () {
      const key = `${prefix}:ttl`
      assert.deepStrictEqual((yield* put(key, { value: "v", ttl: 60 })).json, { key, status: "set", ttl: 60 })
      const read = yield* getKey(key)
      assert.isTrue(read.json.ttl >= 1 && read.json.ttl <= 60, `ttl ${read.json.ttl}`)
      const hash = yield* put(`${key}:h`, { value: { f: "v" }, data_type: "hash", ttl: 3600 })
      assert.strictEqual(hash.json.ttl, 3600)
      const hashRead = yield* getKey(`${key}:h`)
      assert.isTrue(hashRead.json.ttl > 3500 && hashRead.json.ttl <= 3600)
      yield* put(`${key}:none`, { value: "v" })
      assert.strictEqual((yield* getKey(`${key}:none`)).json.ttl, -1)
    })
  )
}

layer(memoryServer, { excludeTestServices: true })("REST API on the memory store", (it) => {
  roundTrips(it, "mem")

  it.effect("answers a miss with exactly 404 {key, hit: false}", () =>
    Effect.gen(function* () {
      const miss = yield* getKey("never:written")
      assert.strictEqual(miss.status, 404)
      assert.deepStrictEqual(miss.json, { key: "never:written", hit: false })
    })
  )

  it.effect("decodes percent-encoded keys: user%3A1 is user:1, a%2Fb is a/b, UTF-8 is UTF-8", () =>
    Effect.gen(function* () {
      yield* send("PUT", "/api/v1/cache/user%3A1", { body: { value: "one" } })
      assert.strictEqual((yield* get("/api/v1/cache/user:1")).json.value, "one")
      assert.strictEqual((yield* getKey("user:1")).json.key, "user:1")
      yield* send("PUT", "/api/v1/cache/a%2Fb", { body: { value: "slash" } })
      assert.deepStrictEqual((yield* get("/api/v1/cache/a%2Fb")).json.key, "a/b")
      assert.strictEqual((yield* get("/api/v1/cache/a/b")).status, 404)
      for (const key of ["ключ", "emoji 🗝️", "100%", "a+b c", "q?x=1", "semi;colon", "hash#tag"]) {
        assert.strictEqual((yield* put(key, { value: key })).status, 200, key)
        const read = yield* getKey(key)
        assert.deepStrictEqual([read.json.key, read.json.value], [key, key])
      }
    })
  )

  it.effect("DELETE answers {key, status: deleted}, present or not, and the key then misses", () =>
    Effect.gen(function* () {
      yield* put("del:1", { value: "x" })
      const deleted = yield* send("DELETE", "/api/v1/cache/del%3A1")
      assert.deepStrictEqual([deleted.status, deleted.json], [200, { key: "del:1", status: "deleted" }])
      assert.strictEqual((yield* getKey("del:1")).status, 404)
      const again = yield* send("DELETE", "/api/v1/cache/del%3A1")
      assert.deepStrictEqual([again.status, again.json], [200, { key: "del:1", status: "deleted" }])
    })
  )

  it.effect("invalidates by key, pattern and tag with this instance's exact count", () =>
    Effect.gen(function* () {
      for (const i of [1, 2, 3]) yield* put(`inv:p:${i}`, { value: i })
      yield* put("inv:other", { value: 0 })
      yield* put("inv:t:1", { value: 1, tags: ["red"] })
      yield* put("inv:t:2", { value: { f: "v" }, data_type: "hash", tags: ["red", "blue"] })
      yield* put("inv:t:3", { value: ["a"], data_type: "list", tags: ["blue"] })
      const byPattern = yield* post("/api/v1/cache/invalidate", { invalidation_type: "pattern", pattern: "inv:p:*" })
      assert.deepStrictEqual(byPattern.json, { pattern: "inv:p:*", keys_invalidated: 3, status: "success" })
      const byTag = yield* post("/api/v1/cache/invalidate", { invalidation_type: "tag", tags: ["red"] })
      assert.deepStrictEqual(byTag.json, { tags: ["red"], keys_invalidated: 2, status: "success" })
      const byKey = yield* post("/api/v1/cache/invalidate", { invalidation_type: "key", key: "inv:other" })
      assert.deepStrictEqual(byKey.json, { key: "inv:other", keys_invalidated: 1, status: "success" })
      const absent = yield* post("/api/v1/cache/invalidate", { invalidation_type: "key", key: "inv:other" })
      assert.strictEqual(absent.json.keys_invalidated, 0)
      assert.strictEqual((yield* getKey("inv:t:3")).status, 200)
      assert.strictEqual((yield* getKey("inv:p:1")).status, 404)
    })
  )

  it.effect("refuses a pattern matching every key with 400 unless all: true is given", () =>
    Effect.gen(function* () {
      assertError(yield* post("/api/v1/cache/invalidate", { invalidation_type: "pattern", pattern: "*" }), 400)
      assertError(yield* post("/api/v1/cache/invalidate", { invalidation_type: "pattern", pattern: "**" }), 400)
    })
  )

  it.effect("warms keys from the source and counts keys_warmed, failed and missing", () =>
    Effect.gen(function* () {
      const warmed = yield* post("/api/v1/cache/warm", {
        keys: ["src:1", "src:2", "src:nope", "", "src:1"],
        source: "default",
        ttl: 120
      })
      assert.strictEqual(warmed.status, 200, warmed.text)
      assert.deepInclude(warmed.json, { keys_warmed: 2, failed: 1, missing: 1, status: "success" })
      const read = yield* getKey("src:1")
      assert.deepInclude(read.json, { value: { name: "ada" }, data_type: "string", hit: true })
      assert.isTrue(read.json.ttl > 100 && read.json.ttl <= 120)
      const byPattern = yield* post("/api/v1/cache/warm", { pattern: "src:*", source: "memory" })
      assert.deepInclude(byPattern.json, { keys_warmed: 3, failed: 0, missing: 0, status: "success" })
      assert.deepStrictEqual((yield* getKey("src:3")).json.value, [1, 2])
    })
  )

  it.effect("warms in mode missing or refresh, and refuses any other mode with 400 JSON naming mode", () =>
    Effect.gen(function* () {
      for (const mode of ["missing", "refresh"]) {
        const warmed = yield* post("/api/v1/cache/warm", { keys: ["src:1", "src:nope"], source: "default", mode })
        assert.strictEqual(warmed.status, 200, `${mode}: ${warmed.text}`)
        assert.deepInclude(warmed.json, { failed: 0, missing: 1, total: 2, status: "success" })
      }
      const byPattern = yield* post("/api/v1/cache/warm", { pattern: "src:*", source: "default", mode: "refresh" })
      assert.strictEqual(byPattern.status, 200, byPattern.text)
      for (const mode of ["eager", "REFRESH", "", 1, null, true]) {
        const refused = yield* post("/api/v1/cache/warm", { keys: ["src:1"], source: "default", mode })
        assertError(refused, 400, `mode ${JSON.stringify(mode)}`)
        assert.strictEqual(refused.json.error, "invalid_request")
        assert.include(refused.json.message, "mode", refused.text)
      }
    })
  )

  it.effect("refuses to warm from an unknown source with 400", () =>
    Effect.gen(function* () {
      assertError(yield* post("/api/v1/cache/warm", { keys: ["src:1"], source: "postgres" }), 400)
    })
  )

  it.effect("loads a miss from the source with ?load=true (hit: false), then answers it as a hit", () =>
    Effect.gen(function* () {
      const loaded = yield* get("/api/v1/cache/user%3A9?load=true")
      assert.deepStrictEqual(loaded.json, { key: "user:9", value: 9, ttl: -1, data_type: "string", hit: false })
      assert.strictEqual((yield* getKey("user:9")).json.hit, true)
      const nowhere = yield* get("/api/v1/cache/user%3A10?load=true")
      assert.deepStrictEqual([nowhere.status, nowhere.json], [404, { key: "user:10", hit: false }])
    })
  )

  it.effect("answers stats with the seed fields, typed, and hit_rate between 0 and 1", () =>
    Effect.gen(function* () {
      yield* put("stats:1", { value: 1 })
      yield* getKey("stats:1")
      yield* getKey("stats:missing")
      const stats = yield* get("/api/v1/cache/stats")
      assert.strictEqual(stats.status, 200)
      assert.strictEqual(stats.json.instance_id, "test-1")
      for (const field of [
        "total_keys",
        "memory_used",
        "memory_limit",
        "memory_usage_percent",
        "hits",
        "misses",
        "hit_rate",
        "evictions",
        "operations_per_second",
        "uptime_seconds"
      ]) {
        assert.isNumber(stats.json[field], field)
        assert.isTrue(stats.json[field] >= 0, field)
      }
      assert.isTrue(stats.json.hit_rate > 0 && stats.json.hit_rate < 1, `hit_rate ${stats.json.hit_rate}`)
      assert.isTrue(stats.json.hits >= 1 && stats.json.misses >= 1)
      assert.isTrue(stats.json.total_keys >= 1)
    })
  )

  it.effect("serves /metrics as Prometheus text with the API's request counter and the cache's metrics", () =>
    Effect.gen(function* () {
      yield* get("/healthz")
      const metrics = yield* get("/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.headers.get("content-type") ?? "", "text/plain")
      assert.match(metrics.text, /^# TYPE cache_http_requests_total counter$/m)
      assert.match(metrics.text, /^cache_http_requests_total\{method="GET",status="200"\} \d+$/m)
      assert.match(metrics.text, /^# TYPE cache_hits_total counter$/m)
      assert.match(metrics.text, /^cache_hit_rate [0-9.e-]+$/m)
    })
  )

  it.effect("serves /healthz, /readyz, the OpenAPI document and the docs page", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual((yield* get("/healthz")).json, { status: "ok" })
      assert.deepStrictEqual((yield* get("/readyz")).json, { status: "ready" })
      const openapi = yield* get("/openapi.json")
      assert.strictEqual(openapi.json.openapi, "3.1.0")
      for (const p of [
        "/api/v1/cache/{key}",
        "/api/v1/cache/invalidate",
        "/api/v1/cache/warm",
        "/api/v1/cache/stats"
      ]) {
        assert.property(openapi.json.paths, p)
      }
      const docs = yield* get("/docs")
      assert.strictEqual(docs.status, 200)
      assert.include(docs.text.toLowerCase(), "swagger")
    })
  )

  it.effect("names the instance in an x-cache-instance header", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* get("/healthz")).headers.get("x-cache-instance"), "test-1")
    })
  )

  it.effect("answers 413 JSON for a body over 1 MiB (declared or chunked) and accepts exactly 1 MiB", () =>
    Effect.gen(function* () {
      const limit = 1_048_576
      const exact = `{"value":"${"x".repeat(limit - 12)}"}`
      assert.strictEqual(Buffer.byteLength(exact), limit)
      const ok = yield* send("PUT", "/api/v1/cache/big", { raw: exact })
      assert.strictEqual(ok.status, 200, ok.text)
      assertError(yield* send("PUT", "/api/v1/cache/big", { raw: `{"value":"${"x".repeat(limit - 11)}"}` }), 413)
      const chunks = 20
      const chunk = new Uint8Array(64 * 1024).fill(120)
      let sent = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < chunks) controller.enqueue(chunk)
          else controller.close()
        }
      })
      assertError(yield* send("PUT", "/api/v1/cache/big", { raw: stream }), 413, "chunked")
      assert.strictEqual((yield* getKey("big")).json.value.length, limit - 12)
    })
  )

  it.effect("answers 415 JSON for a PUT or POST body that is not application/json", () =>
    Effect.gen(function* () {
      for (const contentType of [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1"
      ]) {
        assertError(
          yield* send("PUT", "/api/v1/cache/x", { raw: '{"value":1}', headers: { "content-type": contentType } }),
          415,
          contentType
        )
      }
      assertError(
        yield* send("POST", "/api/v1/cache/invalidate", {
          raw: '{"invalidation_type":"key","key":"x"}',
          headers: { "content-type": "text/json" }
        }),
        415,
        "text/json"
      )
      const noType = yield* Effect.flatMap(baseUrl, (base) =>
        Effect.promise(() => fetch(`${base}/api/v1/cache/x`, { method: "PUT", body: new Uint8Array([123, 125]) }))
      )
      assert.strictEqual(noType.status, 415)
      assert.strictEqual(
        (yield* send("PUT", "/api/v1/cache/x", {
          raw: '{"value":1}',
          headers: { "content-type": "application/json; charset=UTF-8" }
        })).status,
        200
      )
    })
  )

  const violations: ReadonlyArray<readonly [string, string, string, Call]> = [
    ["an unknown data_type", "PUT", "/api/v1/cache/x", { body: { value: "v", data_type: "blob" } }],
    ["a negative ttl", "PUT", "/api/v1/cache/x", { body: { value: "v", ttl: -5 } }],
    ["a zero ttl", "PUT", "/api/v1/cache/x", { body: { value: "v", ttl: 0 } }],
    ["a ttl of -2", "PUT", "/api/v1/cache/x", { body: { value: "v", ttl: -2 } }],
    [
      "a ttl of -1 on /warm (no expiry is for PUT)",
      "POST",
      "/api/v1/cache/warm",
      { body: { keys: ["a"], source: "default", ttl: -1 } }
    ],
    ["a fractional ttl", "PUT", "/api/v1/cache/x", { body: { value: "v", ttl: 1.5 } }],
    ["a ttl as a string", "PUT", "/api/v1/cache/x", { body: { value: "v", ttl: "60" } }],
    ["a hash with a non-string field", "PUT", "/api/v1/cache/x", { body: { value: { a: 1 }, data_type: "hash" } }],
    ["a hash given as an array", "PUT", "/api/v1/cache/x", { body: { value: ["a"], data_type: "hash" } }],
    ["an empty hash", "PUT", "/api/v1/cache/x", { body: { value: {}, data_type: "hash" } }],
    ["a set given as a string", "PUT", "/api/v1/cache/x", { body: { value: "a", data_type: "set" } }],
    ["a list with a number", "PUT", "/api/v1/cache/x", { body: { value: ["a", 1], data_type: "list" } }],
    ["an empty list", "PUT", "/api/v1/cache/x", { body: { value: [], data_type: "list" } }],
    [
      "a sorted set without scores",
      "PUT",
      "/api/v1/cache/x",
      { body: { value: [{ member: "a" }], data_type: "sorted_set" } }
    ],
    ["a sorted set of strings", "PUT", "/api/v1/cache/x", { body: { value: ["a"], data_type: "sorted_set" } }],
    ["a body without value", "PUT", "/api/v1/cache/x", { body: { ttl: 5 } }],
    ["an unknown field", "PUT", "/api/v1/cache/x", { body: { value: "v", datatype: "hash" } }],
    ["tags that are not strings", "PUT", "/api/v1/cache/x", { body: { value: "v", tags: [1] } }],
    ["malformed JSON", "PUT", "/api/v1/cache/x", { raw: '{"value": "unterminated' }],
    [
      "a value nested 100,000 levels deep",
      "PUT",
      "/api/v1/cache/x",
      { raw: `{"value":${"[".repeat(100_000)}${"]".repeat(100_000)}}` }
    ],
    [
      "a body that is not UTF-8",
      "PUT",
      "/api/v1/cache/x",
      { raw: Uint8Array.from([...Buffer.from('{"value":"'), 0xff, 0xfe, ...Buffer.from('"}')]) }
    ],
    [
      "duplicate fields whose last value is invalid",
      "PUT",
      "/api/v1/cache/x",
      { raw: '{"value":1,"ttl":60,"ttl":-60}' }
    ],
    ["an empty body", "PUT", "/api/v1/cache/x", { raw: "" }],
    ["a JSON array body", "PUT", "/api/v1/cache/x", { raw: "[1,2]" }],
    ["an empty key", "PUT", "/api/v1/cache/", { body: { value: "v" } }],
    ["a key over 512 bytes", "PUT", `/api/v1/cache/${"k".repeat(513)}`, { body: { value: "v" } }],
    ["a key of 171 three-byte characters", "GET", `/api/v1/cache/${encodeURIComponent("€".repeat(171))}`, {}],
    ["a key with a control character", "PUT", "/api/v1/cache/a%01b", { body: { value: "v" } }],
    ["a key with DEL", "GET", "/api/v1/cache/a%7F", {}],
    ["a key with a newline", "DELETE", "/api/v1/cache/a%0Ab", {}],
    ["invalid percent-encoding", "GET", "/api/v1/cache/a%ZZb", {}],
    ["a truncated percent-escape", "GET", "/api/v1/cache/a%E2%82", {}],
    ["percent-encoded bytes that are not UTF-8", "GET", "/api/v1/cache/%FF%FE", {}],
    ["an unknown invalidation_type", "POST", "/api/v1/cache/invalidate", { body: { invalidation_type: "all" } }],
    ["an empty tag list", "POST", "/api/v1/cache/invalidate", { body: { invalidation_type: "tag", tags: [] } }],
    [
      "an invalid key to invalidate",
      "POST",
      "/api/v1/cache/invalidate",
      { body: { invalidation_type: "key", key: "" } }
    ],
    [
      "a warm with keys and a pattern",
      "POST",
      "/api/v1/cache/warm",
      { body: { keys: ["a"], pattern: "a*", source: "default" } }
    ],
    ["a warm without a source", "POST", "/api/v1/cache/warm", { body: { keys: ["a"] } }],
    ["?load=maybe", "GET", "/api/v1/cache/x?load=maybe", {}]
  ]
  for (const [what, method, path_, call] of violations) {
    it.effect(`answers 400 JSON {error, message} for ${what}`, () =>
      Effect.gen(function* () {
        assertError(yield* send(method, path_, call), 400, what)
      })
    )
  }

  it.effect("answers 431 JSON for a request line longer than Node accepts", () =>
    Effect.gen(function* () {
      assertError(yield* get(`/api/v1/cache/${"k".repeat(20_000)}`), 431)
      assert.strictEqual((yield* get("/healthz")).status, 200)
    })
  )

  it.effect("answers 404 and 405 as JSON for unknown paths and methods", () =>
    Effect.gen(function* () {
      assertError(yield* get("/nothing/here"), 404)
      assertError(yield* get("/api/v1/nothing"), 404)
      const patch = yield* send("PATCH", "/api/v1/cache/x", { body: { value: 1 } })
      assertError(patch, 405)
      assert.include(patch.headers.get("allow") ?? "", "PUT")
      assertError(yield* send("DELETE", "/healthz"), 405)
    })
  )
})

// -----------------------------------------------------------------------------
// Bearer token
// -----------------------------------------------------------------------------

layer(serverOn(CacheLayers.layerMemory(), { apiToken: Redacted.make("s3cr3t-token") }), { excludeTestServices: true })(
  "REST API with CACHE_API_TOKEN",
  (it) => {
    it.effect("answers 401 JSON on /api/v1/* without the token, with a wrong one, or with another scheme", () =>
      Effect.gen(function* () {
        for (const headers of [
          {},
          { authorization: "Bearer wrong" },
          { authorization: "Bearer s3cr3t-token-and-more" },
          { authorization: "Basic czNjcjN0LXRva2Vu" },
          { authorization: "s3cr3t-token" }
        ]) {
          const answer = yield* getKey("k", { headers })
          assertError(answer, 401, JSON.stringify(headers))
          assert.include(answer.headers.get("www-authenticate") ?? "", "Bearer")
        }
        assertError(yield* put("k", { value: 1 }, { headers: { "content-type": "text/plain" } }), 401)
        assertError(yield* get("/api/v1/unknown"), 401)
        // paths the router matches to the API after collapsing slashes or decoding escapes
        for (const path_ of ["//api/v1/cache/k", "/api//v1/cache/k", "/%61pi/v1/cache/k", "/api/v1/%63ache/stats"]) {
          assertError(yield* get(path_), 401, path_)
        }
        assertError(yield* send("PUT", "//api/v1/cache/k", { body: { value: "no token" } }), 401)
      })
    )

    it.effect("serves /api/v1/* with the right token", () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* put("k", { value: 1 }, { token: "s3cr3t-token" })).status, 200)
        assert.strictEqual((yield* getKey("k", { token: "s3cr3t-token" })).json.value, 1)
        assert.strictEqual((yield* get("/api/v1/cache/stats", { token: "s3cr3t-token" })).status, 200)
      })
    )

    it.effect("needs no token for /healthz, /readyz and /metrics", () =>
      Effect.gen(function* () {
        assert.strictEqual((yield* get("/healthz")).status, 200)
        assert.strictEqual((yield* get("/readyz")).status, 200)
        assert.strictEqual((yield* get("/metrics")).status, 200)
      })
    )

    it.effect("answers 503 JSON for ?load=true and /warm when no data source is configured", () =>
      Effect.gen(function* () {
        assertError(yield* get("/api/v1/cache/k2?load=true", { token: "s3cr3t-token" }), 503)
        assertError(
          yield* post("/api/v1/cache/warm", { keys: ["a"], source: "default" }, { token: "s3cr3t-token" }),
          503
        )
      })
    )
  }
)

// -----------------------------------------------------------------------------
// ?load=true through a real HTTP data source
// -----------------------------------------------------------------------------

/** A node:http source of truth on 127.0.0.1: `/items/<key>` answers the JSON in `items`, 404, or 500 for `boom`. */
const sourceServer = Effect.acquireRelease(
  Effect.callback<{ readonly base: string; readonly requests: Array<string>; readonly close: () => void }>((resume) => {
    const items: Record<string, unknown> = { "user:1": { name: "ada" }, greeting: "hello" }
    const requests: Array<string> = []
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const key = decodeURIComponent((request.url ?? "").replace(/^\/items\//, ""))
      requests.push(key)
      if (key === "boom") {
        response.writeHead(500).end("broken")
      } else if (Object.hasOwn(items, key)) {
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(items[key]))
      } else response.writeHead(404).end()
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(
        Effect.succeed({
          base: `http://127.0.0.1:${port}`,
          requests,
          close: () => {
            server.closeAllConnections()
            server.close()
          }
        })
      )
    })
  }),
  ({ close }) => Effect.sync(close)
)

/** What the source server was asked for. */
class SourceLog extends Context.Service<SourceLog, { readonly requests: ReadonlyArray<string> }>()("test/SourceLog") {}

const httpSourced = Layer.unwrap(
  Effect.map(sourceServer, (source) =>
    serverOn(CacheLayers.layerMemory(), { sourceName: "http" }).pipe(
      Layer.provide(
        Layer.effect(InstanceSource, Effect.map(Effect.service(DataSource), Option.some)).pipe(
          Layer.provide(HttpDataSource.layer({ urlTemplate: `${source.base}/items/{key}`, retries: 0 }))
        )
      ),
      Layer.merge(Layer.succeed(SourceLog, { requests: source.requests }))
    )
  )
)

layer(httpSourced, { excludeTestServices: true })("?load=true with an HTTP data source", (it) => {
  it.effect("loads a miss over HTTP and answers hit: false with the value; the next GET is a hit, not a load", () =>
    Effect.gen(function* () {
      const log = yield* SourceLog
      const loaded = yield* get("/api/v1/cache/user%3A1?load=true")
      assert.deepStrictEqual(loaded.json, {
        key: "user:1",
        value: { name: "ada" },
        ttl: -1,
        data_type: "string",
        hit: false
      })
      assert.deepStrictEqual(log.requests, ["user:1"])
      const again = yield* get("/api/v1/cache/user%3A1?load=true")
      assert.deepStrictEqual(again.json, { ...loaded.json, hit: true })
      assert.strictEqual((yield* getKey("user:1")).json.hit, true)
      assert.strictEqual(log.requests.length, 1)
      const text = yield* get("/api/v1/cache/greeting?load=true")
      assert.deepInclude(text.json, { value: "hello", hit: false })
    })
  )

  it.effect("answers 404 {key, hit: false} when the source does not have the key either", () =>
    Effect.gen(function* () {
      const answer = yield* get("/api/v1/cache/nobody?load=true")
      assert.deepStrictEqual([answer.status, answer.json], [404, { key: "nobody", hit: false }])
    })
  )

  it.effect("answers 503 JSON when the source fails, and caches nothing", () =>
    Effect.gen(function* () {
      assertError(yield* get("/api/v1/cache/boom?load=true"), 503)
      assert.strictEqual((yield* getKey("boom")).status, 404)
    })
  )

  it.effect("warms from the source named http", () =>
    Effect.gen(function* () {
      const warmed = yield* post("/api/v1/cache/warm", { keys: ["greeting", "nobody", "boom"], source: "http" })
      assert.deepInclude(warmed.json, { keys_warmed: 1, missing: 1, failed: 1, status: "success" })
    })
  )
})

// -----------------------------------------------------------------------------
// Readiness and a failing store
// -----------------------------------------------------------------------------

class ReadySwitch extends Context.Service<ReadySwitch, { ready: boolean }>()("test/ReadySwitch") {}

const switchable = Layer.unwrap(
  Effect.sync(() => {
    const state = { ready: false }
    return HttpServerLayer.layer({ ...quiet, instanceId: "flaky" }).pipe(
      Layer.provide(
        Layer.succeed(Readiness.Readiness, {
          check: Effect.sync(() => (state.ready ? { ready: true } : { ready: false, reason: "warming up" }))
        })
      ),
      Layer.provide(Stats.layer({ instanceId: "flaky" })),
      Layer.provideMerge(Cache.layer({ failureThreshold: 1000 })),
      Layer.provideMerge(FlakyStore.layer(MemoryStore.layer)),
      Layer.merge(Layer.succeed(ReadySwitch, state))
    )
  })
)

layer(switchable, { excludeTestServices: true })("readiness and a failing store", (it) => {
  it.effect("answers /readyz 503 {status: not_ready, reason} until ready, then 200 {status: ready}", () =>
    Effect.gen(function* () {
      const state = yield* ReadySwitch
      const before = yield* get("/readyz")
      assert.deepStrictEqual([before.status, before.json], [503, { status: "not_ready", reason: "warming up" }])
      assert.strictEqual((yield* get("/healthz")).status, 200)
      state.ready = true
      assert.deepStrictEqual((yield* get("/readyz")).json, { status: "ready" })
    })
  )

  it.effect("answers 503 JSON for reads, writes and deletes while the store is down, and serves again after", () =>
    Effect.gen(function* () {
      const control = yield* FlakyStore.FlakyControl
      yield* put("f:1", { value: "before" })
      yield* control.setDown(true)
      assertError(yield* put("f:2", { value: "x" }), 503, "PUT")
      assertError(yield* getKey("f:1"), 503, "GET")
      assertError(yield* send("DELETE", "/api/v1/cache/f%3A1"), 503, "DELETE")
      assertError(yield* post("/api/v1/cache/invalidate", { invalidation_type: "tag", tags: ["t"] }), 503, "invalidate")
      yield* control.setDown(false)
      // The failed tag invalidation left the whole store pending: reads miss (503) until the retry has flushed it.
      yield* Poll.until(
        Effect.gen(function* () {
          if ((yield* put("f:3", { value: "after" })).status !== 200) return false
          const read = yield* getKey("f:3")
          if (read.status === 200) return read.json.value === "after"
          assert.include([404, 503], read.status)
          return false
        }),
        { timeoutMs: 10_000, what: "the store serves writes and reads again" }
      )
    })
  )
})

/** Reads of the keys given to `hold` wait, after signalling that they started, until the test releases them. */
class ReadGates extends Context.Service<
  ReadGates,
  {
    readonly hold: (
      key: string
    ) => Effect.Effect<{ readonly started: Deferred.Deferred<void>; readonly release: Effect.Effect<void> }>
  }
>()("test/ReadGates") {}

/** Wraps the `CacheStore` in context: `readWithTtl` of a held key waits for its gate before it reaches the store. */
const gatedReads = Layer.effectContext(
  Effect.gen(function* () {
    const store = yield* CacheStore
    const gates = new Map<string, { started: Deferred.Deferred<void>; gate: Deferred.Deferred<void> }>()
    const hold = (key: string) =>
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        gates.set(key, { started, gate })
        return { started, release: Deferred.succeed(gate, undefined).pipe(Effect.asVoid) }
      })
    const readWithTtl: CacheStore["Service"]["readWithTtl"] = (key) => {
      const held = gates.get(key)
      if (held === undefined) return store.readWithTtl(key)
      return Deferred.succeed(held.started, undefined).pipe(
        Effect.andThen(Deferred.await(held.gate)),
        Effect.andThen(Effect.suspend(() => store.readWithTtl(key)))
      )
    }
    return Context.make(CacheStore, { ...store, readWithTtl }).pipe(Context.add(ReadGates, { hold }))
  })
)

/** One `Cache` (so one set of counters) over a store that can be switched down and whose reads can be held. */
const sharedCache = HttpServerLayer.layer({ ...quiet, instanceId: "race" }).pipe(
  Layer.provide(Layer.mergeAll(Stats.layer({ instanceId: "race" }), Readiness.layerAlwaysReady)),
  Layer.provideMerge(Cache.layer({ failureThreshold: 1000 })),
  Layer.provideMerge(gatedReads),
  Layer.provideMerge(FlakyStore.layer(MemoryStore.layer))
)

layer(sharedCache, { excludeTestServices: true })("a miss and a store failure at the same time", (it) => {
  it.effect("answers the miss 404 and the failed read 503 when they interleave on one cache, never swapped", () =>
    Effect.gen(function* () {
      const gates = yield* ReadGates
      const control = yield* FlakyStore.FlakyControl
      // The failing read starts first and finishes while the miss is still reading: the miss must stay a 404,
      // whatever the store did for another request in the meantime.
      const failing = yield* gates.hold("race:down")
      const missing = yield* gates.hold("race:miss")
      const down = yield* Effect.forkChild(getKey("race:down"))
      yield* Deferred.await(failing.started)
      const miss = yield* Effect.forkChild(getKey("race:miss"))
      yield* Deferred.await(missing.started)
      yield* control.setDown(true)
      yield* failing.release
      const downAnswer = yield* Fiber.join(down)
      assertError(downAnswer, 503, "GET on a failing store")
      assert.strictEqual(downAnswer.json.error, "store_unavailable")
      yield* control.setDown(false)
      yield* missing.release
      const missAnswer = yield* Fiber.join(miss)
      assert.deepStrictEqual([missAnswer.status, missAnswer.json], [404, { key: "race:miss", hit: false }])
    })
  )

  it.effect("answers concurrent misses 404 on a healthy store and concurrent reads 503 on a down one", () =>
    Effect.gen(function* () {
      const control = yield* FlakyStore.FlakyControl
      const misses = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => `race:m${i}`),
        (key) => getKey(key),
        {
          concurrency: "unbounded"
        }
      )
      for (const answer of misses) assert.strictEqual(answer.status, 404, answer.text)
      yield* control.setDown(true)
      const failures = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => `race:d${i}`),
        (key) => getKey(key),
        {
          concurrency: "unbounded"
        }
      )
      yield* control.setDown(false)
      for (const answer of failures) assertError(answer, 503, "GET on a down store")
    })
  )
})

class StartupFlag extends Context.Service<StartupFlag, { done: boolean }>()("test/StartupFlag") {}

const readinessOverFlakyStore = Layer.unwrap(
  Effect.sync(() => {
    const startup = { done: false }
    return Readiness.layerReadinessFromStore({ startupDone: Effect.sync(() => startup.done) }).pipe(
      Layer.provideMerge(FlakyStore.layer(MemoryStore.layer)),
      Layer.merge(Layer.succeed(StartupFlag, startup))
    )
  })
)

describe("layerReadinessFromStore", () => {
  it.live("is not ready before startup is done, nor while the store does not answer PING; ready otherwise", () =>
    Effect.gen(function* () {
      const startup = yield* StartupFlag
      const readiness = yield* Readiness.Readiness
      const control = yield* FlakyStore.FlakyControl
      assert.deepStrictEqual(yield* readiness.check, { ready: false, reason: "startup warm-up has not finished" })
      startup.done = true
      assert.deepStrictEqual(yield* readiness.check, { ready: true })
      yield* control.setDown(true)
      const down = yield* readiness.check
      assert.isFalse(down.ready)
      assert.include(down.reason ?? "", "the store is down")
      yield* control.setDown(false)
      assert.deepStrictEqual(yield* readiness.check, { ready: true })
    }).pipe(Effect.provide(readinessOverFlakyStore))
  )
})

// -----------------------------------------------------------------------------
// A real embedded redis-server
// -----------------------------------------------------------------------------

const embedded = Layer.unwrap(
  Effect.map(TempDir.make, (dir) =>
    HttpServerLayer.layer({ ...quiet, instanceId: "redis-1" }).pipe(
      Layer.provide(
        Layer.mergeAll(Stats.layer({ instanceId: "redis-1" }), Readiness.layerReadinessFromStore({})).pipe(
          Layer.provideMerge(RedisCache.layerEmbedded({ server: defaults(dir) }))
        )
      )
    )
  )
)

layer(embedded, { excludeTestServices: true, timeout: "30 seconds" })("REST API on an embedded redis-server", (it) => {
  roundTrips(it, "redis")

  it.effect("answers a miss with exactly 404 {key, hit: false}", () =>
    Effect.gen(function* () {
      const miss = yield* getKey("redis:never")
      assert.deepStrictEqual([miss.status, miss.json], [404, { key: "redis:never", hit: false }])
    })
  )

  it.effect("invalidates by tag across data types with the exact count, and deletes", () =>
    Effect.gen(function* () {
      yield* put("r:t:1", { value: "a", tags: ["green"] })
      yield* put("r:t:2", { value: ["a", "b"], data_type: "set", tags: ["green"] })
      yield* put("r:t:3", { value: "c", tags: ["other"] })
      const byTag = yield* post("/api/v1/cache/invalidate", { invalidation_type: "tag", tags: ["green"] })
      assert.deepStrictEqual(byTag.json, { tags: ["green"], keys_invalidated: 2, status: "success" })
      assert.deepStrictEqual((yield* send("DELETE", "/api/v1/cache/r%3At%3A3")).json, {
        key: "r:t:3",
        status: "deleted"
      })
      assert.strictEqual((yield* getKey("r:t:3")).status, 404)
    })
  )

  it.effect("reports the server's memory limit and key count in stats, and is ready", () =>
    Effect.gen(function* () {
      const stats = yield* get("/api/v1/cache/stats")
      assert.strictEqual(stats.json.memory_limit, 256 * 1024 * 1024)
      assert.isTrue(stats.json.memory_used > 0 && stats.json.memory_usage_percent > 0)
      assert.isTrue(stats.json.total_keys >= 1)
      assert.strictEqual(stats.json.store, "redis")
      assert.deepStrictEqual((yield* get("/readyz")).json, { status: "ready" })
    })
  )

  it.effect("answers 400 JSON for bad input, as on the memory store", () =>
    Effect.gen(function* () {
      assertError(yield* put("r:bad", { value: { a: 1 }, data_type: "list" }), 400)
      assertError(yield* put("r:bad", { value: "v", ttl: -2 }), 400)
      assertError(yield* get("/api/v1/cache/%C0%AF"), 400)
    })
  )
})

// -----------------------------------------------------------------------------
// Graceful shutdown
// -----------------------------------------------------------------------------

/** A source whose loads wait for the test: it signals each load, then waits for the gate. */
const gatedSource = (started: Deferred.Deferred<void>, gate: Deferred.Deferred<void>) =>
  Layer.succeed(
    InstanceSource,
    Option.some(
      DataSourceModule.make({
        load: (key) =>
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Deferred.await(gate)),
            Effect.as(Option.some(`loaded ${key}`))
          )
      })
    )
  )

describe("shutdown", () => {
  it.live("answers a request in flight when the server's scope closes, and refuses new connections", () =>
    Effect.gen(function* () {
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        serverOn(CacheLayers.layerMemory()).pipe(Layer.provide(gatedSource(started, gate))),
        scope
      )
      const base = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
      const inFlight = yield* Effect.promise(() =>
        fetch(`${base}/api/v1/cache/slow?load=true`).then(async (r) => ({ status: r.status, body: await r.json() }))
      ).pipe(Effect.forkChild)
      yield* Deferred.await(started)
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild)
      yield* Poll.until(
        Effect.promise(() =>
          fetch(`${base}/healthz`).then(
            () => false,
            () => true
          )
        ),
        { timeoutMs: 5000, what: "the server refuses new connections" }
      )
      assert.isUndefined(closing.pollUnsafe(), "closing waits for the request in flight")
      yield* Deferred.succeed(gate, undefined)
      const answer = yield* Fiber.join(inFlight)
      assert.deepStrictEqual(answer, {
        status: 200,
        body: { key: "slow", value: "loaded slow", ttl: -1, data_type: "string", hit: false }
      })
      yield* Fiber.join(closing)
    })
  )

  it.live("lets a SIGTERM'd process finish the request in flight before it exits", () =>
    Effect.gen(function* () {
      const root = path.resolve(import.meta.dirname, "../../..")
      const program = `
        import { NodeRuntime } from "@effect/platform-node"
        import { Effect, Layer, Option } from "effect"
        import { HttpServer } from "effect/http"
        import * as CacheLayers from "${root}/layers/CacheLayers.ts"
        import * as Readiness from "${root}/layers/http/Readiness.ts"
        import * as Stats from "${root}/effects/Stats.ts"
        import * as Server from "${root}/layers/http/HttpServer.ts"
        import { InstanceSource, make } from "${root}/src/DataSource.ts"
        // The load holds until the test writes a line to stdin: after it has sent SIGTERM.
        const go = Effect.callback((resume) => void process.stdin.once("data", () => resume(Effect.void)))
        const slow = Layer.succeed(InstanceSource, Option.some(make({
          load: (key) => Effect.sync(() => console.log("LOADING")).pipe(
            Effect.andThen(go), Effect.as(Option.some("v-" + key)))
        })))
        const app = Server.layer({ host: "127.0.0.1", port: 0, instanceId: "t", logRequests: false }).pipe(
          Layer.provide(Layer.mergeAll(Stats.layer({ instanceId: "t" }), Readiness.layerAlwaysReady, slow)
            .pipe(Layer.provideMerge(CacheLayers.layerMemory()))))
        const main = Layer.effectDiscard(Effect.map(Effect.service(HttpServer.HttpServer),
          (server) => console.log("LISTENING " + HttpServer.formatAddress(server.address)))).pipe(Layer.provideMerge(app))
        NodeRuntime.runMain(Layer.launch(main), { disableErrorReporting: true })
      `
      const child = spawn(process.execPath, ["--input-type=module", "-e", program], {
        cwd: root,
        stdio: ["pipe", "pipe", "pipe"]
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")))
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      const exited = Effect.callback<number | null>((resume) => {
        if (child.exitCode !== null) return resume(Effect.succeed(child.exitCode))
        child.once("exit", (code) => resume(Effect.succeed(code)))
      })
      yield* Poll.until(
        Effect.sync(() => /LISTENING (\S+)/.test(output)),
        { timeoutMs: 20_000, what: `the child listens: ${output}` }
      )
      const base = /LISTENING (\S+)/.exec(output)![1]!
      const inFlight = yield* Effect.promise(() =>
        fetch(`${base}/api/v1/cache/k?load=true`).then(async (r) => ({ status: r.status, body: await r.json() }))
      ).pipe(Effect.forkChild)
      yield* Poll.until(
        Effect.sync(() => output.includes("LOADING")),
        { timeoutMs: 10_000, what: "the load started" }
      )
      child.kill("SIGTERM")
      // Closing has begun once new connections are refused; only then may the load finish.
      yield* Poll.until(
        Effect.promise(() =>
          fetch(`${base}/healthz`).then(
            () => false,
            () => true
          )
        ),
        { timeoutMs: 10_000, what: "the closing server refuses new connections" }
      )
      child.stdin.write("go\n")
      const answer = yield* Fiber.join(inFlight)
      assert.deepStrictEqual(answer, {
        status: 200,
        body: { key: "k", value: "v-k", ttl: -1, data_type: "string", hit: false }
      })
      yield* exited.pipe(
        Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.die(new Error(`no exit: ${output}`)) })
      )
    })
  )
})
