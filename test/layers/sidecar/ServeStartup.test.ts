/**
 * How `embedded-cache serve` starts, stops and says so, as real child processes: the default data dir is stable
 * for the instance (derived from the host name), so a restart with persistence finds its data and a second process
 * on it is refused; one startup line (with the real port when 0 was asked) and one shutdown line; access logs only
 * on request; `CACHE_LOG_LEVEL`; and one-line errors for a port in use, an unwritable data dir, a missing
 * redis-server.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Poll from "../../utils/Poll.ts"
import * as ServeProcess from "../../utils/ServeProcess.ts"
import * as TempDir from "../../utils/TempDir.ts"

/** The environment of a `serve` that relies on the defaults of the instance id and the data dir. */
const defaults: ServeProcess.Env = { CACHE_INSTANCE_ID: undefined, CACHE_DATA_DIR: undefined }

const request = (url: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    return { status: response.status, body: (await response.text()).trim() }
  })

const put = (url: string, body: unknown) =>
  request(url, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

/** The JSON log lines of an output (other lines skipped). */
const logLines = (output: string): ReadonlyArray<{ readonly message: string; readonly level: string }> =>
  output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { message: string; level: string })

/** A failed start: its exit code and output, after it exited on its own. */
const failedStart = (env: ServeProcess.Env, options: ServeProcess.SpawnOptions = {}) =>
  Effect.gen(function* () {
    const serve = yield* ServeProcess.spawnServe(env, ["serve"], options)
    const exit = yield* Deferred.await(serve.exited).pipe(
      Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die(new Error(serve.output())) })
    )
    return { code: exit.code, output: serve.output() }
  })

/** Checks that a failure is one `error: …` line, not a stack trace nor an empty `ServeError: `. */
const assertOneLine = (output: string, includes: ReadonlyArray<string>) => {
  const lines = output.trim().split("\n")
  const error = lines.find((line) => line.startsWith("error: "))
  assert.isDefined(error, output)
  for (const text of includes) assert.include(error, text, output)
  assert.notMatch(output, /^\s+at /m, "no stack trace")
  assert.notInclude(output, "ServeError")
}

describe("embedded-cache serve: defaults that keep data", () => {
  it.live(
    "a restart with CACHE_PERSISTENCE=rdb and the default data dir (.embedded-cache/<host name>) finds the key written before the stop",
    () =>
      Effect.gen(function* () {
        const cwd = yield* TempDir.make
        const env = { ...defaults, CACHE_STORE: "embedded", CACHE_PERSISTENCE: "rdb" }
        const first = yield* ServeProcess.start(env, { cwd })
        assert.strictEqual((yield* put(`${first.url}/api/v1/cache/kept`, { value: "v1", ttl: 600 })).status, 200)
        assert.deepStrictEqual(yield* first.stop(), { code: 0, signal: null })
        const dataDir = path.join(cwd, ".embedded-cache", os.hostname())
        assert.isTrue(fs.existsSync(path.join(dataDir, "dump.rdb")), "the stop saved the RDB in the default data dir")

        const second = yield* ServeProcess.start(env, { cwd })
        const got = yield* request(`${second.url}/api/v1/cache/kept`)
        assert.strictEqual(got.status, 200, got.body)
        assert.strictEqual(JSON.parse(got.body).value, "v1")
        assert.deepStrictEqual(
          fs.readdirSync(path.join(cwd, ".embedded-cache")),
          [os.hostname()],
          "no new dir per start"
        )
        assert.deepStrictEqual(yield* second.stop(), { code: 0, signal: null })
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a second serve on the same data dir is refused with one line naming the process that holds it, and the first keeps serving",
    () =>
      Effect.gen(function* () {
        const cwd = yield* TempDir.make
        const env = { ...defaults, CACHE_STORE: "embedded" }
        const first = yield* ServeProcess.start(env, { cwd })
        const second = yield* failedStart(env, { cwd })
        assert.strictEqual(second.code, 1, second.output)
        assertOneLine(second.output, [`is in use by process ${first.pid}`, "CACHE_INSTANCE_ID"])
        assert.strictEqual((yield* request(`${first.url}/healthz`)).status, 200)
      }).pipe(Effect.scoped),
    60_000
  )
})

describe("embedded-cache serve: logs", () => {
  it.live(
    "logs one startup line with the store, socket, data dir, persistence, bus, source and the bound port (CACHE_HTTP_PORT=0), no access log by default, and one line at shutdown",
    () =>
      Effect.gen(function* () {
        const dir = yield* TempDir.make
        const serve = yield* ServeProcess.spawnServe({
          CACHE_HTTP_PORT: "0",
          CACHE_STORE: "embedded",
          CACHE_DATA_DIR: dir,
          CACHE_PERSISTENCE: "aof"
        })
        yield* Poll.until(
          Effect.sync(() => serve.output().includes("serving http://")),
          { timeoutMs: 30_000, what: "the startup line", intervalMs: 20 }
        )
        const started = logLines(serve.output()).filter((line) => line.message.includes("serving"))
        assert.lengthOf(started, 1)
        const line = started[0]!.message
        const port = Number(/serving http:\/\/127\.0\.0\.1:(\d+)/.exec(line)?.[1])
        assert.isAbove(port, 0, line)
        for (const part of [`socket ${path.join(dir, "redis.sock")}`, `data dir ${dir}`, "persistence aof"]) {
          assert.include(line, part)
        }
        assert.include(line, "bus none")
        assert.include(line, "source none")
        for (let i = 0; i < 3; i++) {
          assert.strictEqual((yield* request(`http://127.0.0.1:${port}/api/v1/cache/absent`)).status, 404)
        }
        assert.deepStrictEqual(yield* serve.stop(), { code: 0, signal: null })
        const lines = logLines(serve.output())
        assert.lengthOf(lines, 2, serve.output())
        assert.include(lines[1]!.message, "stopped")
        assert.notInclude(serve.output(), "/api/v1/cache/absent", "no access log line")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("CACHE_ACCESS_LOG=true logs one line per request", () =>
    Effect.gen(function* () {
      const serve = yield* ServeProcess.start({ CACHE_STORE: "memory", CACHE_ACCESS_LOG: "true" })
      yield* request(`${serve.url}/api/v1/cache/logged-key`)
      yield* Poll.until(
        Effect.sync(() => serve.output().includes("/api/v1/cache/logged-key")),
        { timeoutMs: 10_000, what: "the access log line", intervalMs: 20 }
      )
      assert.notInclude(serve.output(), "Listening on", "the startup line is the only one saying where it listens")
    }).pipe(Effect.scoped)
  )

  it.live("CACHE_LOG_LEVEL=warn leaves out the info lines; an invalid level fails at startup naming the variable", () =>
    Effect.gen(function* () {
      const quiet = yield* ServeProcess.start({ CACHE_STORE: "memory", CACHE_LOG_LEVEL: "warn" })
      assert.deepStrictEqual(yield* quiet.stop(), { code: 0, signal: null })
      assert.deepStrictEqual(logLines(quiet.output()), [], quiet.output())
      const invalid = yield* failedStart({ CACHE_STORE: "memory", CACHE_LOG_LEVEL: "loud" })
      assert.strictEqual(invalid.code, 1)
      assertOneLine(invalid.output, ["CACHE_LOG_LEVEL"])
    }).pipe(Effect.scoped)
  )
})

describe("embedded-cache serve: one-line start failures", () => {
  it.live("a port in use is one line naming the address and CACHE_HTTP_PORT, exit 1", () =>
    Effect.gen(function* () {
      const server = yield* Effect.acquireRelease(
        Effect.callback<net.Server>((resume) => {
          const s = net.createServer()
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.callback<void>((resume) => void s.close(() => resume(Effect.void)))
      )
      const port = (server.address() as net.AddressInfo).port
      const failed = yield* failedStart({ CACHE_STORE: "memory", CACHE_HTTP_PORT: String(port) })
      assert.strictEqual(failed.code, 1)
      assertOneLine(failed.output, [`127.0.0.1:${port}`, "in use", "CACHE_HTTP_PORT"])
    }).pipe(Effect.scoped)
  )

  it.live("a data dir that cannot be created is one line naming it and CACHE_DATA_DIR, exit 1", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      // A path under a regular file: unwritable even for root (a read-only mode would not stop root).
      const file = path.join(dir, "a-file")
      fs.writeFileSync(file, "")
      const failed = yield* failedStart({ CACHE_STORE: "embedded", CACHE_DATA_DIR: path.join(file, "data") })
      assert.strictEqual(failed.code, 1)
      assertOneLine(failed.output, ["cannot create the data dir", path.join(file, "data"), "CACHE_DATA_DIR"])
    }).pipe(Effect.scoped)
  )

  it.live("a data dir too deep for a unix socket path is one line naming CACHE_DATA_DIR, exit 1", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const failed = yield* failedStart({ CACHE_STORE: "embedded", CACHE_DATA_DIR: path.join(dir, "d".repeat(120)) })
      assert.strictEqual(failed.code, 1)
      assertOneLine(failed.output, ["the socket path", "CACHE_DATA_DIR"])
    }).pipe(Effect.scoped)
  )

  it.live(
    "an invalid fail-safe setting, or a soft timeout not below the hard one, is one line naming the variable",
    () =>
      Effect.gen(function* () {
        const fraction = yield* failedStart({ CACHE_STORE: "memory", CACHE_EAGER_REFRESH: "1" })
        assert.strictEqual(fraction.code, 1)
        assertOneLine(fraction.output, ["CACHE_EAGER_REFRESH"])
        const timeouts = yield* failedStart({
          CACHE_STORE: "memory",
          CACHE_SOURCE_SOFT_TIMEOUT_MS: "2000",
          CACHE_SOURCE_TIMEOUT_MS: "1000"
        })
        assert.strictEqual(timeouts.code, 1)
        assertOneLine(timeouts.output, ["CACHE_SOURCE_SOFT_TIMEOUT_MS=2000 must be below CACHE_SOURCE_TIMEOUT_MS=1000"])
      }).pipe(Effect.scoped)
  )

  it.live("CACHE_STORE=embedded without redis-server on PATH is one line saying how to install it, exit 1", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const failed = yield* failedStart({
        PATH: path.dirname(process.execPath),
        CACHE_STORE: "embedded",
        CACHE_DATA_DIR: dir
      })
      assert.strictEqual(failed.code, 1)
      assertOneLine(failed.output, ["redis-server was not found", "CACHE_STORE=embedded"])
    }).pipe(Effect.scoped)
  )
})
