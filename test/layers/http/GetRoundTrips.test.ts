/**
 * What a sidecar GET costs the store: one round trip for the value and its TTL together, and none for an L1 hit —
 * counted on a store that counts the calls reaching it, through a real HTTP server.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import * as Cache from "../../../effects/Cache.ts"
import * as Stats from "../../../effects/Stats.ts"
import * as HttpServerLayer from "../../../layers/http/HttpServer.ts"
import * as Readiness from "../../../layers/http/Readiness.ts"
import * as MemoryStore from "../../../layers/store/MemoryStore.ts"
import { InstanceSource } from "../../../src/DataSource.ts"
import * as FlakyStore from "../../utils/FlakyStore.ts"
import { send } from "./RestClient.ts"

const server = (l1: Cache.L1Options | undefined) =>
  HttpServerLayer.layer({ host: "127.0.0.1", port: 0, logRequests: false, instanceId: "round-trips" }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(Stats.layer({ instanceId: "round-trips" }), Readiness.layerAlwaysReady).pipe(
        Layer.provideMerge(Cache.layer({ l1 }).pipe(Layer.provideMerge(FlakyStore.layer(MemoryStore.layer))))
      )
    ),
    Layer.provide(Layer.succeed(InstanceSource, Option.none()))
  )

/** Store calls made by one GET of `path`, and its answer. */
const storeCallsOf = (path: string) =>
  Effect.gen(function* () {
    const control = yield* FlakyStore.FlakyControl
    const before = yield* control.calls
    const answer = yield* send("GET", path)
    return { calls: (yield* control.calls) - before, answer }
  })

layer(server(undefined), { excludeTestServices: true })("a GET without an L1", (it) => {
  it.effect("reads the value and its TTL in one store round trip", () =>
    Effect.gen(function* () {
      yield* send("PUT", "/api/v1/cache/user%3A1", { value: { name: "ada" }, ttl: 600 })
      const { answer, calls } = yield* storeCallsOf("/api/v1/cache/user%3A1")
      assert.strictEqual(answer.status, 200)
      assert.deepStrictEqual(
        { ...answer.json, ttl: undefined },
        {
          key: "user:1",
          value: { name: "ada" },
          ttl: undefined,
          data_type: "string",
          hit: true
        }
      )
      assert.isTrue(answer.json.ttl >= 599 && answer.json.ttl <= 600, `ttl ${answer.json.ttl}`)
      assert.strictEqual(calls, 1)
      const hash = yield* send("PUT", "/api/v1/cache/h", { value: { f: "v" }, data_type: "hash", ttl: -1 })
      assert.strictEqual(hash.status, 200)
      const read = yield* storeCallsOf("/api/v1/cache/h")
      assert.deepStrictEqual(read.answer.json, { key: "h", value: { f: "v" }, ttl: -1, data_type: "hash", hit: true })
      assert.strictEqual(read.calls, 1)
    })
  )
})

layer(server({ maxEntries: 100 }), { excludeTestServices: true })("a GET with an L1", (it) => {
  it.effect("answers an L1 hit without the store, with the entry's remaining TTL, and a PUT removes it", () =>
    Effect.gen(function* () {
      yield* send("PUT", "/api/v1/cache/user%3A1", { value: { name: "ada" }, ttl: 600 })
      assert.strictEqual((yield* storeCallsOf("/api/v1/cache/user%3A1")).calls, 1)
      const hit = yield* storeCallsOf("/api/v1/cache/user%3A1")
      assert.strictEqual(hit.calls, 0)
      assert.deepStrictEqual(hit.answer.json.value, { name: "ada" })
      assert.isTrue(hit.answer.json.ttl >= 599 && hit.answer.json.ttl <= 600, `ttl ${hit.answer.json.ttl}`)
      yield* send("PUT", "/api/v1/cache/user%3A1", { value: { name: "grace" }, ttl: 60 })
      const after = yield* storeCallsOf("/api/v1/cache/user%3A1")
      assert.strictEqual(after.calls, 1)
      assert.deepStrictEqual(after.answer.json.value, { name: "grace" })
      yield* send("DELETE", "/api/v1/cache/user%3A1")
      assert.strictEqual((yield* send("GET", "/api/v1/cache/user%3A1")).status, 404)
    })
  )
})
