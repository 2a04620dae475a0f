/**
 * Local emulators for the demo, on 127.0.0.1 only: the fauxqs SNS/SQS emulator (fauxqs's own `startFauxqs`/CLI
 * listens on 0.0.0.0, so its app is built with `buildApp` and bound here, as test/utils/Fauxqs.ts does) and a
 * tiny HTTP data source (`GET /items/{key}`: 200 with the JSON value, 404 when missing; `PUT /items/{key}` with a
 * JSON body changes it) standing in for the database the cache is in front of. All state is in memory.
 *
 *   npx node infra/local/fauxqs.ts
 *
 * Prints `FAUXQS_ENDPOINT=http://127.0.0.1:<port>` and `SOURCE_URL=http://127.0.0.1:<port>/items/{key}` once
 * both listen; stops on SIGTERM/SIGINT.
 */
import { buildApp } from "fauxqs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

const host = "127.0.0.1"
const app = buildApp({ logger: false, defaultRegion: process.env["AWS_REGION"] ?? "us-east-1" })
await app.listen({ port: Number(process.env["FAUXQS_PORT"] ?? 0), host })
const fauxqs = app.server.address() as AddressInfo

const items = new Map<string, string>([
  ["user:1", JSON.stringify("ada")],
  ["user:2", JSON.stringify("bob")]
])
const source = http.createServer((request, response) => {
  const key = decodeURIComponent((request.url ?? "").replace(/^\/items\//, ""))
  if (request.method === "PUT") {
    let body = ""
    request.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")))
    request.on("end", () => {
      items.set(key, body)
      response.writeHead(204).end()
    })
    return
  }
  const value = items.get(key)
  if (value === undefined) response.writeHead(404).end()
  else response.writeHead(200, { "content-type": "application/json" }).end(value)
})
await new Promise<void>((resolve) => source.listen(0, host, resolve))
const sourcePort = (source.address() as AddressInfo).port

process.stdout.write(`FAUXQS_ENDPOINT=http://${fauxqs.address}:${fauxqs.port}\n`)
process.stdout.write(`SOURCE_URL=http://${host}:${sourcePort}/items/{key}\n`)

const stop = () => {
  source.close()
  void app.close().then(() => process.exit(0))
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
