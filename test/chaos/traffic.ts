/**
 * The chaos suite's traffic: readers (`GET ?load=true` on random instances), writers (bump a key's version in the
 * source, then invalidate it through one instance by key, pattern or tag, or write it with tags) and hostile
 * requests, all recorded into a `History` with the harness's clock. Loops are bounded by a deadline and paced to a
 * rate; an instance marked `off` gets no traffic (a load balancer taking it out of rotation).
 */
import * as net from "node:net"
import { type Cluster, type Instance, api, apiToken, now, sleep } from "./cluster.ts"

/** One recorded read: when it started and ended, where, what it answered (`version` only for a value). */
export interface Read {
  readonly instance: string
  readonly key: string
  readonly start: number
  readonly end: number
  readonly status: number
  readonly version: number | undefined
}

/** A promise of an invalidation that returned 200: from `at` on (plus the bound) `key` is at least `version`. */
export interface Obligation {
  readonly instance: string
  readonly key: string
  readonly at: number
  readonly version: number
  readonly kind: string
}

/** Everything the traffic saw, for the checker. */
export interface History {
  readonly reads: Array<Read>
  readonly obligations: Array<Obligation>
  /** Invalidations and writes issued (whatever their answer). */
  writes: number
  /** Status counts of every read and write answer. */
  readonly statuses: Map<number, number>
  /** Requests that got no HTTP answer (connection refused, timeout) or an answer the harness could not read. */
  errors: number
  /** The first few of those errors, for the verbose log. */
  readonly errorSamples: Array<string>
  hostile: number
  /** Hostile requests not answered with a 4xx, with a sample of what they got. */
  readonly hostileBad: Array<string>
}

/** An empty history. */
export const emptyHistory = (): History => ({
  reads: [],
  obligations: [],
  writes: 0,
  statuses: new Map(),
  errors: 0,
  errorSamples: [],
  hostile: 0,
  hostileBad: []
})

/** The key space: 200 keys read with loads, `g<group>:<n>`, and 20 tagged keys written with PUT, `t<group>:<n>`. */
export const loadKeys = Array.from({ length: 200 }, (_, i) => `g${i % 4}:${Math.floor(i / 4)}`)
const tagKeys = Array.from({ length: 20 }, (_, i) => `t${i % 2}:${Math.floor(i / 2)}`)

const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(Math.random() * items.length)]!

/** Which instances take traffic now. */
export type Rotation = Set<string>

const onInstances = (cluster: Cluster, rotation: Rotation): ReadonlyArray<Instance> =>
  cluster.instances.filter((instance) => rotation.has(instance.id) && instance.process !== undefined)

const failed = (history: History, what: string, error: unknown) => {
  history.errors += 1
  if (history.errorSamples.length < 5) {
    const cause = (error as { cause?: unknown }).cause
    history.errorSamples.push(`${what}: ${String(error)}${cause === undefined ? "" : ` (${String(cause)})`}`)
  }
}

const count = (history: History, status: number) =>
  history.statuses.set(status, (history.statuses.get(status) ?? 0) + 1)

/** The version a cached value carries (loaded values are objects; PUT values are JSON strings). */
const versionOf = (value: unknown): number | undefined => {
  const parsed = typeof value === "string" ? (JSON.parse(value) as unknown) : value
  return typeof parsed === "object" && parsed !== null && typeof (parsed as { version?: unknown }).version === "number"
    ? (parsed as { version: number }).version
    : undefined
}

/** Runs `body` at about `perSecond` times a second until `deadline`. */
const paced = async (deadline: number, perSecond: number, body: () => Promise<void>) => {
  const interval = 1000 / perSecond
  while (now() < deadline) {
    const started = now()
    await body()
    const rest = interval - (now() - started)
    if (rest > 0) await sleep(Math.min(rest, deadline - now()))
  }
}

/** One reader loop. */
const reader = (cluster: Cluster, rotation: Rotation, history: History, deadline: number, perSecond: number) =>
  paced(deadline, perSecond, async () => {
    const targets = onInstances(cluster, rotation)
    if (targets.length === 0) return
    const instance = pick(targets)
    const key = Math.random() < 0.9 ? pick(loadKeys) : pick(tagKeys)
    const load = key.startsWith("g") ? "?load=true" : ""
    const start = now()
    try {
      const response = await api(`${instance.url}/api/v1/cache/${encodeURIComponent(key)}${load}`, {}, 5000)
      const text = await response.text()
      const end = now()
      count(history, response.status)
      const version = response.status === 200 ? versionOf((JSON.parse(text) as { value: unknown }).value) : undefined
      history.reads.push({ instance: instance.id, key, start, end, status: response.status, version })
    } catch (error) {
      failed(history, `GET ${key} on ${instance.id}`, error)
    }
  })

/** Keys a writer is writing with a value right now: a PUT and a tag invalidation of one key never overlap. */
const busy = new Set<string>()

const tryLock = (keys: ReadonlyArray<string>): boolean => {
  if (keys.some((key) => busy.has(key))) return false
  for (const key of keys) busy.add(key)
  return true
}

/** Issues one write; on 200 every bumped key becomes an obligation at the time it returned. */
const issue = async (
  history: History,
  instance: Instance,
  kind: string,
  bumped: ReadonlyArray<readonly [string, number]>,
  path: string,
  init: RequestInit
) => {
  history.writes += 1
  try {
    const response = await api(`${instance.url}${path}`, init)
    await response.text()
    const at = now()
    count(history, response.status)
    if (response.status === 200) {
      for (const [key, version] of bumped) history.obligations.push({ instance: instance.id, key, at, version, kind })
    }
  } catch (error) {
    failed(history, `${kind} ${path} on ${instance.id}`, error)
  }
}

const json = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body)
})

/** One writer loop: 60% DELETE, 20% key invalidation, 10% pattern, 10% a tagged PUT or a tag invalidation. */
const writer = (cluster: Cluster, rotation: Rotation, history: History, deadline: number, perSecond: number) =>
  paced(deadline, perSecond, async () => {
    const targets = onInstances(cluster, rotation)
    if (targets.length === 0) return
    const instance = pick(targets)
    const source = cluster.source
    const dice = Math.random()
    if (dice < 0.6) {
      const key = pick(loadKeys)
      const path = `/api/v1/cache/${encodeURIComponent(key)}`
      return issue(history, instance, "delete", [[key, source.bump(key)]], path, { method: "DELETE" })
    }
    if (dice < 0.8) {
      const key = pick(loadKeys)
      const bumped: Array<[string, number]> = [[key, source.bump(key)]]
      return issue(
        history,
        instance,
        "key",
        bumped,
        "/api/v1/cache/invalidate",
        json({ key, invalidation_type: "key" })
      )
    }
    if (dice < 0.9) {
      const pattern = `g${Math.floor(Math.random() * 4)}:${1 + Math.floor(Math.random() * 9)}*`
      const prefix = pattern.slice(0, -1)
      const bumped = loadKeys.filter((key) => key.startsWith(prefix)).map((key) => [key, source.bump(key)] as const)
      return issue(history, instance, "pattern", bumped, "/api/v1/cache/invalidate", {
        ...json({ pattern, invalidation_type: "pattern" })
      })
    }
    if (dice < 0.97) {
      const key = pick(tagKeys)
      if (!tryLock([key])) return
      try {
        const version = source.bump(key)
        await issue(history, instance, "put", [[key, version]], `/api/v1/cache/${encodeURIComponent(key)}`, {
          ...json({ value: JSON.stringify({ key, version }), ttl: 600, tags: [`tag${key[1]}`] }),
          method: "PUT"
        })
      } finally {
        busy.delete(key)
      }
      return
    }
    const group = String(Math.floor(Math.random() * 2))
    const keys = tagKeys.filter((key) => key[1] === group)
    if (!tryLock(keys)) return
    try {
      const bumped = keys.map((key) => [key, source.bump(key)] as const)
      await issue(history, instance, "tag", bumped, "/api/v1/cache/invalidate", {
        ...json({ tags: [`tag${group}`], invalidation_type: "tag" })
      })
    } finally {
      for (const key of keys) busy.delete(key)
    }
  })

/** Sends raw bytes and answers the status of the first response line (0 when the connection closed without one). */
const rawStatus = (url: string, bytes: string): Promise<number> =>
  new Promise((resolve) => {
    const { port } = new URL(url)
    const socket = net.connect(Number(port), "127.0.0.1")
    let answer = ""
    const done = () => {
      socket.destroy()
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0))
    }
    socket.setTimeout(5000, done)
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1")
      if (answer.includes("\r\n")) done()
    })
    socket.on("error", done)
    socket.on("close", done)
    socket.write(bytes, "latin1")
  })

/** The hostile requests: each must be answered with a 4xx and change nothing. */
const hostileRequests: ReadonlyArray<(url: string) => Promise<number>> = [
  (url) => call(`${url}/api/v1/cache/g0:1`, { ...json(undefined), method: "PUT", body: '{"value": ' }),
  (url) => call(`${url}/api/v1/cache/invalidate`, { ...json(undefined), body: "{not json" }),
  (url) => call(`${url}/api/v1/cache/%ZZbad`, {}),
  (url) => call(`${url}/api/v1/cache/bad%01key`, { method: "DELETE" }),
  (url) => call(`${url}/api/v1/cache/${"k".repeat(600)}`, { method: "DELETE" }),
  (url) => call(`${url}/api/v1/cache/g0:2`, { ...json({ value: "x".repeat(1_200_000) }), method: "PUT" }),
  (url) => call(`${url}/api/v1/cache/g0:3`, { ...json({ value: "x", ttl: -5 }), method: "PUT" }),
  (url) => call(`${url}/api/v1/cache/invalidate`, json({ pattern: "*", invalidation_type: "pattern" })),
  (url) => call(`${url}/api/v1/cache/invalidate`, json({ invalidation_type: "tag", tags: [] })),
  (url) => call(`${url}/api/v1/cache/g0:4`, { method: "PUT", headers: { "content-type": "text/plain" }, body: "x" }),
  (url) => call(`${url}/api/v1/cache/g0:5`, { method: "DELETE" }, "Bearer wrong-token"),
  (url) => call(`${url}/api/v1/cache/invalidate`, json({ key: "g0:6", invalidation_type: "key" }), ""),
  (url) => rawStatus(url, "GARBAGE \x00\x01\x02 NOT HTTP\r\n\r\n"),
  (url) => rawStatus(url, `GET /api/v1/cache/g0:7 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n`)
]

/** A request with a chosen Authorization header (the harness's token unless given). */
const call = async (url: string, init: RequestInit, authorization = `Bearer ${apiToken}`): Promise<number> => {
  const headers = { ...(init.headers as Record<string, string> | undefined), authorization }
  const response = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(5000) })
  await response.arrayBuffer()
  return response.status
}

/** One hostile loop. */
const hostile = (cluster: Cluster, rotation: Rotation, history: History, deadline: number, perSecond: number) =>
  paced(deadline, perSecond, async () => {
    const targets = onInstances(cluster, rotation)
    if (targets.length === 0) return
    const instance = pick(targets)
    const index = Math.floor(Math.random() * hostileRequests.length)
    history.hostile += 1
    const status = await hostileRequests[index]!(instance.url).catch((error: unknown) => `error ${String(error)}`)
    if (typeof status !== "number" || status < 400 || status > 499) {
      history.hostileBad.push(`request #${index} to ${instance.id}: ${status}`)
    }
  })

/** How much traffic to run. */
export interface Load {
  readonly readers: number
  readonly readsPerSecond: number
  readonly writers: number
  readonly writesPerSecond: number
  readonly hostile: number
}

/** The default load: ~240 reads/s and ~45 writes/s in total. */
export const defaultLoad: Load = { readers: 8, readsPerSecond: 30, writers: 3, writesPerSecond: 15, hostile: 0 }

/** Runs readers, writers and hostile loops until `deadline`. */
export const runTraffic = (
  cluster: Cluster,
  rotation: Rotation,
  history: History,
  deadline: number,
  load: Load
): Promise<unknown> =>
  Promise.all([
    ...Array.from({ length: load.readers }, () => reader(cluster, rotation, history, deadline, load.readsPerSecond)),
    ...Array.from({ length: load.writers }, () => writer(cluster, rotation, history, deadline, load.writesPerSecond)),
    ...Array.from({ length: load.hostile }, () => hostile(cluster, rotation, history, deadline, 20))
  ])
