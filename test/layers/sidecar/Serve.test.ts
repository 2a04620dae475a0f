/**
 * `embedded-cache serve` end to end, as real child processes: two instances with their own embedded
 * redis-servers synchronised over fauxqs, loading from a real local HTTP data source; a killed Redis under a
 * running service; SIGTERM; and a configuration error.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import * as Fauxqs from "../../utils/Fauxqs.ts"
import * as Poll from "../../utils/Poll.ts"
import * as ItemsSource from "../../utils/ItemsSource.ts"
import * as ServeProcess from "../../utils/ServeProcess.ts"
import * as TempDir from "../../utils/TempDir.ts"

const dataSource = ItemsSource.make

const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    return { status: response.status, body: text.length > 0 ? (JSON.parse(text) as Record<string, unknown>) : {} }
  })

const json = (method: string, body: unknown): RequestInit => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const redisPid = (dataDir: string) => Number(fs.readFileSync(path.join(dataDir, "redis.pid"), "utf8").trim())

describe("embedded-cache serve", () => {
  it.live(
    "two instances over SNS/SQS: a PUT, a DELETE, a pattern and a tag invalidation on one drop the keys on the other",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const dir = yield* TempDir.make
        const sourceUrl = yield* dataSource({ "user:1": { name: "ada" }, "user:2": "bob", "item:1": 1, "order:1": [1] })
        const env = (id: string) => ({
          CACHE_INSTANCE_ID: id,
          CACHE_DATA_DIR: path.join(dir, id),
          CACHE_STORE: "embedded",
          CACHE_BUS: "sns-sqs",
          CACHE_SNS_TOPIC_NAME: "serve-test",
          CACHE_SOURCE: "http",
          CACHE_SOURCE_URL: sourceUrl,
          ...Fauxqs.awsEnv(fauxqs)
        })
        const [a, b] = yield* Effect.all([ServeProcess.start(env("a")), ServeProcess.start(env("b"))], {
          concurrency: 2
        })
        for (const serve of [a, b]) {
          const users = yield* request(
            `${serve.url}/api/v1/cache/warm`,
            json("POST", { keys: ["user:1", "user:2", "item:1"], source: "http" })
          )
          assert.deepInclude(users.body, { keys_warmed: 3, failed: 0, missing: 0, status: "success" })
          const orders = yield* request(
            `${serve.url}/api/v1/cache/warm`,
            json("POST", { keys: ["order:1", "order:404"], source: "http", tags: ["orders"] })
          )
          assert.deepInclude(orders.body, { keys_warmed: 1, failed: 0, missing: 1, status: "success" })
        }
        const present = (key: string) => Effect.map(request(`${b.url}/api/v1/cache/${key}`), (r) => r.status === 200)
        const dropped = (key: string) =>
          Poll.until(
            Effect.map(present(key), (p) => !p),
            { timeoutMs: 15_000, what: `b drops ${key}`, intervalMs: 20 }
          )
        for (const key of ["user:1", "user:2", "item:1", "order:1"]) assert.isTrue(yield* present(key))

        assert.strictEqual((yield* request(`${a.url}/api/v1/cache/user:1`, json("PUT", { value: "new" }))).status, 200)
        yield* dropped("user:1")
        assert.strictEqual((yield* request(`${a.url}/api/v1/cache/user:2`, { method: "DELETE" })).status, 200)
        yield* dropped("user:2")
        const byPattern = yield* request(
          `${a.url}/api/v1/cache/invalidate`,
          json("POST", { pattern: "item:*", invalidation_type: "pattern" })
        )
        assert.deepInclude(byPattern.body, { pattern: "item:*", keys_invalidated: 1, status: "success" })
        yield* dropped("item:1")
        const byTag = yield* request(
          `${a.url}/api/v1/cache/invalidate`,
          json("POST", { tags: ["orders"], invalidation_type: "tag" })
        )
        assert.deepInclude(byTag.body, { tags: ["orders"], keys_invalidated: 1, status: "success" })
        yield* dropped("order:1")
        // The writer keeps its own write.
        assert.strictEqual((yield* request(`${a.url}/api/v1/cache/user:1`)).body["value"], "new")
        for (const serve of [a, b]) assert.deepStrictEqual(yield* serve.stop(), { code: 0, signal: null })
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "answers load-through GETs from the source while Redis is down, is not ready meanwhile, and recovers after the restart",
    () =>
      Effect.gen(function* () {
        const dir = yield* TempDir.make
        const sourceUrl = yield* dataSource({ "user:1": "from the source" })
        const serve = yield* ServeProcess.start({
          CACHE_INSTANCE_ID: "solo",
          CACHE_DATA_DIR: dir,
          CACHE_STORE: "embedded",
          CACHE_SOURCE: "http",
          CACHE_SOURCE_URL: sourceUrl
        })
        const get = request(`${serve.url}/api/v1/cache/user:1?load=true`)
        assert.strictEqual((yield* get).body["hit"], false)
        assert.strictEqual((yield* get).body["hit"], true)
        const pid = redisPid(dir)
        // Hang it first, so the outage lasts long enough to be seen, then kill it: the supervisor restarts it.
        process.kill(pid, "SIGSTOP")
        yield* Poll.until(
          Effect.map(request(`${serve.url}/readyz`), (r) => r.status === 503),
          { timeoutMs: 10_000, what: "not ready while Redis does not answer", intervalMs: 20 }
        )
        for (let i = 0; i < 5; i++) {
          const response = yield* get
          assert.strictEqual(response.status, 200)
          assert.strictEqual(response.body["value"], "from the source")
        }
        process.kill(pid, "SIGKILL") // a stopped process dies of SIGKILL too; nothing to continue
        yield* Poll.until(
          Effect.map(request(`${serve.url}/readyz`), (r) => r.status === 200),
          { timeoutMs: 15_000, what: "ready after the supervisor's restart", intervalMs: 20 }
        )
        assert.notStrictEqual(redisPid(dir), pid)
        yield* Poll.until(
          Effect.flatMap(get, (r) => Effect.succeed(r.status === 200 && r.body["hit"] === true)),
          { timeoutMs: 10_000, what: "served from the restarted store again", intervalMs: 20 }
        )
        assert.deepStrictEqual(yield* serve.stop(), { code: 0, signal: null })
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("is not ready until the startup warm-up of CACHE_WARM_KEYS_FILE finished, then serves the warmed keys", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      // A source that holds its answers until the test lets them go.
      const held: Array<() => void> = []
      const server = yield* Effect.acquireRelease(
        Effect.callback<http.Server>((resume) => {
          const s = http.createServer((request, response) => {
            const key = decodeURIComponent((request.url ?? "").replace(/^\/items\//, ""))
            held.push(() =>
              response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(`v-${key}`))
            )
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.callback<void>((resume) => {
            s.closeAllConnections()
            s.close(() => resume(Effect.void))
          })
      )
      const keysFile = path.join(dir, "keys.txt")
      fs.writeFileSync(keysFile, "# warmed at startup\nuser:1\n\nuser:2\n")
      const serve = yield* ServeProcess.start({
        CACHE_STORE: "memory",
        CACHE_SOURCE: "http",
        CACHE_SOURCE_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/items/{key}`,
        CACHE_WARM_KEYS_FILE: keysFile
      })
      yield* Poll.until(
        Effect.sync(() => held.length > 0),
        { timeoutMs: 10_000, what: "the warm-up asks the source" }
      )
      const notYet = yield* request(`${serve.url}/readyz`)
      assert.strictEqual(notYet.status, 503)
      while (held.length > 0) held.shift()!()
      yield* Poll.until(
        Effect.sync(() => {
          while (held.length > 0) held.shift()!()
          return true
        }).pipe(Effect.andThen(Effect.map(request(`${serve.url}/readyz`), (r) => r.status === 200))),
        { timeoutMs: 10_000, what: "ready once the warm-up finished", intervalMs: 10 }
      )
      for (const key of ["user:1", "user:2"]) {
        const got = yield* request(`${serve.url}/api/v1/cache/${key}`)
        assert.deepInclude(got.body, { value: `v-${key}`, hit: true })
      }
      assert.deepStrictEqual(yield* serve.stop(), { code: 0, signal: null })
    }).pipe(Effect.scoped)
  )

  it.live("loads misses from PostgreSQL with CACHE_SOURCE=sql", () =>
    Effect.gen(function* () {
      const table = `serve_source_${process.pid}_${Date.now()}`
      const url = process.env["CACHE_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test"
      const psql = (sql: string) =>
        Effect.sync(() => {
          const result = spawnSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-c", sql], { encoding: "utf8" })
          assert.strictEqual(result.status, 0, result.stderr)
        })
      yield* Effect.acquireRelease(
        psql(
          `create table ${table} (key text primary key, value jsonb); insert into ${table} values ('user:1', '{"name":"ada"}')`
        ),
        () => Effect.orDie(psql(`drop table if exists ${table}`))
      )
      const serve = yield* ServeProcess.start({
        CACHE_STORE: "memory",
        CACHE_SOURCE: "sql",
        CACHE_SOURCE_SQL_URL: url,
        CACHE_SOURCE_SQL_TABLE: table
      })
      const loaded = yield* request(`${serve.url}/api/v1/cache/user:1?load=true`)
      assert.deepInclude(loaded.body, { hit: false })
      assert.deepStrictEqual(loaded.body["value"], { name: "ada" })
      assert.strictEqual((yield* request(`${serve.url}/api/v1/cache/user:2?load=true`)).status, 404)
      assert.deepStrictEqual(yield* serve.stop(), { code: 0, signal: null })
    }).pipe(Effect.scoped)
  )

  it.live("SIGTERM drains, exits 0 and leaves no redis-server behind", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const serve = yield* ServeProcess.start({ CACHE_DATA_DIR: dir, CACHE_STORE: "embedded" })
      const pid = redisPid(dir)
      assert.isTrue(isAlive(pid))
      assert.deepStrictEqual(yield* serve.stop("SIGTERM"), { code: 0, signal: null })
      assert.isFalse(isAlive(pid))
      assert.isFalse(fs.existsSync(path.join(dir, "embedded-cache.lock")))
    }).pipe(Effect.scoped)
  )

  it.live("CACHE_STORE=auto falls back to the memory store, with a warning, when redis-server is not on PATH", () =>
    Effect.gen(function* () {
      const serve = yield* ServeProcess.start({ PATH: path.dirname(process.execPath), CACHE_STORE: "auto" })
      const stats = yield* request(`${serve.url}/api/v1/cache/stats`)
      assert.strictEqual(stats.body["store"], "memory")
      assert.include(serve.output(), "redis-server is not on PATH")
      assert.strictEqual((yield* request(`${serve.url}/api/v1/cache/k`, json("PUT", { value: "v" }))).status, 200)
      assert.strictEqual((yield* request(`${serve.url}/api/v1/cache/k`)).body["value"], "v")
      assert.deepStrictEqual(yield* serve.stop(), { code: 0, signal: null })
    }).pipe(Effect.scoped)
  )

  it.live("an invalid setting fails at startup with one message naming the variable", () =>
    Effect.gen(function* () {
      const serve = yield* ServeProcess.spawnServe({ CACHE_STORE: "memory", CACHE_EVICTION_POLICY: "most-recent" })
      const exit = yield* serve.stop("SIGCONT")
      assert.notStrictEqual(exit.code, 0)
      assert.include(serve.output(), "CACHE_EVICTION_POLICY")
    }).pipe(Effect.scoped)
  )
})
