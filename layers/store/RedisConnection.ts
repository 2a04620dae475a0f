/**
 * One ioredis connection to the store's Redis, as Effects. Commands fail fast when the connection is down (no offline
 * queue) and time out — one watchdog per connection rather than a timer per command — so the cache can degrade
 * instead of hanging. Every ioredis failure is converted here, once, into a `CacheStoreError` whose `reason` says
 * what it means: the store is down (`Unavailable`, `Timeout`) or a healthy store refused a command.
 */
import { Effect } from "effect"
import { Redis } from "ioredis"
import { CacheStoreError, type StoreFailure } from "../../src/CacheStore.ts"

/** How to reach Redis and how patient to be with it. */
export interface ConnectionOptions {
  /** A unix socket path (`/run/x/redis.sock`) or a `redis://` / `rediss://` URL. */
  readonly connection: string
  /** Batch commands issued in the same tick into one write (ioredis auto-pipelining). Default true. */
  readonly autoPipelining?: boolean | undefined
  /** A command not answered within this many milliseconds fails with `Timeout`. Default 1000. */
  readonly commandTimeoutMs?: number | undefined
  /** How long the first connection may take. Default 5000. */
  readonly connectTimeoutMs?: number | undefined
}

/** Runs one ioredis call as an Effect; `then` continues with the reply inside the same callback. */
export type Call = <A, B = A>(
  operation: string,
  key: string | undefined,
  f: () => Promise<A>,
  then?: (value: A) => Effect.Effect<B, CacheStoreError>
) => Effect.Effect<B, CacheStoreError>

const reasonOf = (cause: unknown): StoreFailure => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.startsWith("OOM")) return "OutOfMemory"
  if (message.startsWith("MISCONF") || message.startsWith("READONLY")) return "ReadOnly"
  if (message.startsWith("WRONGTYPE") || message.includes("WRONGTYPE")) return "WrongType"
  if (message === "Command timed out") return "Timeout"
  if (
    message.includes("enableOfflineQueue") ||
    message.includes("Connection is closed") ||
    message.includes("ECONNREFUSED") ||
    message.includes("ENOENT") ||
    message.includes("ECONNRESET") ||
    message.includes("EPIPE") ||
    message.includes("LOADING")
  )
    return "Unavailable"
  return "Unknown"
}

const failure = (operation: string, key: string | undefined, cause: unknown) =>
  new CacheStoreError({ operation, key, reason: reasonOf(cause), cause })

/**
 * The connection's command timeout. ioredis's own `commandTimeout` arms a timer per command (measured at
 * 2–2.5 µs a call); replies on one connection arrive in order, so one watchdog timer does the same job: when
 * commands are pending and no reply has arrived for `timeoutMs`, the connection is dropped (every pending
 * command fails, counted as a `Timeout`) and reconnected.
 */
export class Watchdog {
  issued = 0
  completed = 0
  private lastCompleted = 0
  private lastProgress: number
  private lastTick: number
  private firedAt = 0
  private readonly timeoutMs: number
  /** How often `stuck` is called. */
  readonly tickMs: number

  constructor(timeoutMs: number, now: number = Date.now()) {
    this.timeoutMs = timeoutMs
    this.tickMs = Math.max(10, Math.min(250, timeoutMs / 4))
    this.lastProgress = now
    this.lastTick = now
  }

  /**
   * Called every tick: answers whether the connection is stuck. A tick that comes late means this process itself
   * was stalled (GC, a busy event loop): replies may be waiting unread behind the timer, so the wait starts over
   * rather than blaming the server.
   */
  stuck(now: number): boolean {
    const stalled = now - this.lastTick > this.tickMs * 4
    this.lastTick = now
    if (stalled || this.issued === this.completed || this.completed !== this.lastCompleted) {
      this.lastCompleted = this.completed
      this.lastProgress = now
      return false
    }
    if (now - this.lastProgress < this.timeoutMs) return false
    this.lastProgress = now
    this.firedAt = now
    return true
  }

  /** Whether a failure now is the watchdog's doing. */
  justFired(now: number): boolean {
    return now - this.firedAt < 1000
  }
}

/**
 * Runs one ioredis command on `key` (with `arg`) as an Effect: `f` and `then` take them as arguments, so a store
 * builds them once and a call allocates no closures of its own (the hot reads and writes go through it).
 */
export type CallKey = <X, A, B = A>(
  operation: string,
  key: string,
  arg: X,
  f: (key: string, arg: X) => Promise<A>,
  then: (value: A, key: string) => Effect.Effect<B, CacheStoreError>
) => Effect.Effect<B, CacheStoreError>

/** The failure of a command, as a `Timeout` when the watchdog has just dropped the connection under it. */
const failed = (watchdog: Watchdog, operation: string, key: string | undefined, cause: unknown) => {
  const error = failure(operation, key, cause)
  return Effect.fail(
    error.reason === "Unavailable" && watchdog.justFired(Date.now())
      ? new CacheStoreError({ operation, key, reason: "Timeout", cause })
      : error
  )
}

/**
 * Runs ioredis calls as Effects, converting their failures once, here, and feeding the watchdog; `then`
 * continues with the reply inside the same callback (no extra step on the hot path).
 */
const makeCall =
  (watchdog: Watchdog): Call =>
  <A, B = A>(
    operation: string,
    key: string | undefined,
    f: () => Promise<A>,
    then: (value: A) => Effect.Effect<B, CacheStoreError> = Effect.succeed as never
  ): Effect.Effect<B, CacheStoreError> =>
    Effect.callback<B, CacheStoreError>((resume) => {
      watchdog.issued++
      f().then(
        (value) => {
          watchdog.completed++
          resume(then(value))
        },
        (cause) => {
          watchdog.completed++
          resume(failed(watchdog, operation, key, cause))
        }
      )
    })

/** `makeCall` for a command on one key, with `f` and `then` shared by every call. */
const makeCallKey =
  (watchdog: Watchdog): CallKey =>
  <X, A, B = A>(
    operation: string,
    key: string,
    arg: X,
    f: (key: string, arg: X) => Promise<A>,
    then: (value: A, key: string) => Effect.Effect<B, CacheStoreError>
  ): Effect.Effect<B, CacheStoreError> =>
    Effect.callback<B, CacheStoreError>((resume) => {
      watchdog.issued++
      f(key, arg).then(
        (value) => {
          watchdog.completed++
          resume(then(value, key))
        },
        (cause) => {
          watchdog.completed++
          resume(failed(watchdog, operation, key, cause))
        }
      )
    })

/** Connects (the connection closes with the scope) and answers the client with its `call` and `callKey`. */
export const connect = Effect.fnUntraced(function* (options: ConnectionOptions) {
  const settings = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: options.autoPipelining ?? true,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    maxRetriesPerRequest: 0,
    // Reconnect quickly: the embedded server is restarted within a second or two.
    retryStrategy: (attempt: number) => Math.min(attempt * 20, 500)
  }
  const redis = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = options.connection.includes("://")
          ? new Redis(options.connection, settings)
          : new Redis({ ...settings, path: options.connection })
        // Connection errors also surface as failed commands; keep them from becoming unhandled 'error' events.
        client.on("error", () => {})
        await client.connect()
        return client
      },
      catch: (cause) => new CacheStoreError({ operation: "connect", reason: "Unavailable", cause })
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )
  const watchdog = new Watchdog(options.commandTimeoutMs ?? 1000)
  const call = makeCall(watchdog)
  const callKey = makeCallKey(watchdog)
  yield* Effect.acquireRelease(
    Effect.sync(() =>
      setInterval(() => {
        // Destroy rather than end the socket: a hung server would never answer the FIN.
        if (watchdog.stuck(Date.now())) redis.stream?.destroy()
      }, watchdog.tickMs).unref()
    ),
    (timer) => Effect.sync(() => clearInterval(timer))
  )
  return { redis, call, callKey }
})
