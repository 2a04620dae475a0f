/**
 * The one-shot commands of `embedded-cache` as real subprocesses against a real `serve` (memory store, a local
 * HTTP data source): `warm` through the REST API with its JSON summary and exit codes, `stats`, `invalidate`,
 * `--help` on each, bad arguments; and `serve` re-warming its keys file on `CACHE_WARM_SCHEDULE`.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Poll from "../../utils/Poll.ts"
import * as ItemsSource from "../../utils/ItemsSource.ts"
import * as ServeProcess from "../../utils/ServeProcess.ts"

const dataSource = ItemsSource.make

/** Runs `embedded-cache <args>` to completion. */
const cli = (args: ReadonlyArray<string>, env: ServeProcess.Env = {}) => Effect.runPromise(ServeProcess.cli(args, env))

const lastJson = ServeProcess.lastJson

const items = { "user:1": { name: "ada" }, "user:2": "bob", "user:3": 3, "item:1": [1] }

describe("embedded-cache warm / stats / invalidate", () => {
  const scope = Effect.runSync(Scope.make())
  let url = ""
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-cli-"))

  beforeAll(async () => {
    const serve = await Effect.runPromise(
      Effect.gen(function* () {
        const sourceUrl = yield* dataSource(items)
        return yield* ServeProcess.start({ CACHE_STORE: "memory", CACHE_SOURCE: "http", CACHE_SOURCE_URL: sourceUrl })
      }).pipe(Effect.provideService(Scope.Scope, scope))
    )
    url = serve.url
  }, 60_000)

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    fs.rmSync(dir, { recursive: true, force: true })
  }, 30_000)

  it("warm --url --keys warms through the API and prints the JSON summary last, exit 0", async () => {
    const ran = await cli(["warm", "--url", url, "--keys", "user:1,user:2,user:404", "--batch-size", "2"])
    assert.strictEqual(ran.code, 0, ran.stderr)
    assert.deepInclude(lastJson(ran), { keys_warmed: 2, failed: 0, missing: 1, total: 3 })
    assert.isNumber(lastJson(ran)["duration_ms"])
    const entry = await fetch(`${url}/api/v1/cache/user:2`)
    assert.strictEqual(entry.status, 200)
  })

  it("warm --url --keys-file reads the keys (skipping comments) and warms them, exit 0", async () => {
    const file = path.join(dir, "keys.txt")
    fs.writeFileSync(file, "# warm these\nuser:3\n\nitem:1\nitem:404\n")
    const ran = await cli(["warm", "--url", url, "--keys-file", file, "--ttl", "60", "--tags", "t1,t2"])
    assert.strictEqual(ran.code, 0, ran.stderr)
    assert.deepInclude(lastJson(ran), { keys_warmed: 2, failed: 0, missing: 1, total: 3 })
  })

  it("warm --mode refresh|missing is sent with the request; any other mode exits 1 naming --mode", async () => {
    for (const mode of ["refresh", "missing"]) {
      const ran = await cli(["warm", "--url", url, "--keys", "user:1,user:2", "--mode", mode])
      assert.strictEqual(ran.code, 0, ran.stderr)
      assert.deepInclude(lastJson(ran), { failed: 0, total: 2 })
    }
    const other = await cli(["warm", "--url", url, "--keys", "user:1", "--mode", "eager"])
    assert.strictEqual(other.code, 1)
    assert.include(other.stdout + other.stderr, "--mode")
    assert.include((await cli(["warm", "--help"])).stdout, "--mode")
  })

  it("warm exits with code 2 when the failure ratio is above --max-failure-ratio, and 0 when within it", async () => {
    const args = ["warm", "--url", url, "--keys", "user:1,boom:1,user:2"]
    const above = await cli([...args, "--max-failure-ratio", "0.3"])
    assert.strictEqual(above.code, 2, above.stderr)
    assert.deepInclude(lastJson(above), { keys_warmed: 2, failed: 1, total: 3 })
    assert.include(above.stderr, "--max-failure-ratio")
    const within = await cli([...args, "--max-failure-ratio", "0.5"])
    assert.strictEqual(within.code, 0, within.stderr)
    const byDefault = await cli(args)
    assert.strictEqual(byDefault.code, 2, "the default ratio is 0")
  })

  it("warm exits with code 2 when the missing ratio is above --max-missing-ratio, and 0 when within it", async () => {
    const args = ["warm", "--url", url, "--keys", "user:1,user:404,user:405,user:2"]
    const above = await cli([...args, "--max-missing-ratio", "0.25"])
    assert.strictEqual(above.code, 2, above.stderr)
    assert.deepInclude(lastJson(above), { missing: 2, total: 4 })
    assert.include(above.stderr, "--max-missing-ratio")
    const within = await cli([...args, "--max-missing-ratio", "0.5"])
    assert.strictEqual(within.code, 0, within.stderr)
    const byDefault = await cli(args)
    assert.strictEqual(byDefault.code, 0, "missing keys are allowed by default")
  })

  it("without --url, warm, stats and invalidate talk to the sidecar at 127.0.0.1:$CACHE_HTTP_PORT", async () => {
    const local = { CACHE_HTTP_PORT: new URL(url).port }
    const warmed = await cli(["warm", "--keys", "user:3"], local)
    assert.strictEqual(warmed.code, 0, warmed.stderr)
    assert.deepInclude(lastJson(warmed), { total: 1, failed: 0 })
    assert.strictEqual((await fetch(`${url}/api/v1/cache/user:3`)).status, 200, "the running sidecar got the key")
    const stats = await cli(["stats"], local)
    assert.strictEqual(stats.code, 0, stats.stderr)
    assert.isNumber(lastJson(stats)["total_keys"])
    const invalidated = await cli(["invalidate", "--key", "user:3"], local)
    assert.deepInclude(lastJson(invalidated), { key: "user:3", keys_invalidated: 1 })
    assert.strictEqual((await fetch(`${url}/api/v1/cache/user:3`)).status, 404)
  })

  it("without --url and no sidecar running, warm warms nothing and fails with one line naming the local URL, exit 1", async () => {
    const port = String(await Effect.runPromise(ServeProcess.freePort))
    const ran = await cli(["warm", "--keys", "user:1"], { CACHE_HTTP_PORT: port, CACHE_STORE: "memory" })
    assert.strictEqual(ran.code, 1)
    assert.strictEqual(ran.stdout, "", "no summary of a warm that did not happen")
    assert.match(
      ran.stderr.trim(),
      new RegExp(`^error: cannot reach http://127\\.0\\.0\\.1:${port}/[^\\n]*is the sidecar running`)
    )
  })

  it("stats prints the instance's stats as JSON", async () => {
    const ran = await cli(["stats", "--url", url])
    assert.strictEqual(ran.code, 0, ran.stderr)
    const stats = lastJson(ran)
    assert.isNumber(stats["total_keys"])
    assert.isNumber(stats["hits"])
  })

  it("invalidate prints the API's JSON for a key, a pattern and tags", async () => {
    await cli(["warm", "--url", url, "--keys", "user:1,user:2"])
    const key = await cli(["invalidate", "--url", url, "--key", "user:1"])
    assert.strictEqual(key.code, 0, key.stderr)
    assert.deepStrictEqual(lastJson(key), { key: "user:1", keys_invalidated: 1, status: "success" })
    const pattern = await cli(["invalidate", "--url", url, "--pattern", "user:*"])
    assert.strictEqual(pattern.code, 0, pattern.stderr)
    assert.deepInclude(lastJson(pattern), { pattern: "user:*", status: "success" })
    const tags = await cli(["invalidate", "--url", url, "--tags", "t1,t2"])
    assert.strictEqual(tags.code, 0, tags.stderr)
    assert.deepInclude(lastJson(tags), { tags: ["t1", "t2"], status: "success" })
    assert.strictEqual((await fetch(`${url}/api/v1/cache/user:2`)).status, 404)
  })

  it("--help renders for warm, stats, invalidate, get, set and del", async () => {
    for (const [command, flag] of [
      ["warm", "--max-missing-ratio"],
      ["stats", "--url"],
      ["invalidate", "--pattern"],
      ["get", "--load"],
      ["set", "--ttl"],
      ["del", "--json"]
    ] as const) {
      const ran = await cli([command, "--help"])
      assert.strictEqual(ran.code, 0, ran.stderr)
      assert.include(ran.stdout, `embedded-cache ${command}`)
      assert.include(ran.stdout, flag)
    }
  })

  it("bad arguments exit 1 with a message: an unknown flag, a non-number, no keys, two targets", async () => {
    const unknown = await cli(["warm", "--url", url, "--bogus"])
    assert.strictEqual(unknown.code, 1)
    assert.include(unknown.stdout + unknown.stderr, "--bogus")
    const notNumber = await cli(["warm", "--url", url, "--keys", "a", "--ttl", "soon"])
    assert.strictEqual(notNumber.code, 1)
    assert.include(notNumber.stdout + notNumber.stderr, "--ttl")
    const none = await cli(["warm", "--url", url])
    assert.strictEqual(none.code, 1)
    assert.include(none.stderr, "exactly one of --keys, --keys-file or --pattern")
    const two = await cli(["invalidate", "--url", url, "--key", "a", "--tags", "b"])
    assert.strictEqual(two.code, 1)
    assert.include(two.stderr, "exactly one of --key, --pattern or --tags")
    const missingFile = await cli(["warm", "--url", url, "--keys-file", path.join(dir, "absent.txt")])
    assert.strictEqual(missingFile.code, 1)
    assert.include(missingFile.stderr, "cannot read --keys-file")
  })
})

describe("embedded-cache serve with CACHE_WARM_SCHEDULE", () => {
  it.live("re-reads CACHE_WARM_KEYS_FILE and re-warms it on the cron schedule", () =>
    Effect.gen(function* () {
      const sourceUrl = yield* dataSource(items)
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ec-cli-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const file = path.join(dir, "keys.txt")
      fs.writeFileSync(file, "user:1\n")
      const serve = yield* ServeProcess.start({
        CACHE_STORE: "memory",
        CACHE_SOURCE: "http",
        CACHE_SOURCE_URL: sourceUrl,
        CACHE_WARM_KEYS_FILE: file,
        CACHE_WARM_SCHEDULE: "* * * * * *"
      })
      fs.writeFileSync(file, "user:1\nuser:3\n")
      yield* Poll.until(
        Effect.promise(() => fetch(`${serve.url}/api/v1/cache/user:3`).then((response) => response.status === 200)),
        { timeoutMs: 10_000, what: "the scheduled run warms the key added to the file", intervalMs: 50 }
      )
      assert.include(serve.output(), "scheduled warm-up finished")
    })
  )

  it.live("an invalid cron expression stops serve at startup with a message naming CACHE_WARM_SCHEDULE", () =>
    Effect.gen(function* () {
      const serve = yield* ServeProcess.spawnServe({
        CACHE_STORE: "memory",
        CACHE_SOURCE: "http",
        CACHE_SOURCE_URL: "http://127.0.0.1:9/items/{key}",
        CACHE_WARM_KEYS_FILE: os.devNull,
        CACHE_WARM_SCHEDULE: "61 * * * *"
      })
      const exit = yield* Deferred.await(serve.exited)
      assert.strictEqual(exit.code, 1)
      assert.include(serve.output(), "CACHE_WARM_SCHEDULE")
    })
  )
})
