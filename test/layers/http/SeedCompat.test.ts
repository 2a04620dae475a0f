/**
 * The seed's own examples against a real server on 127.0.0.1 (memory store, a memory data source named "memory"):
 * `/warm` with `"source": "database"`, `PUT {ttl: -1}` without expiry, JSON values coming back from GET as the same
 * JSON values (PUT, loaded or warmed), a stored text that is not JSON answered as a string, and `GET /` pointing to
 * the docs and the API.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as MemoryDataSource from "../../../layers/source/MemoryDataSource.ts"
import { CacheStore } from "../../../src/CacheStore.ts"
import { entryPath, memoryServer, send } from "./RestClient.ts"

const source = MemoryDataSource.make({
  "db:object": { name: "ada", langs: ["en", "fr"] },
  "db:array": [1, "two"],
  "db:number": 7,
  "db:text": "plain text",
  "db:flag": true
})

layer(memoryServer({ name: "memory", source: source.source }), { excludeTestServices: true })(
  "seed compatibility",
  (it) => {
    it.effect('warms with the seed\'s "source": "database", "default" and the configured name alike', () =>
      Effect.gen(function* () {
        for (const name of ["database", "default", "memory"]) {
          const warmed = yield* send("POST", "/api/v1/cache/warm", { keys: ["db:object", "db:nope"], source: name })
          assert.strictEqual(warmed.status, 200, `${name}: ${warmed.text}`)
          assert.deepInclude(warmed.json, { keys_warmed: 1, missing: 1, failed: 0, status: "success" }, name)
          yield* send("DELETE", entryPath("db:object"))
        }
        const unknown = yield* send("POST", "/api/v1/cache/warm", { keys: ["db:object"], source: "postgres" })
        assert.strictEqual(unknown.status, 400)
        assert.strictEqual(unknown.json.error, "unknown_source")
        assert.include(unknown.json.message, '"database"')
      })
    )

    it.effect("stores a PUT with ttl -1 without expiry, even over an entry that had one", () =>
      Effect.gen(function* () {
        const key = "ttl:none"
        assert.deepStrictEqual((yield* send("PUT", entryPath(key), { value: "v", ttl: 60 })).json.ttl, 60)
        const written = yield* send("PUT", entryPath(key), { value: "w", ttl: -1 })
        assert.deepStrictEqual([written.status, written.json], [200, { key, status: "set", ttl: -1 }])
        const read = yield* send("GET", entryPath(key))
        assert.deepStrictEqual(read.json, { key, value: "w", ttl: -1, data_type: "string", hit: true })
        const hash = yield* send("PUT", entryPath("ttl:hash"), { value: { f: "v" }, data_type: "hash", ttl: -1 })
        assert.strictEqual(hash.json.ttl, -1)
        assert.strictEqual((yield* send("GET", entryPath("ttl:hash"))).json.ttl, -1)
      })
    )

    it.effect("still refuses ttl 0, -2 and other values below -1 with 400", () =>
      Effect.gen(function* () {
        for (const ttl of [0, -2, -3600, -1.5]) {
          const answer = yield* send("PUT", entryPath("ttl:bad"), { value: "v", ttl })
          assert.strictEqual(answer.status, 400, `ttl ${ttl}: ${answer.text}`)
        }
        assert.strictEqual((yield* send("GET", entryPath("ttl:bad"))).status, 404)
      })
    )

    it.effect("answers a JSON value PUT as a string entry with the same JSON value, strings staying strings", () =>
      Effect.gen(function* () {
        const values: ReadonlyArray<unknown> = [
          { name: "ada", tags: ["a", "b"], nested: { n: 1.5, ok: false, none: null } },
          [1, "two", { three: 3 }],
          42,
          -0.25,
          true,
          false,
          null,
          "ada",
          "",
          "42",
          "true",
          '{"looks":"like JSON"}'
        ]
        for (const [i, value] of values.entries()) {
          const key = `json:${i}`
          assert.strictEqual((yield* send("PUT", entryPath(key), { value })).status, 200)
          const read = yield* send("GET", entryPath(key))
          assert.deepStrictEqual(read.json.value, value, JSON.stringify(value))
          assert.strictEqual(read.json.data_type, "string")
        }
      })
    )

    it.effect("answers a stored text that is not JSON (written by another tool) as that string", () =>
      Effect.gen(function* () {
        const store = yield* CacheStore
        for (const [key, text] of [
          ["raw:1", "hello world"],
          ["raw:2", "{not json"],
          ["raw:3", ""]
        ] as const) {
          yield* Effect.orDie(store.set(key, text))
          const read = yield* send("GET", entryPath(key))
          assert.strictEqual(read.status, 200, read.text)
          assert.strictEqual(read.json.value, text)
        }
      })
    )

    it.effect("answers values loaded with ?load=true as the same JSON values, then as hits", () =>
      Effect.gen(function* () {
        for (const [key, value] of [
          ["db:object", { name: "ada", langs: ["en", "fr"] }],
          ["db:array", [1, "two"]],
          ["db:number", 7],
          ["db:text", "plain text"],
          ["db:flag", true]
        ] as const) {
          yield* send("DELETE", entryPath(key))
          const loaded = yield* send("GET", `${entryPath(key)}?load=true`)
          assert.deepStrictEqual(loaded.json, { key, value, ttl: loaded.json.ttl, data_type: "string", hit: false })
          const again = yield* send("GET", entryPath(key))
          assert.deepStrictEqual([again.json.value, again.json.hit], [value, true])
        }
      })
    )

    it.effect("answers GET / with JSON pointing to /docs, /openapi.json and the API, all of which answer", () =>
      Effect.gen(function* () {
        const index = yield* send("GET", "/")
        assert.strictEqual(index.status, 200)
        assert.include(index.headers.get("content-type") ?? "", "application/json")
        assert.deepInclude(index.json, {
          name: "embedded-cache",
          docs: "/docs",
          openapi: "/openapi.json",
          api: "/api/v1/cache"
        })
        assert.strictEqual((yield* send("GET", index.json.docs)).status, 200)
        assert.strictEqual((yield* send("GET", index.json.openapi)).json.openapi, "3.1.0")
        assert.strictEqual((yield* send("GET", `${index.json.api}/stats`)).status, 200)
        for (const probe of [index.json.health, index.json.ready, index.json.metrics]) {
          assert.strictEqual((yield* send("GET", probe)).status, 200, probe)
        }
        const wrongMethod = yield* send("POST", "/", {})
        assert.strictEqual(wrongMethod.status, 405)
        assert.strictEqual(wrongMethod.json.error, "method_not_allowed")
      })
    )
  }
)
