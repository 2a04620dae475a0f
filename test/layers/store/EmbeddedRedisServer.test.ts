import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Logger, Scope } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as EmbeddedRedisServer from "../../../layers/store/EmbeddedRedisServer.ts"
import * as EmbeddedRedis from "../../../src/EmbeddedRedis.ts"
import * as Poll from "../../utils/Poll.ts"
import * as Resp from "../../utils/Resp.ts"
import * as TempDir from "../../utils/TempDir.ts"

const configFor = (
  dataDir: string,
  overrides: Partial<EmbeddedRedis.EmbeddedRedisConfig> = {}
): EmbeddedRedis.EmbeddedRedisConfig => ({ ...EmbeddedRedis.defaults(dataDir), maxmemory: "16mb", ...overrides })

/** Whether a process exists and has not exited (a zombie has exited). */
const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat[stat.lastIndexOf(")") + 2] !== "Z"
}

/** Inodes of the sockets a process has open, from /proc/<pid>/fd. */
const socketInodes = (pid: number): Set<string> =>
  new Set(
    fs.readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`)
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
      return inode === undefined ? [] : [inode]
    })
  )

/** Inodes of all listening TCP sockets (state 0A) in /proc/net/tcp and /proc/net/tcp6. */
const listeningTcpInodes = (): Set<string> =>
  new Set(
    ["/proc/net/tcp", "/proc/net/tcp6"]
      .filter((file) => fs.existsSync(file))
      .flatMap((file) =>
        fs
          .readFileSync(file, "utf8")
          .split("\n")
          .slice(1)
          .flatMap((line) => {
            const columns = line.trim().split(/\s+/)
            return columns[3] === "0A" && columns[9] !== undefined ? [columns[9]] : []
          })
      )
  )

/** The pid of a process that has run and exited. */
const deadPid = Effect.callback<number>((resume) => {
  const child = spawn("true")
  child.once("exit", () => resume(Effect.succeed(child.pid!)))
})

/** Writes an executable shell script standing in for redis-server. */
const fakeBinary = (dir: string, body: string): string => {
  const file = path.join(dir, "fake-redis-server")
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 })
  return file
}

const mode = (file: string): number => fs.statSync(file).mode & 0o777

describe("EmbeddedRedisServer", () => {
  it.live("starts a server that answers PING over the unix socket in its data dir", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      yield* Effect.gen(function* () {
        const redis = yield* EmbeddedRedis.EmbeddedRedis
        assert.strictEqual(redis.socketPath, path.join(dir, "redis.sock"))
        assert.strictEqual(redis.dataDir, dir)
        yield* redis.awaitReady
        assert.isDefined(yield* redis.pid)
        assert.strictEqual(yield* Resp.command(redis.socketPath, "PING"), "PONG")
        assert.strictEqual(yield* Resp.command(redis.socketPath, "SET", "k", "v"), "OK")
        assert.strictEqual(yield* Resp.command(redis.socketPath, "GET", "k"), "v")
        assert.strictEqual(fs.readFileSync(path.join(dir, "embedded-cache.lock"), "utf8").trim(), String(process.pid))
      }).pipe(Effect.provide(EmbeddedRedisServer.layer(configFor(dir))))
    })
  )

  it.live("opens no TCP listener: port is 0 and the server process owns no listening TCP socket", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const redis = yield* EmbeddedRedisServer.make(configFor(dir))
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "port"), "0")
      const pid = (yield* redis.pid)!
      const owned = socketInodes(pid)
      assert.isAbove(owned.size, 0, "the server holds its unix socket")
      const listening = [...listeningTcpInodes()].filter((inode) => owned.has(inode))
      assert.deepStrictEqual(listening, [])
    })
  )

  it.live("creates the data dir with mode 0700, and the socket in it with mode 0700", () =>
    Effect.gen(function* () {
      const dataDir = path.join(yield* TempDir.make, "nested", "data")
      const redis = yield* EmbeddedRedisServer.make(configFor(dataDir))
      assert.strictEqual(mode(dataDir), 0o700)
      assert.strictEqual(path.dirname(redis.socketPath), dataDir)
      assert.strictEqual(mode(redis.socketPath), 0o700)
    })
  )

  it.live("starts in a data dir whose path needs quoting in redis.conf (space, quote, backslash)", () =>
    Effect.gen(function* () {
      const dataDir = path.join(yield* TempDir.make, `a "b" c\\d`)
      const redis = yield* EmbeddedRedisServer.make(configFor(dataDir, { persistence: "rdb" }))
      assert.isTrue(yield* Resp.pings(redis.socketPath))
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "dir"), dataDir)
    })
  )

  it.live("tightens an existing data dir from 0755 to 0700", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      fs.chmodSync(dir, 0o755)
      yield* EmbeddedRedisServer.make(configFor(dir))
      assert.strictEqual(mode(dir), 0o700)
    })
  )

  it.live("refuses a second server on the same data dir with Locked while the first runs", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const first = yield* EmbeddedRedisServer.make(configFor(dir))
      const error = yield* EmbeddedRedisServer.make(configFor(dir)).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(error.reason, "Locked")
      assert.strictEqual(error.message, `data dir ${dir} is in use by process ${process.pid}`)
      // the refused attempt left the running server and its lock alone
      assert.isTrue(yield* Resp.pings(first.socketPath))
      assert.strictEqual(fs.readFileSync(path.join(dir, "embedded-cache.lock"), "utf8").trim(), String(process.pid))
    })
  )

  it.live("recovers a stale lock whose owner has exited, logs it, and starts", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const lock = path.join(dir, "embedded-cache.lock")
      const stalePid = yield* deadPid
      fs.writeFileSync(lock, `${stalePid}\n`)
      const warnings: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const redis = yield* EmbeddedRedisServer.make(configFor(dir)).pipe(
        Effect.provide(Logger.layer([capture], { mergeWithExisting: true }))
      )
      assert.isTrue(yield* Resp.pings(redis.socketPath))
      assert.strictEqual(fs.readFileSync(lock, "utf8").trim(), String(process.pid))
      assert.isTrue(
        warnings.some((w) => w.includes("stale lock") && w.includes(String(stalePid))),
        warnings.join("\n")
      )
    })
  )

  it.live("stops the redis-server orphaned by a dead lock owner before starting its own", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      // what a SIGKILLed owner leaves behind: its lock, and its server still running in the data dir
      fs.writeFileSync(path.join(dir, "embedded-cache.lock"), `${yield* deadPid}\n`)
      const orphan = spawn(
        "redis-server",
        [
          "--port",
          "0",
          "--unixsocket",
          path.join(dir, "orphan.sock"),
          "--dir",
          dir,
          "--pidfile",
          path.join(dir, "redis.pid"),
          "--save",
          ""
        ],
        { stdio: "ignore" }
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => orphan.kill("SIGKILL")))
      yield* Poll.until(Resp.pings(path.join(dir, "orphan.sock")), { timeoutMs: 5_000, what: "the orphan is up" })
      const redis = yield* EmbeddedRedisServer.make(configFor(dir))
      assert.isFalse(isAlive(orphan.pid!), "the orphan was stopped")
      assert.notStrictEqual(yield* redis.pid, orphan.pid)
      assert.isTrue(yield* Resp.pings(redis.socketPath))
    })
  )

  it.live("restarts a SIGKILLed server within 2 s, with a new pid, counting the restart", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const redis = yield* EmbeddedRedisServer.make(configFor(dir))
      const killed = (yield* redis.pid)!
      assert.strictEqual(yield* redis.restarts, 0)
      const killedAt = Date.now()
      process.kill(killed, "SIGKILL")
      yield* Poll.until(
        Effect.gen(function* () {
          const pid = yield* redis.pid
          return pid !== undefined && pid !== killed && (yield* Resp.pings(redis.socketPath))
        }),
        { timeoutMs: 5_000, what: "a new server answers PING" }
      )
      const restartMs = Date.now() - killedAt
      assert.isBelow(restartMs, 2_000)
      assert.strictEqual(yield* redis.restarts, 1)
      assert.isFalse(isAlive(killed))
      yield* redis.awaitReady
    })
  )

  it.live("fails with BinaryNotFound when the binary is missing, and releases the lock", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const error = yield* EmbeddedRedisServer.make(configFor(dir, { binary: "/nonexistent/redis-server" })).pipe(
        Effect.scoped,
        Effect.flip
      )
      assert.instanceOf(error, EmbeddedRedis.RedisServerError)
      assert.strictEqual(error.reason, "BinaryNotFound")
      assert.include(error.message, "apt-get install redis-server")
      assert.isFalse(fs.existsSync(path.join(dir, "embedded-cache.lock")))
    })
  )

  it.live("fails with StartFailed, quoting the server's log, when the server exits during start", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const binary = fakeBinary(dir, `echo "FATAL CONFIG FILE ERROR (simulated)"\nexit 1`)
      const error = yield* EmbeddedRedisServer.make(configFor(path.join(dir, "data"), { binary })).pipe(
        Effect.scoped,
        Effect.flip
      )
      assert.strictEqual(error.reason, "StartFailed")
      assert.include(error.message, "exited during start (exit code 1)")
      assert.include(error.message, "FATAL CONFIG FILE ERROR (simulated)")
    })
  )

  it.live("fails with StartFailed after startTimeoutMs without PONG, and kills the server it started", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const pidFile = path.join(dir, "fake.pid")
      const binary = fakeBinary(dir, `echo $$ > "${pidFile}"\nexec sleep 30`)
      const error = yield* EmbeddedRedisServer.make(
        configFor(path.join(dir, "data"), { binary, startTimeoutMs: 300 })
      ).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(error.reason, "StartFailed")
      assert.include(error.message, "did not answer PING within 300 ms")
      assert.isFalse(isAlive(Number(fs.readFileSync(pidFile, "utf8"))))
    })
  )

  it.live("keeps retrying failed restarts with backoff until one succeeds", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const count = path.join(dir, "starts")
      // start 1 works, starts 2-4 (the first three restart attempts) fail, start 5 works
      const binary = fakeBinary(
        dir,
        [
          `n=$(cat "${count}" 2>/dev/null || echo 0)`,
          `echo $((n + 1)) > "${count}"`,
          `if [ "$n" -ge 1 ] && [ "$n" -le 3 ]; then echo "simulated start failure $n"; exit 1; fi`,
          `exec redis-server "$@"`
        ].join("\n")
      )
      const redis = yield* EmbeddedRedisServer.make(configFor(path.join(dir, "data"), { binary }))
      const killed = (yield* redis.pid)!
      process.kill(killed, "SIGKILL")
      yield* Poll.until(
        Effect.map(redis.pid, (pid) => pid !== undefined && pid !== killed),
        { timeoutMs: 5_000, what: "the fifth start succeeds" }
      )
      assert.strictEqual(fs.readFileSync(count, "utf8").trim(), "5")
      assert.strictEqual(yield* redis.restarts, 1)
      assert.isTrue(yield* Resp.pings(redis.socketPath))
    })
  )

  it.live("keeps RDB data across a close and reopen, since shutdown is a graceful SIGTERM", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const config = configFor(dir, { persistence: "rdb" })
      yield* Effect.gen(function* () {
        const redis = yield* EmbeddedRedisServer.make(config)
        assert.strictEqual(yield* Resp.command(redis.socketPath, "SET", "survivor", "yes"), "OK")
      }).pipe(Effect.scoped)
      assert.isTrue(fs.existsSync(path.join(dir, "dump.rdb")))
      const reopened = yield* EmbeddedRedisServer.make(config)
      assert.strictEqual(yield* Resp.command(reopened.socketPath, "GET", "survivor"), "yes")
    })
  )

  it.live("leaves no redis-server behind and removes the lock and socket when the scope closes", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      const redis = yield* EmbeddedRedisServer.make(configFor(dir)).pipe(Scope.provide(scope))
      const pid = (yield* redis.pid)!
      assert.isTrue(isAlive(pid))
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(isAlive(pid))
      assert.isFalse(fs.existsSync(path.join(dir, "embedded-cache.lock")))
      assert.isFalse(fs.existsSync(redis.socketPath))
    })
  )

  it.live("applies aof persistence with appendfsync always", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const redis = yield* EmbeddedRedisServer.make(configFor(dir, { persistence: "aof", appendfsync: "always" }))
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "appendonly"), "yes")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "appendfsync"), "always")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "save"), "")
    })
  )

  it.live("applies rdb+aof persistence: the RDB save points and the append-only file", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const redis = yield* EmbeddedRedisServer.make(configFor(dir, { persistence: "rdb+aof" }))
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "save"), "3600 1 300 100 60 10000")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "appendonly"), "yes")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "appendfsync"), "everysec")
    })
  )

  it.live("applies no persistence, the eviction policy and maxmemory", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const redis = yield* EmbeddedRedisServer.make(
        configFor(dir, { persistence: "none", maxmemory: "4mb", evictionPolicy: "allkeys-lfu" })
      )
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "save"), "")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "appendonly"), "no")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "maxmemory-policy"), "allkeys-lfu")
      assert.strictEqual(yield* Resp.configGet(redis.socketPath, "maxmemory"), String(4 * 1024 * 1024))
    })
  )

  it.live("rejects an empty dataDir, a socket path over 107 bytes and an invalid maxmemory with InvalidConfig", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const tooLong = path.join(dir, "d".repeat(120))
      const long = yield* EmbeddedRedisServer.make(configFor(tooLong)).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(long.reason, "InvalidConfig")
      assert.isFalse(fs.existsSync(tooLong), "nothing is created for a rejected config")
      const memory = yield* EmbeddedRedisServer.make(configFor(dir, { maxmemory: "lots" })).pipe(
        Effect.scoped,
        Effect.flip
      )
      assert.strictEqual(memory.reason, "InvalidConfig")
      const empty = yield* EmbeddedRedisServer.make(configFor("")).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(empty.reason, "InvalidConfig")
    })
  )
})
