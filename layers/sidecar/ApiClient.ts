/**
 * The REST calls of the one-shot commands. They talk to the sidecar running on this machine by default
 * (`http://127.0.0.1:${CACHE_HTTP_PORT ?? 8080}`), or to the instance `--url` names, with the bearer token of
 * `--token` or `CACHE_API_TOKEN`. An unreachable instance, a non-2xx answer or a body that is not JSON becomes one
 * `error: …` line and exit code 1 (`CliOutput.failWith`).
 */
import { Config, Effect, Option, Redacted } from "effect"
import { Flag } from "effect/cli"
import * as CliOutput from "./CliOutput.ts"

/** The `--url` flag: a running instance's base URL; unset means the local sidecar (`localUrl`). */
export const urlFlag = Flag.String("url").pipe(
  Flag.withDescription("base URL of a running instance's REST API (default: http://127.0.0.1:$CACHE_HTTP_PORT, 8080)"),
  Flag.optional
)

/** The `--token` flag (default `CACHE_API_TOKEN`). */
export const tokenFlag = Flag.Redacted("token").pipe(
  Flag.withDescription("API token sent as Authorization: Bearer (default: CACHE_API_TOKEN)"),
  Flag.optional
)

/** Where a running instance answers, and with which token. */
export interface Target {
  readonly url: Option.Option<string>
  readonly token: Option.Option<Redacted.Redacted<string>>
}

/**
 * The local sidecar's URL: `http://127.0.0.1:${CACHE_HTTP_PORT}`, port 8080 when unset; a `CACHE_HTTP_PORT` no
 * client can connect to (0, not a number) fails with a line asking for `--url`.
 */
export const localUrl: Effect.Effect<string, CliOutput.CliFailure> = Effect.gen(function* () {
  const text = Option.getOrUndefined(
    yield* Config.option(Config.String("CACHE_HTTP_PORT")).pipe(Effect.orElseSucceed(() => Option.none()))
  )
  if (text === undefined) return "http://127.0.0.1:8080"
  const port = Number(text)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return yield* CliOutput.failWith(
      `CACHE_HTTP_PORT is ${JSON.stringify(text)}, not a port the local sidecar can be reached at: pass --url`
    )
  }
  return `http://127.0.0.1:${port}`
})

/** The base URL of `target`: `--url`, else the local sidecar's. */
export const baseUrl = (target: Target): Effect.Effect<string, CliOutput.CliFailure> =>
  Option.isSome(target.url) ? Effect.succeed(target.url.value.replace(/\/+$/, "")) : localUrl

/** The bearer token: `--token`, else `CACHE_API_TOKEN`. */
const tokenOf = (token: Option.Option<Redacted.Redacted<string>>) =>
  Option.isSome(token)
    ? Effect.succeed(token)
    : Config.option(Config.Redacted("CACHE_API_TOKEN")).pipe(Effect.orElseSucceed(() => Option.none()))

/** An answer of the API: its status and JSON body. */
export interface Answer {
  readonly status: number
  readonly body: unknown
}

/**
 * Calls the API and returns its status and JSON body; `accept` lists the non-2xx statuses the caller handles itself
 * (e.g. 404 for a miss). Anything else that is not 2xx, an unreachable instance, or a body that is not JSON, fails.
 */
export const request = Effect.fnUntraced(function* (
  target: Target,
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
  accept: ReadonlyArray<number> = []
) {
  const bearer = yield* tokenOf(target.token)
  const url = `${yield* baseUrl(target)}${path}`
  const headers: Record<string, string> = {}
  if (body !== undefined) headers["content-type"] = "application/json"
  if (Option.isSome(bearer)) headers["authorization"] = `Bearer ${Redacted.value(bearer.value)}`
  const answer = yield* Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, {
        method,
        headers,
        signal,
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: response.status, text: await response.text() }
    },
    catch: (cause) => cause
  }).pipe(
    Effect.catch((cause) => {
      const reason = cause instanceof Error ? String(cause.cause ?? cause) : String(cause)
      const hint = Option.isNone(target.url)
        ? " (is the sidecar running? start it with `embedded-cache serve`, or pass --url)"
        : ""
      return CliOutput.failWith(`cannot reach ${url}: ${reason}${hint}`)
    })
  )
  if ((answer.status < 200 || answer.status >= 300) && !accept.includes(answer.status)) {
    return yield* CliOutput.failWith(`${method} ${url} answered ${answer.status}: ${answer.text.trim()}`)
  }
  const parsed = yield* Effect.try({ try: () => JSON.parse(answer.text) as unknown, catch: (cause) => cause }).pipe(
    Effect.catch(() =>
      CliOutput.failWith(`${method} ${url} answered something that is not JSON: ${answer.text.slice(0, 200)}`)
    )
  )
  return { status: answer.status, body: parsed } satisfies Answer
})

/** Calls the API and returns its JSON body; any non-2xx answer fails (see `request`). */
export const call = (target: Target, method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown) =>
  Effect.map(request(target, method, path, body), (answer) => answer.body)

/** The API path of a key's entry (the key percent-encoded). */
export const entryPath = (key: string): string => `/api/v1/cache/${encodeURIComponent(key)}`
