/**
 * The fail-safe family end to end: `embedded-cache serve` as a child process over its embedded Redis, loading from a
 * real HTTP source that starts failing. A GET answers the last good value flagged stale (body and `Warning` header)
 * without hammering the dead source, never once the value was invalidated; a burst of GETs for a key the source
 * lacks costs one source call.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ItemsSource from "../../utils/ItemsSource.ts"
import * as Poll from "../../utils/Poll.ts"
import * as ServeProcess from "../../utils/ServeProcess.ts"
import * as TempDir from "../../utils/TempDir.ts"

interface Answer {
  readonly status: number
  readonly body: Record<string, unknown>
  readonly warning: string | null
}

const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, init)
    const text = await response.text()
    return {
      status: response.status,
      body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>),
      warning: response.headers.get("warning")
    }
  })

/** `serve` on its embedded Redis in a temp dir, loading from `sourceUrl`, with 1 s TTLs and `env`. */
const serve = (sourceUrl: string, env: ServeProcess.Env) =>
  Effect.flatMap(TempDir.make, (dir) =>
    ServeProcess.start({
      CACHE_INSTANCE_ID: "fail-safe",
      CACHE_DATA_DIR: dir,
      CACHE_STORE: "embedded",
      CACHE_SOURCE: "http",
      CACHE_SOURCE_URL: sourceUrl,
      CACHE_DEFAULT_TTL: "1",
      ...env
    })
  )

describe("serve with fail-safe and negative caching", () => {
  it.live(
    "answers the stale copy while the source fails, asks the source once a throttle, and never after an invalidation",
    () =>
      Effect.gen(function* () {
        const steer = ItemsSource.control()
        const sourceUrl = yield* ItemsSource.make({ "user:1": { name: "ada" } }, steer)
        const server = yield* serve(sourceUrl, { CACHE_FAIL_SAFE_MAX_STALE: "60", CACHE_FAIL_SAFE_THROTTLE: "30" })
        const entry = `${server.url}/api/v1/cache/user:1`
        const loaded = yield* request(`${entry}?load=true`)
        assert.strictEqual(loaded.status, 200)
        assert.deepStrictEqual(loaded.body["value"], { name: "ada" })
        assert.notProperty(loaded.body, "stale")
        assert.isNull(loaded.warning)
        // Once its TTL has passed, a plain GET no longer answers it (the stale copy is kept for fail-safe only).
        yield* Poll.until(
          Effect.map(request(entry), (answer) => answer.status === 404),
          { timeoutMs: 10_000, what: "the entry expired", intervalMs: 50 }
        )
        steer.failing = true
        const stale = yield* request(`${entry}?load=true`)
        assert.strictEqual(stale.status, 200, JSON.stringify(stale.body))
        assert.deepStrictEqual(stale.body["value"], { name: "ada" })
        assert.strictEqual(stale.body["stale"], true)
        assert.strictEqual(stale.warning, '110 - "Response is Stale"')
        const asked = steer.requests.get("user:1")
        for (let i = 0; i < 5; i++) assert.strictEqual((yield* request(`${entry}?load=true`)).body["stale"], true)
        assert.strictEqual(steer.requests.get("user:1"), asked, "within the throttle the dead source is not asked")
        const stats = yield* request(`${server.url}/api/v1/cache/stats`)
        assert.strictEqual((stats.body["cache"] as Record<string, unknown>)["stale_answers"], 6)
        const metrics = yield* Effect.promise(() => fetch(`${server.url}/metrics`).then((r) => r.text()))
        assert.include(metrics, "cache_stale_answers_total 6")
        // An invalidation removes the stale copy: with the source still down, there is nothing left to answer.
        assert.strictEqual((yield* request(entry, { method: "DELETE" })).status, 200)
        const gone = yield* request(`${entry}?load=true`)
        assert.strictEqual(gone.status, 503)
        assert.strictEqual(gone.body["error"], "source_failed")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "answers a burst of GETs for a key the source lacks with one source call",
    () =>
      Effect.gen(function* () {
        const steer = ItemsSource.control()
        const sourceUrl = yield* ItemsSource.make({}, steer)
        const server = yield* serve(sourceUrl, { CACHE_NEGATIVE_TTL: "30" })
        const missing = `${server.url}/api/v1/cache/nobody?load=true`
        assert.strictEqual((yield* request(missing)).status, 404)
        const burst = yield* Effect.forEach(Array.from({ length: 50 }), () => request(missing), { concurrency: 10 })
        assert.deepStrictEqual(new Set(burst.map((answer) => answer.status)), new Set([404]))
        assert.strictEqual(steer.requests.get("nobody"), 1)
        const stats = yield* request(`${server.url}/api/v1/cache/stats`)
        // Each GET of the burst read the negative entry, or joined a concurrent GET's read of it.
        const cache = stats.body["cache"] as Record<string, number>
        assert.strictEqual(cache["negative_hits"]! + cache["shared_loads"]!, 50)
        assert.isAbove(cache["negative_hits"]!, 0)
      }).pipe(Effect.scoped),
    60_000
  )
})
