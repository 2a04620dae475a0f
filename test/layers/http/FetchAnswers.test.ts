/**
 * `GET ?load=true` answers what `Cache.fetch` decides: a fresh load and a hit are plain answers, a fail-safe copy is
 * `200` with `"stale": true`, `ttl: 0` and `Warning: 110 - "Response is Stale"`, "not found" is the contract's 404,
 * and a load abandoned at the hard timeout is `503 source_timeout`. The cache here is the memory cache with a
 * scripted `fetch` (keys `stale:*` answer stale, keys `slow:*` time out), so the answers' shape is pinned apart
 * from the fail-safe machinery; `serve` with a failing source covers them end to end.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as Cache from "../../../effects/Cache.ts"
import { staleWarning } from "../../../layers/http/Handlers.ts"
import * as MemoryDataSource from "../../../layers/source/MemoryDataSource.ts"
import * as MemoryStore from "../../../layers/store/MemoryStore.ts"
import { LoadTimeoutError } from "../../../src/DataSource.ts"
import { entryPath, send, serverOn } from "./RestClient.ts"

/** The keys `fetch` was called with. */
class FetchLog extends Context.Service<FetchLog, { readonly keys: Array<string> }>()("test/FetchLog") {}

const source = MemoryDataSource.make({ "stale:1": { name: "ada" }, "fresh:1": "hello", "slow:1": 1 })

/** The memory cache whose `fetch` is scripted by key prefix and logged. */
const scripted = Layer.unwrap(
  Effect.sync(() => {
    const keys: Array<string> = []
    const cache = Layer.effect(
      Cache.Cache,
      Effect.map(Cache.make(), (cache) =>
        Cache.Cache.of({
          ...cache,
          fetch: (key, load, options) => {
            keys.push(key)
            if (key.startsWith("slow:")) return Effect.fail(new LoadTimeoutError({ key, timeoutMs: 250 }))
            if (key.startsWith("stale:")) {
              // The value a failed load fell back to.
              return Effect.map(load, (found) =>
                Option.isSome(found)
                  ? { _tag: "Found" as const, value: found.value, stale: true }
                  : { _tag: "NotFound" as const }
              )
            }
            return cache.fetch(key, load, options)
          }
        })
      )
    ).pipe(Layer.provideMerge(MemoryStore.layer))
    return serverOn(cache, { name: "memory", source: source.source }).pipe(
      Layer.merge(Layer.succeed(FetchLog, { keys }))
    )
  })
)

const load = (key: string) => send("GET", `${entryPath(key)}?load=true`)

layer(scripted, { excludeTestServices: true })("GET ?load=true through Cache.fetch", (it) => {
  it.effect('answers a fail-safe copy 200 with "stale": true, ttl 0 and a Warning 110 header', () =>
    Effect.gen(function* () {
      const answer = yield* load("stale:1")
      assert.strictEqual(answer.status, 200, answer.text)
      assert.deepStrictEqual(answer.json, {
        key: "stale:1",
        value: { name: "ada" },
        ttl: 0,
        data_type: "string",
        hit: false,
        stale: true
      })
      assert.strictEqual(answer.headers.get("warning"), '110 - "Response is Stale"')
      assert.strictEqual(staleWarning, '110 - "Response is Stale"')
    })
  )

  it.effect("answers a fresh load and a hit without stale and without a Warning header", () =>
    Effect.gen(function* () {
      const log = yield* FetchLog
      const loaded = yield* load("fresh:1")
      assert.strictEqual(loaded.status, 200, loaded.text)
      assert.deepStrictEqual(loaded.json, { key: "fresh:1", value: "hello", ttl: -1, data_type: "string", hit: false })
      assert.isNull(loaded.headers.get("warning"))
      assert.include(log.keys, "fresh:1")
      assert.strictEqual((yield* send("PUT", entryPath("held:1"), { value: 7 })).status, 200)
      const hit = yield* load("held:1")
      assert.deepStrictEqual(hit.json, { key: "held:1", value: 7, ttl: -1, data_type: "string", hit: true })
      assert.isNull(hit.headers.get("warning"))
      assert.notInclude(log.keys, "held:1", "a hit does not fetch")
    })
  )

  it.effect("answers 404 {key, hit: false} when fetch finds nothing in the source", () =>
    Effect.gen(function* () {
      const log = yield* FetchLog
      const answer = yield* load("nobody:1")
      assert.deepStrictEqual([answer.status, answer.json], [404, { key: "nobody:1", hit: false }])
      assert.isNull(answer.headers.get("warning"))
      assert.include(log.keys, "nobody:1")
    })
  )

  it.effect("answers 503 source_timeout JSON for a load abandoned at the hard timeout", () =>
    Effect.gen(function* () {
      const answer = yield* load("slow:1")
      assert.strictEqual(answer.status, 503, answer.text)
      assert.strictEqual(answer.json.error, "source_timeout")
      assert.include(answer.json.message, "did not finish within 250 ms")
    })
  )
})
