/**
 * `embedded-cache get`, `set`, `del` and `warm --offline` as real subprocesses against a real `serve`: values given
 * as JSON or plain text, TTLs, tags and data types reach the API; a miss exits 3; JSON when stdout is not a terminal
 * and readable text when it is (run under `script` from bsdutils, Essential on Debian, which gives the command a terminal); an offline warm fills the
 * configured store, and refuses in one line a data dir a running sidecar holds.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import * as CliOutput from "../../../layers/sidecar/CliOutput.ts"
import * as EntryCommands from "../../../layers/sidecar/EntryCommands.ts"
import * as WarmCommand from "../../../layers/sidecar/WarmCommand.ts"
import * as ItemsSource from "../../utils/ItemsSource.ts"
import * as ServeProcess from "../../utils/ServeProcess.ts"
import * as TempDir from "../../utils/TempDir.ts"

const main = path.resolve(import.meta.dirname, "../../../layers/sidecar/main.ts")

const cli = (args: ReadonlyArray<string>, env: ServeProcess.Env = {}) => Effect.runPromise(ServeProcess.cli(args, env))
const lastJson = ServeProcess.lastJson

/** Runs `embedded-cache <args>` with a terminal as stdout; its output with the terminal's \r\n as \n. */
const onTerminal = (args: ReadonlyArray<string>) => {
  const quoted = [process.execPath, main, ...args].map((arg) => `'${arg.replace(/'/g, "'\\''")}'`).join(" ")
  const ran = spawnSync("script", ["-qec", quoted, "/dev/null"], { encoding: "utf8" })
  return { code: ran.status, stdout: ran.stdout.replace(/\r\n/g, "\n") }
}

describe("embedded-cache get / set / del", () => {
  const scope = Effect.runSync(Scope.make())
  let url = ""

  beforeAll(async () => {
    const serve = await Effect.runPromise(
      Effect.gen(function* () {
        const sourceUrl = yield* ItemsSource.make({ "user:1": { name: "ada" } })
        return yield* ServeProcess.start({ CACHE_STORE: "memory", CACHE_SOURCE: "http", CACHE_SOURCE_URL: sourceUrl })
      }).pipe(Effect.provideService(Scope.Scope, scope))
    )
    url = serve.url
  }, 60_000)

  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)), 30_000)

  it("set takes a plain string as it is and get prints it back, as the API's JSON when stdout is not a terminal", async () => {
    const set = await cli(["set", "greeting", "hello world", "--url", url])
    assert.strictEqual(set.code, 0, set.stderr)
    assert.deepInclude(lastJson(set), { key: "greeting", status: "set" })
    const got = await cli(["get", "greeting", "--url", url])
    assert.strictEqual(got.code, 0, got.stderr)
    assert.deepInclude(lastJson(got), { key: "greeting", value: "hello world", data_type: "string", hit: true })
  })

  it("set parses a JSON VALUE: a quoted string is the string, an object with --type hash is the hash", async () => {
    assert.strictEqual((await cli(["set", "quoted", '"a b"', "--url", url])).code, 0)
    assert.deepInclude(lastJson(await cli(["get", "quoted", "--url", url])), { value: "a b" })
    const hash = await cli(["set", "h", '{"field":"1"}', "--type", "hash", "--url", url])
    assert.strictEqual(hash.code, 0, hash.stderr)
    assert.deepInclude(lastJson(await cli(["get", "h", "--json", "--url", url])), {
      value: { field: "1" },
      data_type: "hash"
    })
  })

  it("set --ttl and --tags reach the API: the TTL is reported and a tag invalidation removes the entry", async () => {
    const set = await cli(["set", "tagged", "v", "--ttl", "120", "--tags", "t1, t2", "--url", url])
    assert.strictEqual(set.code, 0, set.stderr)
    assert.strictEqual(lastJson(set)["ttl"], 120)
    const ttl = lastJson(await cli(["get", "tagged", "--url", url]))["ttl"] as number
    assert.isTrue(ttl > 0 && ttl <= 120, String(ttl))
    const invalidated = await cli(["invalidate", "--tags", "t2", "--url", url])
    assert.deepInclude(lastJson(invalidated), { keys_invalidated: 1 })
    assert.strictEqual((await cli(["get", "tagged", "--url", url])).code, EntryCommands.missExitCode)
  })

  it("get of a key that is not cached exits 3 with the API's miss as JSON and one line on stderr; --load loads it", async () => {
    const miss = await cli(["get", "user:1", "--url", url])
    assert.strictEqual(miss.code, 3)
    assert.deepStrictEqual(lastJson(miss), { key: "user:1", hit: false })
    assert.strictEqual(miss.stderr.trim(), "error: user:1 is not cached")
    const loaded = await cli(["get", "user:1", "--load", "--url", url])
    assert.strictEqual(loaded.code, 0, loaded.stderr)
    assert.deepInclude(lastJson(loaded), { key: "user:1", hit: false })
  })

  it("del deletes the key, so a following get misses", async () => {
    await cli(["set", "doomed", "v", "--url", url])
    const deleted = await cli(["del", "doomed", "--url", url])
    assert.strictEqual(deleted.code, 0, deleted.stderr)
    assert.deepStrictEqual(lastJson(deleted), { key: "doomed", status: "deleted" })
    assert.strictEqual((await cli(["get", "doomed", "--url", url])).code, 3)
  })

  it("set refuses an unknown --type, and the API's refusal (a TTL of 0) is one line with exit 1", async () => {
    const type = await cli(["set", "k", "v", "--type", "blob", "--url", url])
    assert.strictEqual(type.code, 1)
    assert.include(type.stderr, "--type must be one of")
    const ttl = await cli(["set", "k", "v", "--ttl", "0", "--url", url])
    assert.strictEqual(ttl.code, 1)
    assert.match(ttl.stderr.trim(), /^error: PUT \S+ answered 400: /)
  })

  it("on a terminal, get prints the value itself and set, del, warm and stats print sentences", () => {
    assert.strictEqual(
      onTerminal(["set", "tty", "plain text", "--ttl", "60", "--url", url]).stdout.trim(),
      "set tty (expires in 60 s)"
    )
    assert.strictEqual(onTerminal(["get", "tty", "--url", url]).stdout.trim(), "plain text")
    assert.strictEqual(onTerminal(["get", "tty", "--json", "--url", url]).stdout.trim().startsWith("{"), true)
    assert.strictEqual(onTerminal(["del", "tty", "--url", url]).stdout.trim(), "deleted tty")
    assert.match(
      onTerminal(["warm", "--keys", "user:1", "--url", url]).stdout,
      /warmed \d of 1 key: 0 missing, 0 failed/
    )
    assert.match(onTerminal(["stats", "--url", url]).stdout, /^total_keys\s+\d+$/m)
  })
})

describe("embedded-cache get / set against a sidecar with CACHE_API_TOKEN", () => {
  it.live("sends CACHE_API_TOKEN (or --token) as the bearer token; without it the 401 is one line, exit 1", () =>
    Effect.gen(function* () {
      const serve = yield* ServeProcess.start({ CACHE_STORE: "memory", CACHE_API_TOKEN: "s3cret" })
      const local = { CACHE_HTTP_PORT: new URL(serve.url).port }
      const refused = yield* ServeProcess.cli(["set", "k", "v"], { ...local, CACHE_API_TOKEN: undefined })
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr.trim(), /^error: PUT \S+ answered 401: /)
      const set = yield* ServeProcess.cli(["set", "k", "v"], { ...local, CACHE_API_TOKEN: "s3cret" })
      assert.strictEqual(set.code, 0, set.stderr)
      const got = yield* ServeProcess.cli(["get", "k", "--token", "s3cret"], { ...local, CACHE_API_TOKEN: undefined })
      assert.deepInclude(lastJson(got), { value: "v" })
    }).pipe(Effect.scoped)
  )

  it("CACHE_HTTP_PORT=0 (any port, for serve) gives the one-shot commands one line asking for --url", async () => {
    const ran = await cli(["stats"], { CACHE_HTTP_PORT: "0" })
    assert.strictEqual(ran.code, 1)
    assert.strictEqual(
      ran.stderr.trim(),
      'error: CACHE_HTTP_PORT is "0", not a port the local sidecar can be reached at: pass --url'
    )
  })
})

describe("embedded-cache warm --offline", () => {
  it.live(
    "fills the configured store (rdb), so a sidecar started on that data dir serves the warmed keys",
    () =>
      Effect.gen(function* () {
        const dir = yield* TempDir.make
        const sourceUrl = yield* ItemsSource.make({ "user:1": "ada", "user:2": "bob" })
        const env = {
          CACHE_STORE: "embedded",
          CACHE_DATA_DIR: dir,
          CACHE_PERSISTENCE: "rdb",
          CACHE_SOURCE: "http",
          CACHE_SOURCE_URL: sourceUrl
        }
        const warmed = yield* ServeProcess.cli(["warm", "--offline", "--keys", "user:1,user:2,user:3"], env)
        assert.strictEqual(warmed.code, 0, warmed.stderr)
        assert.deepInclude(lastJson(warmed), { keys_warmed: 2, missing: 1, total: 3 })
        assert.lengthOf(warmed.stdout.trim().split("\n"), 1, "stdout holds the summary only; logs go to stderr")
        const serve = yield* ServeProcess.start(env)
        const got = yield* Effect.promise(() => fetch(`${serve.url}/api/v1/cache/user:2`).then((r) => r.json()))
        assert.deepInclude(got, { value: "bob", hit: true })
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("into a data dir a running sidecar holds, fails with one line naming its process, exit 1", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const sourceUrl = yield* ItemsSource.make({ "user:1": "ada" })
      const env = { CACHE_STORE: "embedded", CACHE_DATA_DIR: dir, CACHE_SOURCE: "http", CACHE_SOURCE_URL: sourceUrl }
      const serve = yield* ServeProcess.start(env)
      const ran = yield* ServeProcess.cli(["warm", "--offline", "--keys", "user:1"], env)
      assert.strictEqual(ran.code, 1)
      assert.strictEqual(
        ran.stderr.trim(),
        `error: the data dir ${dir} is in use by process ${serve.pid} (a running sidecar?): warm through it (without --offline, or with --url), or stop it`
      )
      assert.strictEqual(ran.stdout, "")
    }).pipe(Effect.scoped)
  )

  it("does not take --url", async () => {
    const ran = await cli(["warm", "--offline", "--url", "http://127.0.0.1:9", "--keys", "a"])
    assert.strictEqual(ran.code, 1)
    assert.include(ran.stderr, "--offline warms the configured store directly")
  })
})

describe("the CLI's output helpers", () => {
  it("parseValue reads JSON and keeps anything else as the text", () => {
    assert.deepStrictEqual(EntryCommands.parseValue('{"a":[1]}'), { a: [1] })
    assert.strictEqual(EntryCommands.parseValue("42"), 42)
    assert.strictEqual(EntryCommands.parseValue('"x"'), "x")
    assert.strictEqual(EntryCommands.parseValue("hello world"), "hello world")
    assert.strictEqual(EntryCommands.parseValue("{not json"), "{not json")
  })

  it("describeSummary, table and showValue read as text", () => {
    const summary = {
      keys_warmed: 2,
      failed: 0,
      missing: 1,
      status: "success",
      total: 3,
      already_cached: 0,
      duration_ms: 5
    } as const
    assert.strictEqual(
      WarmCommand.describeSummary(summary),
      "warmed 2 of 3 keys: 1 missing, 0 failed, 0 already cached (5 ms)"
    )
    assert.strictEqual(CliOutput.table({ a: 1, long_name: "x" }), "a          1\nlong_name  x")
    assert.strictEqual(CliOutput.showValue("text"), "text")
    assert.strictEqual(CliOutput.showValue({ a: "1" }), '{\n  "a": "1"\n}')
  })
})
