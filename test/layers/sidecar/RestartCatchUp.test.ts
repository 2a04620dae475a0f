/**
 * A restarted instance must not serve a value invalidated while it was down, even after /readyz says 200: its queue
 * (adopted, not created) holds the events of the downtime — one possibly invisible for a while, received by the dead
 * process's last poll — and its persisted store holds the old values. Two `serve` processes on the fauxqs emulator;
 * B persists with AOF, is SIGKILLed, misses a DELETE on A, and restarts on its data dir.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as path from "node:path"
import * as Fauxqs from "../../utils/Fauxqs.ts"
import * as ItemsSource from "../../utils/ItemsSource.ts"
import * as Poll from "../../utils/Poll.ts"
import * as ServeProcess from "../../utils/ServeProcess.ts"
import * as TempDir from "../../utils/TempDir.ts"

const get = (url: string) =>
  Effect.promise(() =>
    fetch(url).then(async (response) => ({ status: response.status, body: (await response.json()) as unknown }))
  )

describe("a restart catching up with its peers", () => {
  it.live("never answers a value invalidated while it was down, and is ready only once it caught up", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      const dir = yield* TempDir.make
      const items: Record<string, unknown> = { "user:1": "v1" }
      const sourceUrl = yield* ItemsSource.make(items)
      const env = (id: string, store: string) => ({
        CACHE_INSTANCE_ID: id,
        CACHE_DATA_DIR: path.join(dir, id),
        CACHE_STORE: store,
        CACHE_PERSISTENCE: "aof",
        CACHE_APPENDFSYNC: "always",
        CACHE_BUS: "sns-sqs",
        CACHE_SNS_TOPIC_NAME: "catch-up-test",
        CACHE_SQS_WAIT_SECONDS: "1",
        CACHE_SQS_VISIBILITY_TIMEOUT: "3",
        CACHE_SOURCE: "http",
        CACHE_SOURCE_URL: sourceUrl,
        ...Fauxqs.awsEnv(fauxqs)
      })
      const a = yield* ServeProcess.start(env("a", "memory"))
      const first = yield* ServeProcess.start(env("b", "embedded"))
      const cached = yield* get(`${first.url}/api/v1/cache/user:1?load=true`)
      assert.deepInclude(cached.body as object, { value: "v1" })
      yield* first.stop("SIGKILL")

      items["user:1"] = "v2"
      const deleted = yield* get(`${a.url}/api/v1/cache/user:1`).pipe(
        Effect.andThen(Effect.promise(() => fetch(`${a.url}/api/v1/cache/user:1`, { method: "DELETE" })))
      )
      assert.strictEqual(deleted.status, 200)

      const b = yield* ServeProcess.start(env("b", "embedded"))
      // Read from the moment it answers until it is ready and the delete is applied: never the old value.
      const seen: Array<number> = []
      yield* Poll.until(
        Effect.gen(function* () {
          const read = yield* get(`${b.url}/api/v1/cache/user:1`)
          assert.notDeepInclude(read.body as object, { value: "v1" }, "served a value invalidated while it was down")
          seen.push(read.status)
          const ready = yield* get(`${b.url}/readyz`)
          return ready.status === 200 && read.status === 404
        }),
        { timeoutMs: 30_000, what: "b caught up", intervalMs: 20 }
      )
      const loaded = yield* get(`${b.url}/api/v1/cache/user:1?load=true`)
      assert.deepInclude(loaded.body as object, { value: "v2" })
    }).pipe(Effect.scoped)
  )
})
