/**
 * The baseline of `http_cpu_ratio`: a minimal node:http + ioredis server answering the sidecar's GET route
 * (`/api/v1/cache/{key}` → `{key, value, ttl, data_type, hit}`, 404 `{key, hit: false}`) from the same redis-server,
 * with a GET and a PTTL per request (auto-pipelined) and a `JSON.parse` of the value — what a hand-written sidecar
 * would do, and nothing more. `PORT` and `REDIS_SOCKET` from the environment.
 */
import { Redis } from "ioredis"
import * as http from "node:http"

const redis = new Redis({ path: process.env["REDIS_SOCKET"]!, enableAutoPipelining: true })
const prefix = "/api/v1/cache/"
const json = { "content-type": "application/json" }

const server = http.createServer((req, res) => {
  const url = req.url ?? ""
  if (req.method !== "GET" || !url.startsWith(prefix)) {
    res.writeHead(url === "/healthz" ? 200 : 404, json).end("{}")
    return
  }
  const key = decodeURIComponent(url.slice(prefix.length))
  Promise.all([redis.get(key), redis.pttl(key)]).then(
    ([text, pttl]) => {
      if (text === null) {
        res.writeHead(404, json).end(JSON.stringify({ key, hit: false }))
        return
      }
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        value = text
      }
      const ttl = pttl < 0 ? -1 : Math.ceil(pttl / 1000)
      res.writeHead(200, json).end(JSON.stringify({ key, value, ttl, data_type: "string", hit: true }))
    },
    () => res.writeHead(503, json).end('{"error":"store_unavailable"}')
  )
})
server.keepAliveTimeout = 60_000
server.listen(Number(process.env["PORT"]), "127.0.0.1")
process.on("SIGTERM", () => {
  server.close()
  void redis.quit()
})
