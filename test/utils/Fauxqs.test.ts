import { ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as net from "node:net"
import * as Fauxqs from "./Fauxqs.ts"

/** The local addresses (hex, as /proc/net/tcp{,6} writes them) listening on `port`. */
const listenersOn = (port: number): Array<string> => {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  return ["/proc/net/tcp", "/proc/net/tcp6"].flatMap((file) =>
    fs.existsSync(file)
      ? fs
          .readFileSync(file, "utf8")
          .split("\n")
          .slice(1)
          .flatMap((line) => {
            const [, local, , state] = line.trim().split(/\s+/)
            return local?.endsWith(`:${hexPort}`) && state === "0A" ? [local] : [] // 0A = LISTEN
          })
      : []
  )
}

/** Whether a TCP connection to host:port is accepted. */
const accepts = (host: string, port: number) =>
  Effect.callback<boolean>((resume) => {
    const socket = net.connect(port, host)
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => resume(Effect.succeed(false)))
  })

describe("Fauxqs", () => {
  it.live("listens on 127.0.0.1 only, on an OS-chosen port, and answers SQS calls", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      assert.strictEqual(fauxqs.host, "127.0.0.1")
      assert.notStrictEqual(fauxqs.port, 4566)
      assert.deepStrictEqual(listenersOn(fauxqs.port), [
        `0100007F:${fauxqs.port.toString(16).toUpperCase().padStart(4, "0")}`
      ])
      const sqs = new SQSClient({ endpoint: fauxqs.endpoint, region: fauxqs.region, credentials: fauxqs.credentials })
      const result = yield* Effect.promise(() => sqs.send(new ListQueuesCommand({})))
      sqs.destroy()
      assert.deepStrictEqual(result.QueueUrls ?? [], [])
    })
  )

  it.live("stops listening when its scope closes", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Effect.scoped(Fauxqs.make())
      assert.isFalse(yield* accepts(fauxqs.host, fauxqs.port))
      assert.deepStrictEqual(listenersOn(fauxqs.port), [])
    })
  )
})
