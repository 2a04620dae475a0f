/**
 * The chaos scenarios and the runner of one: start a fresh cluster, run traffic and the scenario's fault side by
 * side until the deadline, check the history, and always tear the cluster down. A scenario is its instances'
 * options, its staleness bound and a fault; the bound is what the README promises for that situation.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Disk from "../utils/Disk.ts"
import {
  type Cluster,
  type Instance,
  type InstanceOptions,
  alive,
  api,
  now,
  redisRestarts,
  sampleFlushes,
  signal,
  sleep,
  startCluster,
  waitFor
} from "./cluster.ts"
import { type ScenarioResult, check, passed } from "./checker.ts"
import { type History, type Load, type Rotation, defaultLoad, emptyHistory, runTraffic } from "./traffic.ts"

/** What a fault may touch while traffic runs. */
export interface FaultContext {
  readonly cluster: Cluster
  readonly rotation: Rotation
  readonly started: number
  readonly deadline: number
  readonly log: (message: string) => void
}

/** One scenario. */
export interface Scenario {
  readonly name: string
  /** A read starting this long after an invalidation returned must answer at least its version. */
  readonly boundMs: number
  readonly instances: ReadonlyArray<InstanceOptions>
  readonly load?: Partial<Load>
  readonly fault?: (context: FaultContext) => Promise<void>
  /** The most flushes the scenario may cause (a restart that lost nothing must cost none). */
  readonly maxFlushes?: number
}

const plain: ReadonlyArray<InstanceOptions> = [{}, {}, {}]
const aof: ReadonlyArray<InstanceOptions> = [{ persistence: "aof" }, { persistence: "aof" }, { persistence: "aof" }]
/**
 * The fail-safe family on, with 2 s TTLs so that entries expire, are refreshed eagerly and kept as stale copies while
 * the faults and the invalidations go on.
 */
const freshness: InstanceOptions = {
  env: {
    CACHE_DEFAULT_TTL: "2",
    CACHE_FAIL_SAFE_MAX_STALE: "60",
    CACHE_FAIL_SAFE_THROTTLE: "1",
    CACHE_EAGER_REFRESH: "0.5",
    CACHE_NEGATIVE_TTL: "2",
    CACHE_SOURCE_SOFT_TIMEOUT_MS: "50"
  }
}

/** Sleeps until `at` (harness clock), never past the deadline; false when there is no time left for a fault. */
const until = async (context: FaultContext, at: number, needMs: number): Promise<boolean> => {
  if (at + needMs > context.deadline) return false
  await sleep(Math.max(0, at - now()))
  return true
}

/** Waits until the instance's store answers again: a new redis-server pid and `/readyz` 200. */
const storeBack = (instance: Instance, cluster: Cluster, oldPid: number) =>
  waitFor(
    `${instance.id}'s store back`,
    async () => {
      const pid = cluster.redisPid(instance)
      if (pid === undefined || pid === oldPid) return false
      return (await api(`${instance.url}/readyz`, {}, 2000)).status === 200
    },
    30_000,
    20
  )

/** SIGKILLs instance i0's redis-server every ~10 s; with `offWhileDown` i0 gets no traffic until its store is back. */
const redisKill =
  (offWhileDown: boolean) =>
  async (context: FaultContext): Promise<void> => {
    const instance = context.cluster.instances[0]!
    const span = context.deadline - context.started
    for (let at = context.started + Math.min(5000, span / 4); await until(context, at, 1000); at += 10_000) {
      const pid = context.cluster.redisPid(instance)
      if (pid === undefined || !alive(pid)) continue
      if (offWhileDown) context.rotation.delete(instance.id)
      context.log(`SIGKILL redis-server ${pid} of ${instance.id}`)
      signal(pid, "SIGKILL")
      try {
        await storeBack(instance, context.cluster, pid)
      } finally {
        context.rotation.add(instance.id)
      }
    }
  }

/** How long the bus outage scenario keeps fauxqs stopped. */
const busOutageMs = 4000

/**
 * SIGSTOPs the fauxqs process for `busOutageMs`, once, a third into the run. An invalidation the bus accepted just
 * before it froze cannot reach the peers until it resumes, so this scenario's bound is the outage plus the lag.
 */
const busOutage = async (context: FaultContext): Promise<void> => {
  if (!(await until(context, context.started + (context.deadline - context.started) / 3, busOutageMs))) return
  context.log(`SIGSTOP fauxqs ${context.cluster.fauxqsPid}`)
  signal(context.cluster.fauxqsPid, "SIGSTOP")
  try {
    await sleep(busOutageMs)
  } finally {
    signal(context.cluster.fauxqsPid, "SIGCONT")
    context.log("SIGCONT fauxqs")
  }
}

/** SIGKILLs instance i1's whole `serve` process, keeps it down 2 s, restarts it on its data dir. */
const instanceRestart = async (context: FaultContext): Promise<void> => {
  const instance = context.cluster.instances[1]!
  if (!(await until(context, context.started + (context.deadline - context.started) / 3, 3000))) return
  context.rotation.delete(instance.id)
  context.log(`SIGKILL serve of ${instance.id}`)
  try {
    await context.cluster.kill(instance)
    await sleep(2000)
    await context.cluster.start(instance)
    context.log(`${instance.id} ready again`)
  } finally {
    context.rotation.add(instance.id)
  }
}

/** Restarts every instance in turn, gracefully (SIGTERM), on its data dir, with traffic kept off it while it is down. */
const rollingRestart = async (context: FaultContext): Promise<void> => {
  for (const instance of context.cluster.instances) {
    if (now() + 3000 > context.deadline) return
    context.rotation.delete(instance.id)
    context.log(`SIGTERM serve of ${instance.id}`)
    try {
      await context.cluster.stop(instance)
      await context.cluster.start(instance)
      context.log(`${instance.id} ready again`)
    } finally {
      context.rotation.add(instance.id)
    }
  }
}

/** SIGSTOPs instance i0's redis-server for 3 s, every ~10 s. */
const redisStop = async (context: FaultContext): Promise<void> => {
  const instance = context.cluster.instances[0]!
  const span = context.deadline - context.started
  for (let at = context.started + Math.min(5000, span / 4); await until(context, at, 3000); at += 10_000) {
    const pid = context.cluster.redisPid(instance)
    if (pid === undefined) continue
    context.log(`SIGSTOP redis-server ${pid} of ${instance.id}`)
    signal(pid, "SIGSTOP")
    try {
      await sleep(3000)
    } finally {
      signal(pid, "SIGCONT")
    }
  }
}

/** Fills instance i2's tmpfs data dir a quarter into the run, keeps it full for a third of it, then frees it. */
const diskFull = async (context: FaultContext): Promise<void> => {
  const instance = context.cluster.instances[2]!
  const span = context.deadline - context.started
  if (!(await until(context, context.started + span / 4, span / 3))) return
  const filler = path.join(instance.dataDir, "filler")
  Disk.fillUp(filler)
  context.log(`disk of ${instance.id} full`)
  try {
    await sleep(span / 3)
  } finally {
    fs.rmSync(filler, { force: true })
    context.log(`disk of ${instance.id} freed`)
  }
}

/** Every scenario, in the order the suite runs them. */
export const scenarios: ReadonlyArray<Scenario> = [
  { name: "baseline", boundMs: 1000, instances: plain },
  { name: "redis-kill", boundMs: 1000, instances: plain, fault: redisKill(false) },
  { name: "redis-kill-aof", boundMs: 1000, instances: aof, fault: redisKill(false) },
  { name: "redis-kill-aof-offload", boundMs: 1000, instances: aof, fault: redisKill(true) },
  { name: "bus-outage", boundMs: 1000 + busOutageMs, instances: plain, fault: busOutage },
  { name: "instance-restart-aof", boundMs: 1000, instances: aof, fault: instanceRestart },
  { name: "rolling-restart-aof", boundMs: 1000, instances: aof, fault: rollingRestart, maxFlushes: 0 },
  { name: "redis-stop", boundMs: 1000, instances: plain, fault: redisStop },
  {
    name: "disk-full",
    boundMs: 1000,
    instances: [{ persistence: "aof" }, { persistence: "aof" }, { persistence: "aof", tmpfs: "8m" }],
    fault: diskFull
  },
  { name: "hostile", boundMs: 1000, instances: plain, load: { hostile: 2 } },
  {
    name: "fail-safe-redis-kill",
    boundMs: 1000,
    instances: [freshness, freshness, freshness],
    fault: redisKill(false)
  }
]

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
export const cannotMount = (): string | undefined => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-chaos-probe-"))
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "pipe" })
    execFileSync("umount", [dir], { stdio: "pipe" })
    return undefined
  } catch (error) {
    return String((error as { stderr?: Buffer }).stderr ?? error).trim() || String(error)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** The result of `scenario` before any traffic ran: every count 0, not passed. */
export const noTraffic = (scenario: Scenario): ScenarioResult => ({
  name: scenario.name,
  boundMs: scenario.boundMs,
  reads: 0,
  writes: 0,
  violations: 0,
  maxStaleMs: new Map<string, number>(),
  status5xx: 0,
  status503: 0,
  errors: 0,
  restarts: 0,
  crashes: 0,
  flushes: 0,
  hostile: 0,
  hostileBad: 0,
  passed: false
})

/** Aborts of the clusters running now, for an interrupt of the runner. */
export const running = new Set<() => void>()

/** Runs one scenario for `seconds` of traffic and answers its result; the cluster is torn down whatever happens. */
export const runScenario = async (
  scenario: Scenario,
  seconds: number,
  log: (message: string) => void = () => {}
): Promise<ScenarioResult & { readonly history: History }> => {
  const history = emptyHistory()
  const base = { ...noTraffic(scenario), history }
  if (scenario.instances.some((instance) => instance.tmpfs !== undefined)) {
    const why = cannotMount()
    if (why !== undefined) return { ...base, skipped: `cannot mount tmpfs (${why})`, passed: false }
  }
  let abort: (() => void) | undefined
  const cluster = await startCluster({
    name: scenario.name,
    instances: scenario.instances,
    onAbort: (a) => running.add((abort = a))
  })
  try {
    const rotation: Rotation = new Set(cluster.instances.map((instance) => instance.id))
    const started = now()
    const deadline = started + seconds * 1000
    const context: FaultContext = { cluster, rotation, started, deadline, log }
    const monitor = (async () => {
      while (now() < deadline) {
        await sampleFlushes(cluster)
        for (const instance of cluster.instances) cluster.redisPid(instance)
        await sleep(Math.min(1000, Math.max(0, deadline - now())))
      }
    })()
    const load = { ...defaultLoad, ...scenario.load }
    await Promise.all([runTraffic(cluster, rotation, history, deadline, load), scenario.fault?.(context), monitor])
    await sampleFlushes(cluster)
    const ids = cluster.instances.map((instance) => instance.id)
    const verdict = check(history, scenario.boundMs, ids)
    for (const violation of verdict.violations.slice(0, 5)) {
      const { read, obligation } = violation
      log(
        `violation: ${read.instance} answered ${read.key} v${read.version} at ${Math.round(read.start - started)} ms, ` +
          `${Math.round(violation.staleMs)} ms after ${obligation.kind} on ${obligation.instance} (v${obligation.version}) returned`
      )
    }
    const statuses = [...history.statuses]
    const result = {
      ...base,
      reads: history.reads.length,
      writes: history.writes,
      violations: verdict.violations.length,
      maxStaleMs: verdict.maxStaleMs,
      status5xx: statuses.filter(([status]) => status >= 500).reduce((sum, [, n]) => sum + n, 0),
      status503: history.statuses.get(503) ?? 0,
      errors: history.errors,
      restarts: cluster.instances.reduce((sum, i) => sum + redisRestarts(i) + i.boots - 1, 0),
      crashes: cluster.instances.reduce((sum, i) => sum + i.crashes.length, 0),
      flushes: cluster.instances.reduce((sum, i) => sum + i.flushesBefore + i.flushesNow, 0),
      hostile: history.hostile,
      hostileBad: history.hostileBad.length
    }
    for (const error of history.errorSamples) log(`error: ${error}`)
    for (const instance of cluster.instances) for (const crash of instance.crashes) log(`crash: ${crash}`)
    for (const bad of history.hostileBad.slice(0, 5)) log(`hostile request not answered with a 4xx: ${bad}`)
    const withinFlushes = scenario.maxFlushes === undefined || result.flushes <= scenario.maxFlushes
    if (!withinFlushes) log(`${result.flushes} flushes, more than the ${scenario.maxFlushes} this scenario allows`)
    return { ...result, passed: passed(result) && withinFlushes }
  } finally {
    await cluster.close()
    if (abort !== undefined) running.delete(abort)
  }
}
