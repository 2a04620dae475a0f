/**
 * `http_cpu_ratio`: server CPU per GET of the sidecar (`embedded-cache serve` on the bench's redis-server, as an
 * external store) ÷ that of `bench/minimal-server.ts` on the same redis-server, at the same fixed request rate, over
 * the same keys (1 KB JSON values). Each server is a child process; its CPU is read from `/proc/<pid>/stat` before
 * and after each phase. Alternating rounds; the sidecar is measured without and with an L1
 * (`CACHE_L1_MAX_ENTRIES`). `BENCH_HTTP_RATE` (requests/s, default 2000) and `BENCH_HTTP_PHASE_MS` (default 4000)
 * override the load.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

const rate = Number(process.env["BENCH_HTTP_RATE"] ?? 2000)
const phaseMs = Number(process.env["BENCH_HTTP_PHASE_MS"] ?? 4000)
const rounds = Number(process.env["BENCH_HTTP_ROUNDS"] ?? 3)
const keyCount = 1000
const root = path.resolve(import.meta.dirname, "..")
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ: 100 on Linux). */
const ticksPerSecond = 100

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (probe.address() as net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })

/** CPU seconds the process has used (user + system). */
const cpuSeconds = (pid: number): number => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

const get = (port: number, key: string) =>
  new Promise<number>((resolve) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: `/api/v1/cache/${encodeURIComponent(key)}`, agent },
      (res) => {
        res.resume()
        res.on("end", () => resolve(res.statusCode ?? 0))
      }
    )
    req.on("error", () => resolve(0))
  })

const waitUntilUp = async (port: number, child: ChildProcess) => {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`)
    if ((await get(port, "bench:0")) === 200) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error("server did not answer within 30 s")
}

interface Server {
  readonly name: string
  readonly port: number
  readonly child: ChildProcess
}

const start = async (name: string, args: ReadonlyArray<string>, env: Record<string, string>): Promise<Server> => {
  const port = await freePort()
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port), CACHE_HTTP_PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"]
  })
  await waitUntilUp(port, child)
  return { name, port, child }
}

/** Sends `rate` GETs per second for `ms` to `server`; answers its CPU µs per GET and the statuses seen. */
const phase = async (server: Server, ms: number) => {
  const pid = server.child.pid!
  const before = cpuSeconds(pid)
  const started = performance.now()
  let sent = 0
  let ok = 0
  let failed = 0
  const inFlight: Array<Promise<void>> = []
  let i = 0
  while (performance.now() - started < ms) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate)
    for (; sent < due; sent++) {
      const key = `bench:${i++ % keyCount}`
      inFlight.push(
        get(server.port, key).then((status) => {
          if (status === 200) ok++
          else failed++
        })
      )
    }
    await new Promise((r) => setTimeout(r, 2))
  }
  await Promise.all(inFlight)
  const cpu = cpuSeconds(pid) - before
  return { cpuUsPerGet: (cpu * 1e6) / ok, ok, failed, cpuPct: (cpu / (ms / 1000)) * 100 }
}

const median = (xs: ReadonlyArray<number>) => {
  // oxlint-disable-next-line unicorn/no-array-sort -- sorts a fresh copy
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Measures the sidecar (without and with an L1) against the minimal server, on the redis-server at `socket`. */
export const runHttp = async (socket: string) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-bench-http-"))
  const sidecarEnv = (l1: boolean) => ({
    CACHE_STORE: "external",
    CACHE_REDIS_URL: socket,
    CACHE_BUS: "none",
    CACHE_SOURCE: "none",
    CACHE_LOG_LEVEL: "warn",
    CACHE_ACCESS_LOG: "false",
    CACHE_INSTANCE_ID: l1 ? "bench-sidecar-l1" : "bench-sidecar",
    CACHE_DATA_DIR: dataDir,
    CACHE_L1_MAX_ENTRIES: l1 ? "10000" : "0"
  })
  const servers: Array<Server> = []
  try {
    servers.push(await start("minimal", ["bench/minimal-server.ts"], { REDIS_SOCKET: socket }))
    servers.push(await start("sidecar", ["layers/sidecar/main.ts", "serve"], sidecarEnv(false)))
    servers.push(await start("sidecar-l1", ["layers/sidecar/main.ts", "serve"], sidecarEnv(true)))
    for (const server of servers) await phase(server, 1000) // warm-up (JIT, connections, the L1)
    const results: Record<string, Array<Awaited<ReturnType<typeof phase>>>> = {}
    for (let round = 0; round < rounds; round++) {
      // oxlint-disable-next-line unicorn/no-array-reverse -- reverses a fresh copy; toReversed is ES2023
      const order = round % 2 === 0 ? servers : [...servers].reverse()
      for (const server of order) (results[server.name] ??= []).push(await phase(server, phaseMs))
    }
    const cpu = (name: string) => median(results[name]!.map((r) => r.cpuUsPerGet))
    const ratios = (name: string) => results[name]!.map((r, i) => r.cpuUsPerGet / results["minimal"]![i]!.cpuUsPerGet)
    const summary = {
      ratio: Number(median(ratios("sidecar")).toFixed(2)),
      ratioRange: [Math.min(...ratios("sidecar")), Math.max(...ratios("sidecar"))].map((x) => Number(x.toFixed(2))),
      ratioWithL1: Number(median(ratios("sidecar-l1")).toFixed(2)),
      cpuUsPerGet: Object.fromEntries(servers.map((s) => [s.name, Number(cpu(s.name).toFixed(1))])),
      failed: Object.fromEntries(servers.map((s) => [s.name, results[s.name]!.reduce((n, r) => n + r.failed, 0)])),
      rate,
      phaseMs,
      rounds,
      keys: keyCount,
      rounds_detail: results
    }
    console.log(
      `http_cpu_ratio ${summary.ratio} (${summary.ratioRange.join("–")}), with an L1 ${summary.ratioWithL1}: ` +
        `server CPU µs per GET ${JSON.stringify(summary.cpuUsPerGet)} at ${rate} req/s`
    )
    return summary
  } finally {
    for (const server of servers) server.child.kill("SIGTERM")
    agent.destroy()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}
