/**
 * The chaos suite's cluster, all real and on 127.0.0.1: the fauxqs SNS/SQS emulator as a child process (so it can
 * be SIGSTOPped), a versioned HTTP data source in the harness process, and three `embedded-cache serve` processes,
 * each with its own data dir and its own embedded redis-server. Every process the cluster starts, every redis-server
 * it sees and every tmpfs it mounts is remembered, so `close` leaves nothing behind, even after a failure.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "../..")
const main = path.join(root, "layers/sidecar/main.ts")
const fauxqsLauncher = path.join(root, "infra/local/fauxqs.ts")

/** The bearer token every instance requires; the harness sends it, hostile requests do not (or send a wrong one). */
export const apiToken = "chaos-token-5d1e"

/** Milliseconds since the harness started: the one clock every recorded time uses. */
export const now = (): number => performance.now()

/** Waits `ms` milliseconds (the scenario runner paces traffic and faults with it; the smoke test never calls it). */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

/** Polls `check` every `intervalMs` until it answers true; throws `what` after `timeoutMs`. */
export const waitFor = async (
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  intervalMs = 50
): Promise<void> => {
  const deadline = now() + timeoutMs
  for (;;) {
    if (
      await Promise.resolve()
        .then(check)
        .catch(() => false)
    )
      return
    if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** True while a process with this pid exists. */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Sends a signal, ignoring a process that is already gone. */
export const signal = (pid: number, sig: NodeJS.Signals): void => {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

/** The versioned data source: every key has a version (1 at first); writers bump it before invalidating. */
export interface Source {
  readonly url: string
  readonly version: (key: string) => number
  readonly bump: (key: string) => number
  readonly close: () => Promise<void>
}

/** Starts the data source on 127.0.0.1: `GET /items/{key}` answers `{ key, version }`. */
export const startSource = async (): Promise<Source> => {
  const versions = new Map<string, number>()
  const version = (key: string) => versions.get(key) ?? 1
  const server = http.createServer((request, response) => {
    const key = decodeURIComponent((request.url ?? "").replace(/^\/items\//, ""))
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ key, version: version(key) }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/items/{key}`,
    version,
    bump: (key) => {
      const next = version(key) + 1
      versions.set(key, next)
      return next
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** How one instance is configured. */
export interface InstanceOptions {
  readonly persistence?: "none" | "aof"
  /** Mount a tmpfs of this size (e.g. "16m") as the data dir. */
  readonly tmpfs?: string
  /** More settings of its `serve` (e.g. the fail-safe family's). */
  readonly env?: Readonly<Record<string, string>>
}

/** One `serve` instance: its identity, URL and data dir survive restarts of its process. */
export interface Instance {
  readonly id: string
  readonly url: string
  readonly dataDir: string
  /** The environment every boot of its process gets. */
  readonly env: NodeJS.ProcessEnv
  /** The current process (undefined while it is down). */
  process: ChildProcess | undefined
  /** Everything every boot printed. */
  output: string
  /** Boots of the process (the first one included). */
  boots: number
  /** Exits the harness did not cause (a crash of `serve`), with their code or signal. */
  readonly crashes: Array<string>
  /** Sync flushes counted by earlier boots, plus the last sample of the current one. */
  flushesBefore: number
  flushesNow: number
}

/** A running cluster. */
export interface Cluster {
  readonly work: string
  readonly source: Source
  readonly fauxqsPid: number
  readonly instances: ReadonlyArray<Instance>
  /** Starts (or restarts) an instance's process and waits until `/readyz` answers 200. */
  readonly start: (instance: Instance) => Promise<void>
  /** SIGKILLs an instance's process and waits until it exited. */
  readonly kill: (instance: Instance) => Promise<void>
  /** SIGTERMs an instance's process (a graceful stop) and waits until it exited. */
  readonly stop: (instance: Instance) => Promise<void>
  /** The pid of an instance's redis-server, from `<data dir>/redis.pid`. */
  readonly redisPid: (instance: Instance) => number | undefined
  /** Stops everything: instances (SIGTERM, then SIGKILL), fauxqs, leftover redis-servers; unmounts tmpfs. */
  readonly close: () => Promise<void>
  /** Synchronously SIGKILLs every process the cluster knows of and unmounts its tmpfs (on an interrupt). */
  readonly abort: () => void
}

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const server = http.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** A fetch with the harness's token and a deadline. */
export const api = (url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<Response> =>
  fetch(url, {
    ...init,
    headers: { authorization: `Bearer ${apiToken}`, ...(init.headers as Record<string, string> | undefined) },
    signal: AbortSignal.timeout(timeoutMs)
  })

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

/** Starts fauxqs, the source and three instances; on any failure whatever started is stopped again. */
export const startCluster = async (options: {
  readonly name: string
  readonly instances: ReadonlyArray<InstanceOptions>
  /** Told of every cluster as soon as it exists, so an interrupt can abort one still starting. */
  readonly onAbort?: (abort: () => void) => void
}): Promise<Cluster> => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `ec-chaos-${options.name}-`))
  const mounts: Array<string> = []
  /** Processes the harness itself is stopping: their exits are not crashes. */
  const stopping = new Set<ChildProcess>()
  const redisPids = new Set<number>()
  const children: Array<ChildProcess> = []
  const instances: Array<Instance> = []
  let source: Source | undefined
  let fauxqs: ChildProcess | undefined

  const redisPid = (instance: Instance) => {
    try {
      const pid = Number(fs.readFileSync(path.join(instance.dataDir, "redis.pid"), "utf8").trim())
      if (Number.isInteger(pid) && pid > 0) {
        redisPids.add(pid)
        return pid
      }
    } catch {
      // not written yet
    }
    return undefined
  }

  const abort = () => {
    for (const child of children) stopping.add(child)
    for (const instance of instances) redisPid(instance)
    for (const child of children) if (child.pid !== undefined) signal(child.pid, "SIGKILL")
    for (const pid of redisPids) signal(pid, "SIGKILL")
    for (const mount of mounts) {
      try {
        execFileSync("umount", ["-l", mount])
      } catch {
        // reported by close when it runs
      }
    }
  }

  const close = async () => {
    if (fauxqs?.pid !== undefined) signal(fauxqs.pid, "SIGCONT")
    for (const instance of instances) {
      redisPid(instance)
      const child = instance.process
      if (child?.pid === undefined) continue
      stopping.add(child)
      signal(child.pid, "SIGTERM")
      const done = await Promise.race([exited(child).then(() => true), sleep(10_000).then(() => false)])
      if (!done) signal(child.pid, "SIGKILL")
    }
    for (const child of children) if (child.pid !== undefined && alive(child.pid)) signal(child.pid, "SIGKILL")
    for (const pid of redisPids) {
      signal(pid, "SIGCONT")
      signal(pid, "SIGKILL")
    }
    await source?.close()
    for (const mount of mounts) {
      try {
        execFileSync("umount", ["-l", mount])
      } catch (error) {
        process.stderr.write(`chaos: could not unmount ${mount}: ${String(error)}\n`)
      }
    }
    fs.rmSync(work, { recursive: true, force: true })
  }

  options.onAbort?.(() => abort())
  try {
    source = await startSource()
    fauxqs = spawn(process.execPath, [fauxqsLauncher], { stdio: ["ignore", "pipe", "pipe"] })
    children.push(fauxqs)
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = ""
      fauxqs!.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        const match = /FAUXQS_ENDPOINT=(\S+)/.exec(out)
        if (match !== null) resolve(match[1]!)
      })
      fauxqs!.once("exit", (code) => reject(new Error(`fauxqs exited (${code}) before listening: ${out}`)))
    })
    for (const [index, instanceOptions] of options.instances.entries()) {
      const id = `i${index}`
      const dataDir = path.join(work, id)
      fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
      if (instanceOptions.tmpfs !== undefined) {
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${instanceOptions.tmpfs},mode=0700`, "tmpfs", dataDir])
        mounts.push(dataDir)
      }
      const port = await freePort()
      const env = {
        ...process.env,
        CACHE_INSTANCE_ID: id,
        CACHE_DATA_DIR: dataDir,
        CACHE_HTTP_HOST: "127.0.0.1",
        CACHE_HTTP_PORT: String(port),
        CACHE_STORE: "embedded",
        CACHE_MAXMEMORY: "64mb",
        CACHE_PERSISTENCE: instanceOptions.persistence ?? "none",
        CACHE_API_TOKEN: apiToken,
        CACHE_BUS: "sns-sqs",
        CACHE_SNS_TOPIC_NAME: `chaos-${options.name}`,
        CACHE_SQS_QUEUE_PREFIX: "chaos",
        // Short receive waits and visibility, so a restart's catch-up window (their sum) fits a scenario.
        CACHE_SQS_WAIT_SECONDS: "2",
        CACHE_SQS_VISIBILITY_TIMEOUT: "5",
        CACHE_SOURCE: "http",
        CACHE_SOURCE_URL: source.url,
        AWS_ENDPOINT_URL: endpoint,
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        ...instanceOptions.env
      }
      const instance: Instance = {
        id,
        url: `http://127.0.0.1:${port}`,
        dataDir,
        env,
        process: undefined,
        output: "",
        boots: 0,
        crashes: [],
        flushesBefore: 0,
        flushesNow: 0
      }
      instances.push(instance)
    }
  } catch (error) {
    await close()
    throw error
  }

  const start = async (instance: Instance) => {
    const child = spawn(process.execPath, [main, "serve"], { env: instance.env, stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    instance.process = child
    instance.boots += 1
    instance.flushesBefore += instance.flushesNow
    instance.flushesNow = 0
    child.stdout!.on("data", (chunk: Buffer) => void (instance.output += chunk.toString()))
    child.stderr!.on("data", (chunk: Buffer) => void (instance.output += chunk.toString()))
    child.once("exit", (code, sig) => {
      if (!stopping.has(child)) instance.crashes.push(`${instance.id} exited (${sig ?? code})`)
    })
    await waitFor(
      `${instance.id} ready`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) return true
        const response = await fetch(`${instance.url}/readyz`, { signal: AbortSignal.timeout(2000) })
        return response.status === 200
      },
      60_000
    )
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${instance.id} exited during start:\n${instance.output}`)
    }
    redisPid(instance)
  }

  const end = async (instance: Instance, how: NodeJS.Signals) => {
    const child = instance.process
    if (child?.pid === undefined) return
    redisPid(instance)
    stopping.add(child)
    signal(child.pid, how)
    await exited(child)
    instance.process = undefined
  }
  const kill = (instance: Instance) => end(instance, "SIGKILL")
  const stop = (instance: Instance) => end(instance, "SIGTERM")

  try {
    await Promise.all(instances.map(start))
  } catch (error) {
    await close()
    throw error
  }
  return { work, source: source!, fauxqsPid: fauxqs!.pid!, instances, start, kill, stop, redisPid, close, abort }
}

/** Counts the supervisor's "restarting" lines in an instance's output: redis-server deaths it recovered from. */
export const redisRestarts = (instance: Instance): number =>
  instance.output.split("\n").filter((line) => line.includes("exited unexpectedly")).length

/** Samples `sync.flushes` of every running instance into its counters. */
export const sampleFlushes = async (cluster: Cluster): Promise<void> => {
  await Promise.all(
    cluster.instances.map(async (instance) => {
      if (instance.process === undefined) return
      try {
        const stats = (await (await api(`${instance.url}/api/v1/cache/stats`, {}, 3000)).json()) as {
          sync?: { flushes?: number }
        }
        const flushes = stats.sync?.flushes
        if (typeof flushes === "number") instance.flushesNow = Math.max(instance.flushesNow, flushes)
      } catch {
        // down or busy: the next sample counts
      }
    })
  )
}
