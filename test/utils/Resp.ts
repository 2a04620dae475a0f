/**
 * A one-shot Redis client for tests: one connection to a unix socket, one command, one parsed reply. It speaks raw
 * RESP, so tests observe the server itself, without a client library's reconnects or offline queue in between.
 */
import { Effect, Schema } from "effect"
import * as net from "node:net"

/** A reply: simple or bulk string, integer, nil, an array of replies, or an error reply. */
export type Reply = string | number | null | ErrorReply | ReadonlyArray<Reply>

/** An error reply (`-ERR ...`) as a value, so tests can assert on it. */
export class ErrorReply extends Schema.TaggedClass<ErrorReply>()("ErrorReply", { message: Schema.String }) {}

/** The connection failed or closed before a complete reply arrived. */
export class RespError extends Schema.TaggedError<RespError>()("RespError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** Parses one reply at `at`; undefined while `input` holds only part of it. */
const parse = (input: string, at: number): readonly [Reply, number] | undefined => {
  const end = input.indexOf("\r\n", at)
  if (end === -1) return undefined
  const line = input.slice(at + 1, end)
  const next = end + 2
  switch (input[at]) {
    case "+":
      return [line, next]
    case "-":
      return [new ErrorReply({ message: line }), next]
    case ":":
      return [Number(line), next]
    case "$": {
      const length = Number(line)
      if (length < 0) return [null, next]
      // replies in tests are ASCII, so string length equals byte length
      return input.length < next + length + 2 ? undefined : [input.slice(next, next + length), next + length + 2]
    }
    case "*": {
      const count = Number(line)
      if (count < 0) return [null, next]
      const items: Array<Reply> = []
      let offset = next
      for (let i = 0; i < count; i++) {
        const item = parse(input, offset)
        if (item === undefined) return undefined
        items.push(item[0])
        offset = item[1]
      }
      return [items, offset]
    }
    default:
      return [new ErrorReply({ message: `unparsable reply ${JSON.stringify(input.slice(at))}` }), input.length]
  }
}

/** Sends one command over a fresh connection to `socketPath` and returns its reply. */
export const command = (socketPath: string, ...args: ReadonlyArray<string>): Effect.Effect<Reply, RespError> =>
  Effect.callback<Reply, RespError>((resume) => {
    const socket = net.createConnection({ path: socketPath })
    let input = ""
    socket.setEncoding("utf8")
    socket.once("connect", () =>
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join("")}`)
    )
    socket.on("data", (chunk: string) => {
      input += chunk
      const reply = parse(input, 0)
      if (reply === undefined) return
      socket.destroy()
      resume(Effect.succeed(reply[0]))
    })
    socket.once("error", (cause) => resume(Effect.fail(new RespError({ message: cause.message, cause }))))
    socket.once("close", () => resume(Effect.fail(new RespError({ message: "connection closed before a reply" }))))
    return Effect.sync(() => socket.destroy())
  })

/** Whether the server at `socketPath` answers PING with PONG right now. */
export const pings = (socketPath: string): Effect.Effect<boolean> =>
  command(socketPath, "PING").pipe(
    Effect.map((reply) => reply === "PONG"),
    Effect.catch(() => Effect.succeed(false))
  )

/** `CONFIG GET <parameter>`: the value, or undefined if the server does not know it. */
export const configGet = (socketPath: string, parameter: string): Effect.Effect<string | undefined, RespError> =>
  command(socketPath, "CONFIG", "GET", parameter).pipe(
    Effect.map((reply) => (Array.isArray(reply) && typeof reply[1] === "string" ? reply[1] : undefined))
  )
