/**
 * `embedded-cache serve` as a real child process, for end-to-end tests: started on a free port with the given
 * environment, awaited until `/healthz` answers (or until it exits), stopped with a signal when the scope
 * closes (SIGTERM, then SIGKILL if it hangs). Its output is kept, to quote when something fails. Also the one-shot
 * commands (`cli`), run to completion with their output and exit code.
 */
import { Deferred, Effect } from "effect"
import { execFile, spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import * as Poll from "./Poll.ts"

const main = path.resolve(import.meta.dirname, "../../layers/sidecar/main.ts")

/** A running `serve`. */
export interface Serve {
  readonly url: string
  readonly pid: number
  /** Everything it printed so far. */
  readonly output: () => string
  /** Resolves with the exit code (or the signal) when it exits. */
  readonly exited: Deferred.Deferred<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** Sends `signal` and waits until it exited. */
  readonly stop: (
    signal?: NodeJS.Signals
  ) => Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** A TCP port nothing listens on right now. */
export const freePort = Effect.callback<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Settings of the environment: a value, or undefined to remove the variable the test process has. */
export type Env = Readonly<Record<string, string | undefined>>

/** The test process's environment with `env` applied. */
export const envWith = (env: Env): NodeJS.ProcessEnv => {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env }
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete merged[name]
  return merged
}

/** How a `serve` process is spawned besides its environment. */
export interface SpawnOptions {
  /** Its working directory (the default data dir `.embedded-cache/<instance>` is relative to it). */
  readonly cwd?: string | undefined
}

/** Spawns the process without waiting for it to be healthy. */
export const spawnServe = (env: Env, args: ReadonlyArray<string> = ["serve"], options: SpawnOptions = {}) =>
  Effect.gen(function* () {
    const port = yield* freePort
    let output = ""
    const exited = yield* Deferred.make<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(process.execPath, [main, ...args], {
          env: envWith({ CACHE_HTTP_PORT: String(port), ...env }),
          stdio: ["ignore", "pipe", "pipe"],
          ...(options.cwd === undefined ? {} : { cwd: options.cwd })
        })
        child.stdout.on("data", (chunk: Buffer) => void (output += chunk.toString()))
        child.stderr.on("data", (chunk: Buffer) => void (output += chunk.toString()))
        child.once("exit", (code, signal) => Deferred.doneUnsafe(exited, Effect.succeed({ code, signal })))
        return child
      }),
      (child) =>
        Effect.suspend(() => {
          if (Deferred.isDoneUnsafe(exited)) return Effect.void
          // SIGTERM first, so the service shuts its redis-server down; SIGKILL only if it hangs.
          child.kill("SIGTERM")
          return Deferred.await(exited).pipe(
            Effect.timeoutOrElse({
              duration: "10 seconds",
              orElse: () =>
                Effect.andThen(
                  Effect.sync(() => child.kill("SIGKILL")),
                  Deferred.await(exited)
                )
            }),
            Effect.asVoid
          )
        })
    )
    const serve: Serve = {
      url: `http://127.0.0.1:${port}`,
      pid: child.pid!,
      output: () => output,
      exited,
      stop: (signal = "SIGTERM") =>
        Effect.suspend(() => {
          if (!Deferred.isDoneUnsafe(exited)) child.kill(signal)
          return Deferred.await(exited)
        })
    }
    return serve
  })

/** Spawns `serve` and waits until `/healthz` answers; fails with its output if it exits first. */
export const start = (env: Env, options: SpawnOptions = {}) =>
  Effect.gen(function* () {
    const serve = yield* spawnServe(env, ["serve"], options)
    yield* Poll.until(
      Effect.gen(function* () {
        if (Deferred.isDoneUnsafe(serve.exited)) {
          return yield* Effect.die(new Error(`serve exited during start:\n${serve.output()}`))
        }
        return yield* Effect.promise(() =>
          fetch(`${serve.url}/healthz`).then(
            (response) => response.ok,
            () => false
          )
        )
      }),
      { timeoutMs: 30_000, what: "serve answers /healthz", intervalMs: 25 }
    )
    return serve
  })

/** What a finished `embedded-cache` command printed, and its exit code. */
export interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `embedded-cache <args>` to completion (stdout and stderr are pipes, so not terminals). */
export const cli = (args: ReadonlyArray<string>, env: Env = {}, options: SpawnOptions = {}) =>
  Effect.callback<Ran>((resume) => {
    execFile(
      process.execPath,
      [main, ...args],
      { env: envWith(env), ...(options.cwd === undefined ? {} : { cwd: options.cwd }) },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
  })

/** The last line of a command's stdout, parsed as JSON. */
export const lastJson = (ran: Ran): Record<string, unknown> => {
  const lines = ran.stdout.trim().split("\n")
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>
}
