/**
 * The `EmbeddedRedis` adapter: one supervised `redis-server` child per data directory, reachable only through a unix
 * socket inside that directory (mode 0700, `port 0`, so never a TCP listener). The directory is locked against a second
 * owner, a server that dies is restarted with backoff, and closing the scope stops it (SIGTERM, then SIGKILL) before the
 * lock is released, so the server never outlives its scope.
 */
import { Data, Deferred, Effect, Latch, Layer, Option, Ref, Schedule, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as EmbeddedRedis from "../../src/EmbeddedRedis.ts"
import { errorCode, errorMessage, type Paths, prepareDataDir, releaseLock, takeLock, writeConfig } from "./DataDir.ts"

/** How often readiness is probed while the server starts. */
const pingIntervalMs = 10
/** How long a server may take to exit after SIGTERM (it may be writing its RDB) before it is SIGKILLed. */
const stopTimeoutMs = 10_000
/** A server that stayed up this long is considered healthy: its next crash starts the backoff afresh. */
const stableAfterMs = 30_000
/** Log lines kept from the server's output, quoted in start errors. */
const logTailLines = 50

/** Restart delays after a crash or a failed restart: 50 ms, doubling, at most 2 s. */
const restartBackoff = Schedule.min([Schedule.exponential("50 millis", 2), Schedule.spaced("2 seconds")])

// ---------------------------------------------------------------------------------------------------------------
// one server process

interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A spawned redis-server child. */
interface Server {
  readonly pid: number
  readonly child: ChildProcess
  readonly exited: Deferred.Deferred<ExitStatus>
  /** The last lines it printed (its log goes to stdout). */
  readonly logTail: () => string
}

const describeExit = (status: ExitStatus): string =>
  status.signal !== null ? `killed by ${status.signal}` : `exit code ${status.code}`

/** Keeps the last `size` lines of a stream of chunks. */
const makeLogTail = (size: number) => {
  const lines: Array<string> = []
  let partial = ""
  return {
    push: (chunk: Buffer | string) => {
      const parts = (partial + chunk.toString()).split("\n")
      partial = parts.pop() ?? ""
      lines.push(...parts.filter((line) => line.trim() !== ""))
      if (lines.length > size) lines.splice(0, lines.length - size)
    },
    text: () => [...lines, ...(partial.trim() === "" ? [] : [partial])].join("\n")
  }
}

const startFailed = (message: string, server?: Server, cause?: unknown) => {
  const tail = server?.logTail() ?? ""
  return new EmbeddedRedis.RedisServerError({
    reason: "StartFailed",
    message: tail === "" ? message : `${message}\nredis-server log:\n${tail}`,
    cause
  })
}

/** Spawns the server; succeeds once the process runs, fails with BinaryNotFound when the binary is missing. */
const spawnServer = (binary: string, paths: Paths) =>
  Effect.callback<Server, EmbeddedRedis.RedisServerError>((resume) => {
    let child: ChildProcess
    try {
      child = spawn(binary, [paths.conf], { cwd: paths.dataDir, stdio: ["ignore", "pipe", "pipe"] })
    } catch (cause) {
      resume(Effect.fail(startFailed(`cannot spawn ${binary}: ${errorMessage(cause)}`, undefined, cause)))
      return
    }
    const log = makeLogTail(logTailLines)
    const exited = Deferred.makeUnsafe<ExitStatus>()
    // If this process exits without closing the scope, do not leave the server behind (it still saves on SIGTERM).
    const stopOnExit = () => child.kill("SIGTERM")
    process.once("exit", stopOnExit)
    child.stdout?.on("data", log.push)
    child.stderr?.on("data", log.push)
    child.once("exit", (code, signal) => {
      process.removeListener("exit", stopOnExit)
      // Report the exit once its last output has been read ('close'), so start errors can quote it; but don't
      // wait on a forked child (a BGSAVE) that still holds the pipes open.
      const done = () => Deferred.doneUnsafe(exited, Effect.succeed({ code, signal }))
      const grace = setTimeout(done, 100)
      child.once("close", () => {
        clearTimeout(grace)
        done()
      })
    })
    // Stays attached: a later 'error' (a failed kill) must not become an uncaught exception; resume only counts once.
    child.on("error", (cause) => {
      process.removeListener("exit", stopOnExit)
      resume(
        Effect.fail(
          errorCode(cause) === "ENOENT"
            ? new EmbeddedRedis.RedisServerError({
                reason: "BinaryNotFound",
                message:
                  binary === "redis-server"
                    ? "redis-server was not found on PATH: install it (Debian: apt-get install redis-server) or use the memory store"
                    : `${binary} was not found: install redis-server (Debian: apt-get install redis-server) or use the memory store`,
                cause
              })
            : startFailed(`cannot spawn ${binary}: ${errorMessage(cause)}`, undefined, cause)
        )
      )
    })
    child.once("spawn", () => resume(Effect.succeed({ pid: child.pid!, child, exited, logTail: log.text })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Stops the server gracefully: SIGTERM (Redis saves its RDB and flushes its AOF), then SIGKILL after a timeout. */
const stopServer = Effect.fnUntraced(function* (server: Server) {
  if (Deferred.isDoneUnsafe(server.exited)) return
  server.child.kill("SIGTERM")
  const stopped = yield* Deferred.await(server.exited).pipe(Effect.timeoutOption(stopTimeoutMs))
  if (Option.isSome(stopped)) return
  yield* Effect.logWarning(`redis-server ${server.pid} did not stop within ${stopTimeoutMs} ms of SIGTERM; SIGKILL`)
  server.child.kill("SIGKILL")
  yield* Deferred.await(server.exited).pipe(Effect.timeoutOption(stopTimeoutMs))
})

/** Transient socket errors while the server is still starting. */
const notListeningYet = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN", "ECONNRESET", "EPIPE"])

/** One raw RESP PING over the unix socket: true on +PONG, false while the server is not ready (absent, loading). */
const ping = (socketPath: string) =>
  Effect.callback<boolean, EmbeddedRedis.RedisServerError>((resume) => {
    const socket = net.createConnection({ path: socketPath })
    let reply = ""
    const finish = (outcome: Effect.Effect<boolean, EmbeddedRedis.RedisServerError>) => {
      socket.destroy()
      resume(outcome)
    }
    socket.setEncoding("utf8")
    socket.once("connect", () => socket.write("*1\r\n$4\r\nPING\r\n"))
    socket.on("data", (chunk: string) => {
      reply += chunk
      const end = reply.indexOf("\r\n")
      if (end === -1) return
      const line = reply.slice(0, end)
      finish(
        line === "+PONG"
          ? Effect.succeed(true)
          : line.startsWith("-LOADING")
            ? Effect.succeed(false)
            : Effect.fail(startFailed(`redis-server answered PING with ${JSON.stringify(line)}`))
      )
    })
    socket.on("error", (cause) =>
      finish(
        notListeningYet.has(errorCode(cause) ?? "")
          ? Effect.succeed(false)
          : Effect.fail(startFailed(`cannot connect to ${socketPath}: ${errorMessage(cause)}`, undefined, cause))
      )
    )
    socket.once("close", () => finish(Effect.succeed(false)))
    return Effect.sync(() => socket.destroy())
  })

/** Waits until the server answers PING; fails if it exits first or does not answer within the start timeout. */
const awaitServerReady = (server: Server, socketPath: string, timeoutMs: number) =>
  ping(socketPath).pipe(
    Effect.repeat({ schedule: Schedule.spaced(`${pingIntervalMs} millis`), until: (ready) => ready }),
    Effect.raceFirst(
      Deferred.await(server.exited).pipe(
        Effect.flatMap((status) =>
          Effect.fail(startFailed(`redis-server ${server.pid} exited during start (${describeExit(status)})`, server))
        )
      )
    ),
    Effect.timeoutOrElse({
      duration: timeoutMs,
      orElse: () =>
        Effect.fail(startFailed(`redis-server ${server.pid} did not answer PING within ${timeoutMs} ms`, server))
    }),
    Effect.asVoid
  )

/** A supervised server died before it had been up for `stableAfterMs`: the next restart waits for the backoff. */
class ServerDied extends Data.TaggedError("ServerDied")<{ readonly pid: number }> {}

// ---------------------------------------------------------------------------------------------------------------
// the service

/** Starts and supervises the server for `config`; it is stopped and the data dir unlocked when the scope closes. */
export const make = Effect.fn("EmbeddedRedisServer.make")(function* (
  config: EmbeddedRedis.EmbeddedRedisConfig
): Effect.fn.Return<EmbeddedRedis.EmbeddedRedis["Service"], EmbeddedRedis.RedisServerError, Scope.Scope> {
  const { maxmemory, paths } = yield* prepareDataDir(config)
  const binary = config.binary ?? "redis-server"
  const startTimeoutMs = config.startTimeoutMs ?? 30_000

  yield* Effect.acquireRelease(takeLock(paths), () => releaseLock(paths))
  yield* writeConfig(config, paths, maxmemory)

  const pid = yield* Ref.make<number | undefined>(undefined)
  const restarts = yield* Ref.make(0)
  const ready = yield* Latch.make(false)

  /** Spawns a server into the current scope (which stops it) and waits until it answers PING. */
  const startServer = Effect.fnUntraced(function* (isRestart: boolean) {
    yield* Effect.try({
      try: () => fs.rmSync(paths.socket, { force: true }),
      catch: (cause) =>
        startFailed(`cannot remove the stale socket ${paths.socket}: ${errorMessage(cause)}`, undefined, cause)
    })
    const server = yield* Effect.acquireRelease(spawnServer(binary, paths), stopServer)
    yield* awaitServerReady(server, paths.socket, startTimeoutMs)
    if (isRestart) yield* Ref.update(restarts, (n) => n + 1)
    yield* Ref.set(pid, server.pid)
    yield* ready.open
    return { server, readyAt: Date.now() }
  })

  /** Waits for a running server to exit, which it only does unasked: shutdown interrupts this wait first. */
  const watch = Effect.fnUntraced(function* ({
    readyAt,
    server
  }: {
    readonly server: Server
    readonly readyAt: number
  }) {
    const status = yield* Deferred.await(server.exited).pipe(
      Effect.ensuring(Effect.andThen(ready.close, Ref.set(pid, undefined)))
    )
    const uptimeMs = Date.now() - readyAt
    const tail = server.logTail().split("\n").slice(-5).join("\n")
    yield* Effect.logWarning(
      `redis-server ${server.pid} exited unexpectedly (${describeExit(status)}) after ${uptimeMs} ms; restarting` +
        (tail === "" ? "" : `\nlast log lines:\n${tail}`)
    )
    // A death after a long healthy run ends normally, so the restart after it starts the backoff afresh.
    if (uptimeMs < stableAfterMs) return yield* new ServerDied({ pid: server.pid })
  })

  // Restarts are immediate after a healthy run, then back off while the server keeps dying or failing to start.
  const restartForever = startServer(true).pipe(
    Effect.flatMap(watch),
    Effect.scoped,
    // A bug here must not end supervision silently: it is retried (and logged) like any failed restart.
    Effect.catchDefect((defect) =>
      Effect.fail(startFailed(`supervision failed: ${errorMessage(defect)}`, undefined, defect))
    ),
    Effect.tapError((error) =>
      error instanceof EmbeddedRedis.RedisServerError
        ? Effect.logWarning(`restarting redis-server failed; retrying: ${error.message}`)
        : Effect.void
    ),
    Effect.retry(restartBackoff),
    Effect.forever
  )

  // The first server lives in the layer's scope, so a failed start fails the layer. Supervision is forked after it,
  // so closing the scope interrupts supervision before any server is stopped: a shutdown is never taken for a crash.
  const first = yield* startServer(false)
  yield* watch(first).pipe(
    Effect.ignore,
    Effect.andThen(restartForever),
    Effect.annotateLogs({ dataDir: paths.dataDir }),
    Effect.forkScoped
  )

  return EmbeddedRedis.EmbeddedRedis.of({
    socketPath: paths.socket,
    dataDir: paths.dataDir,
    config,
    pid: Ref.get(pid),
    restarts: Ref.get(restarts),
    awaitReady: ready.await
  })
})

/** The `EmbeddedRedis` service backed by a supervised `redis-server` for `config`. */
export const layer = (
  config: EmbeddedRedis.EmbeddedRedisConfig
): Layer.Layer<EmbeddedRedis.EmbeddedRedis, EmbeddedRedis.RedisServerError> =>
  Layer.effect(EmbeddedRedis.EmbeddedRedis, make(config))
