/**
 * What fail-safe and negative caching save, measured through the sidecar: `embedded-cache serve` (a child process on
 * its embedded Redis) in front of a real HTTP source (in this process), each feature off and on in the same run.
 * - Miss burst: 1,000 `GET ?load=true` over 10 keys the source does not have (50 in flight) → source calls.
 * - Outage: 100 keys loaded with a 1 s TTL, then the source fails (HTTP 500) once they expired, and 2,000 `GET
 *   ?load=true` over them (50 in flight) → answers served (stale) vs 503, and source calls during the outage.
 * Merges `fail_safe` into `bench/results/latest.json`. No timing is measured: these are counts.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Results from "./Results.ts"

const root = path.resolve(import.meta.dirname, "..")

/** The source of truth: `/items/<key>` answers `{ key }` for `hot:*` keys, 404 otherwise, 500 while failing. */
const source = { failing: false, calls: 0 }
const sourceServer = http.createServer((request, response) => {
  source.calls++
  const key = decodeURIComponent((request.url ?? "").replace(/^\/items\//, ""))
  if (source.failing) response.writeHead(500).end("down")
  else if (key.startsWith("hot:"))
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ key }))
  else response.writeHead(404).end()
})

const listen = (server: http.Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
  )

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const get = (port: number, key: string) =>
  new Promise<number>((resolve) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: `/api/v1/cache/${encodeURIComponent(key)}?load=true`, agent },
      (res) => {
        res.resume()
        res.on("end", () => resolve(res.statusCode ?? 0))
      }
    )
    req.on("error", () => resolve(0))
  })

/** Runs `count` GETs of `keyAt(i)`, `inFlight` at a time; answers the status counts. */
const burst = async (port: number, count: number, inFlight: number, keyAt: (i: number) => string) => {
  const statuses = new Map<number, number>()
  let next = 0
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        const status = await get(port, keyAt(next++))
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }
    })
  )
  return Object.fromEntries(statuses)
}

const startServe = async (sourcePort: number, env: Record<string, string>) => {
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (probe.address() as net.AddressInfo).port
      probe.close(() => resolve(p))
    })
  })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-bench-fs-"))
  const child: ChildProcess = spawn(process.execPath, [path.join(root, "layers/sidecar/main.ts"), "serve"], {
    env: {
      ...process.env,
      CACHE_HTTP_PORT: String(port),
      CACHE_DATA_DIR: dir,
      CACHE_STORE: "embedded",
      CACHE_SOURCE: "http",
      CACHE_SOURCE_URL: `http://127.0.0.1:${sourcePort}/items/{key}`,
      CACHE_LOG_LEVEL: "error",
      ...env
    },
    stdio: "ignore"
  })
  const deadline = Date.now() + 30_000
  while ((await get(port, "hot:probe")) !== 200) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error("serve did not start")
    await new Promise((r) => setTimeout(r, 100))
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      child.once("exit", () => {
        fs.rmSync(dir, { recursive: true, force: true })
        resolve()
      })
      child.kill("SIGTERM")
    })
  return { port, stop }
}

const missBurst = async (sourcePort: number, negativeTtl: string) => {
  const serve = await startServe(sourcePort, { CACHE_NEGATIVE_TTL: negativeTtl })
  source.calls = 0
  const statuses = await burst(serve.port, 1000, 50, (i) => `missing:${i % 10}`)
  const sourceCalls = source.calls
  await serve.stop()
  return { negativeTtlSeconds: Number(negativeTtl), requests: 1000, distinctKeys: 10, statuses, sourceCalls }
}

const outage = async (sourcePort: number, maxStale: string) => {
  const serve = await startServe(sourcePort, { CACHE_DEFAULT_TTL: "1", CACHE_FAIL_SAFE_MAX_STALE: maxStale })
  source.failing = false
  await burst(serve.port, 100, 50, (i) => `hot:${i}`)
  await new Promise((r) => setTimeout(r, 1200))
  source.failing = true
  source.calls = 0
  const statuses = await burst(serve.port, 2000, 50, (i) => `hot:${i % 100}`)
  const sourceCalls = source.calls
  source.failing = false
  await serve.stop()
  return { maxStaleSeconds: Number(maxStale), requests: 2000, distinctKeys: 100, statuses, sourceCalls }
}

const sourcePort = await listen(sourceServer)
const results = {
  missBurst: [await missBurst(sourcePort, "0"), await missBurst(sourcePort, "30")],
  outage: [await outage(sourcePort, "0"), await outage(sourcePort, "300")]
}
sourceServer.close()
agent.destroy()
console.log(JSON.stringify(results, null, 2))
Results.mergeResults({ fail_safe: results })
