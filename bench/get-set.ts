/**
 * Throughput of embedded-cache `get`, `getOrLoad` (hit path), `set` and `getOrLoad` with an L1 against raw ioredis
 * GET (+ `JSON.parse`) and SET (of `JSON.stringify(value)`), on one embedded redis-server, in one run: 100,000 keys
 * × 1 KB JSON string values, 256 operations in flight in a closed loop, a unix socket, and alternating rounds after a
 * warm-up; `get`/`getOrLoad`/`set` walk the keys in order, `l1Get` draws them Zipf(0.99). Read the ratios
 * (embedded-cache ops/s ÷ raw ops/s, median of per-round ratios), not the absolute numbers: the machine is shared,
 * and both sides pay the same ioredis client and server costs, so a ratio below 1 is what the toolkit adds on top
 * (validation, codec, breaker, Effect runtime). Then `stampede_ms` (bench/stampede.ts) and `http_cpu_ratio`
 * (bench/http.ts, unless `BENCH_HTTP=0`).
 *
 * Run with `npm run bench`; merges its keys into `bench/results/latest.json`. `BENCH_ROUNDS`, `BENCH_PHASE_MS` and
 * `BENCH_WARMUP_MS` override the defaults (for profiling runs).
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../effects/Cache.ts"
import * as RedisCache from "../layers/RedisCache.ts"
import { CacheStore } from "../src/CacheStore.ts"
import { defaults, EmbeddedRedis } from "../src/EmbeddedRedis.ts"
import { runHttp } from "./http.ts"
import { mergeResults } from "./Results.ts"
import { runStampede } from "./stampede.ts"
import { zipf } from "./Zipf.ts"

const envInt = (name: string, fallback: number): number => {
  const n = Number(process.env[name])
  return Number.isSafeInteger(n) && n > 0 ? n : fallback
}

const settings = {
  inFlight: 256,
  keySpace: 100_000,
  /** Skew of the `l1Get` key draws. */
  zipfS: 0.99,
  /** The L1 of the `l1Get` phase: room for every key, so the phase measures hits (the rest miss to the store). */
  l1: { maxEntries: 100_000, maxBytes: 256 * 1024 * 1024 },
  /** Bytes stored per value: the JSON text of a 1022-character string. */
  valueBytes: 1024,
  rounds: envInt("BENCH_ROUNDS", 5),
  phaseMs: envInt("BENCH_PHASE_MS", 1500),
  warmupMs: envInt("BENCH_WARMUP_MS", 500),
  /** Every Nth operation of a worker is timed, so timing stays off most of the hot path. */
  latencySampleEvery: 16,
  /** Both clients batch commands issued in one tick; true is the store's default. */
  autoPipelining: true,
  transport: "unix socket",
  maxmemory: "1gb",
  evictionPolicy: "noeviction"
} as const

type Kind = "get" | "getOrLoad" | "set" | "l1Get"
const kinds: ReadonlyArray<Kind> = ["get", "getOrLoad", "set", "l1Get"]
/** What each side runs per kind; the raw side of every read is a GET and a `JSON.parse` of its reply. */
const labels: Record<Kind, { readonly cache: string; readonly raw: string }> = {
  get: { cache: "cache.get(key, Schema.String)", raw: "JSON.parse(await redis.get(key))" },
  getOrLoad: { cache: "cache.getOrLoad(key, load, { schema }) (hits)", raw: "JSON.parse(await redis.get(key))" },
  set: { cache: "cache.set(key, value, { schema })", raw: "redis.set(key, JSON.stringify(value))" },
  l1Get: {
    cache: "cache.getOrLoad(key, load, { schema }) with an L1 (Zipf 0.99 keys)",
    raw: "JSON.parse(await redis.get(key)) (same Zipf keys)"
  }
}

/** One measured phase. */
interface Phase {
  readonly ops: number
  readonly ms: number
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** CPU time of this Node process per operation (client side only; less noisy than ops/s on a shared machine). */
  readonly cpuUsPerOp: number
  /** CPU time of this Node process ÷ wall time: near 100% means the client side is the bottleneck. */
  readonly cpuPct: number
  /** Reads that missed, writes not written, loads run: all should be 0. */
  readonly anomalies: number
}

const keys = Array.from({ length: settings.keySpace }, (_, i) => `bench:${i}`)
/** A deterministic 1022-character alphanumeric string; JSON-encoded it is exactly `valueBytes` bytes. */
const value = Array.from(
  { length: settings.valueBytes - 2 },
  (_, i) => "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7919) % 36]
).join("")
const json = JSON.stringify(value)
const workers = Array.from({ length: settings.inFlight }, (_, w) => w)
/** Workers start spread over the key space and walk it in order. */
const firstKey = (worker: number) => Math.floor((worker * settings.keySpace) / settings.inFlight)
/** The Zipf key draws of `l1Get`, the same sequence for both sides; workers start spread over it. */
const zipfTrace = (() => {
  const draw = zipf(settings.keySpace, settings.zipfS)
  return Int32Array.from({ length: 1 << 20 }, draw)
})()
const zipfStart = (worker: number) => Math.floor((worker * zipfTrace.length) / settings.inFlight)

const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const phaseOf = (ops: number, ms: number, cpu: NodeJS.CpuUsage, samples: Array<number>, anomalies: number): Phase => {
  const cpuUs = cpu.user + cpu.system
  // oxlint-disable-next-line unicorn/no-array-sort -- sorts a fresh copy (typed arrays sort numerically)
  const sorted = Float64Array.from(samples).sort()
  return {
    ops,
    ms,
    opsPerSec: (ops / ms) * 1000,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    cpuUsPerOp: cpuUs / ops,
    cpuPct: cpuUs / 10 / ms,
    anomalies
  }
}

/** 256 fibers in one Effect program, each issuing the next cache operation when its previous one completes. */
const cachePhase = (
  cache: Cache.Cache["Service"],
  l1Cache: Cache.Cache["Service"],
  kind: Kind,
  durationMs: number
): Effect.Effect<Phase> =>
  Effect.suspend(() => {
    let anomalies = 0
    const load = Effect.sync(() => {
      anomalies++
      return value
    })
    const options = { schema: Schema.String }
    const op = (key: string): Effect.Effect<unknown, unknown> =>
      kind === "get"
        ? Effect.map(cache.get(key, Schema.String), (found) => {
            if (Option.isNone(found)) anomalies++
          })
        : kind === "getOrLoad"
          ? cache.getOrLoad(key, load, options)
          : kind === "l1Get"
            ? l1Cache.getOrLoad(key, load, options)
            : Effect.map(cache.set(key, value, options), (outcome) => {
                // oxlint-disable-next-line no-underscore-dangle -- WriteOutcome is a tagged union
                if (outcome._tag !== "Written") anomalies++
              })
    const samples: Array<number> = []
    let ops = 0
    const cpu = process.cpuUsage()
    const start = performance.now()
    const deadline = start + durationMs
    const skewed = kind === "l1Get"
    const worker = (w: number) =>
      Effect.gen(function* () {
        let i = skewed ? zipfStart(w) : firstKey(w)
        const length = skewed ? zipfTrace.length : keys.length
        let n = 0
        while (performance.now() < deadline) {
          const key = keys[skewed ? zipfTrace[i]! : i]!
          if (++n % settings.latencySampleEvery === 0) {
            const t0 = performance.now()
            yield* op(key)
            samples.push(performance.now() - t0)
          } else {
            yield* op(key)
          }
          i = i + 1 === length ? 0 : i + 1
        }
        ops += n
      })
    return Effect.forEach(workers, worker, { concurrency: settings.inFlight, discard: true }).pipe(
      Effect.orDie,
      Effect.map(() => phaseOf(ops, performance.now() - start, process.cpuUsage(cpu), samples, anomalies))
    )
  })

/** 256 async workers on the raw client, each awaiting its previous command before issuing the next. */
const rawPhase = async (redis: Redis, kind: Kind, durationMs: number): Promise<Phase> => {
  let anomalies = 0
  const samples: Array<number> = []
  let ops = 0
  // A fair baseline: the raw side encodes what it writes and decodes what it reads, as an app would.
  const op =
    kind === "set"
      ? async (key: string) => {
          if ((await redis.set(key, JSON.stringify(value))) !== "OK") anomalies++
        }
      : async (key: string) => {
          const text = await redis.get(key)
          if (text === null || typeof JSON.parse(text) !== "string") anomalies++
        }
  const cpu = process.cpuUsage()
  const start = performance.now()
  const deadline = start + durationMs
  const skewed = kind === "l1Get"
  const worker = async (w: number) => {
    let i = skewed ? zipfStart(w) : firstKey(w)
    const length = skewed ? zipfTrace.length : keys.length
    let n = 0
    while (performance.now() < deadline) {
      const key = keys[skewed ? zipfTrace[i]! : i]!
      if (++n % settings.latencySampleEvery === 0) {
        const t0 = performance.now()
        await op(key)
        samples.push(performance.now() - t0)
      } else {
        await op(key)
      }
      i = i + 1 === length ? 0 : i + 1
    }
    ops += n
  }
  await Promise.all(workers.map(worker))
  return phaseOf(ops, performance.now() - start, process.cpuUsage(cpu), samples, anomalies)
}

const median = (xs: ReadonlyArray<number>): number => {
  // oxlint-disable-next-line unicorn/no-array-sort -- sorts a fresh copy; toSorted is ES2023, the lib is ES2022
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const fixed = (n: number, digits: number) => Number(n.toFixed(digits))

const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  return rows
    .map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "))
    .join("\n")
}

const main = Effect.gen(function* () {
  const dataDir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ec-bench-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const context = yield* Layer.build(
    RedisCache.layerEmbedded({
      server: {
        ...defaults(dataDir),
        maxmemory: settings.maxmemory,
        evictionPolicy: settings.evictionPolicy,
        persistence: "none"
      },
      store: { autoPipelining: settings.autoPipelining }
    })
  )
  const cache = Context.get(context, Cache.Cache)
  const server = Context.get(context, EmbeddedRedis)
  // A second cache over the same store, with an L1 (an option the code before the L1 ignores: then it measures the
  // store path, which is the "before" figure).
  const l1Cache = yield* Cache.make({ l1: settings.l1 } as Cache.CacheOptions).pipe(
    Effect.provideService(CacheStore, Context.get(context, CacheStore))
  )
  const redis = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis({ path: server.socketPath, enableAutoPipelining: settings.autoPipelining })
      await client.ping()
      return client
    }),
    (client) => Effect.promise(() => client.quit())
  )
  const redisVersion = yield* Effect.promise(() => redis.info("server")).pipe(
    Effect.map((info) => /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown")
  )
  yield* Effect.promise(async () => {
    const pipeline = redis.pipeline()
    for (const key of keys) pipeline.set(key, json)
    await pipeline.exec()
  })

  // Every key read once through the L1 cache, so `l1Get` measures hits (it has room for every key).
  yield* Effect.forEach(keys, (key) => l1Cache.getOrLoad(key, Effect.succeed(value), { schema: Schema.String }), {
    concurrency: settings.inFlight,
    discard: true
  })

  const run = (side: "cache" | "raw", kind: Kind, ms: number): Effect.Effect<Phase> =>
    side === "cache" ? cachePhase(cache, l1Cache, kind, ms) : Effect.promise(() => rawPhase(redis, kind, ms))

  console.log(
    `embedded-cache vs raw ioredis: node ${process.version}, redis ${redisVersion}, ${settings.inFlight} in flight, ` +
      `${settings.valueBytes} B values, ${settings.keySpace} keys, ${settings.rounds} rounds × ${settings.phaseMs} ms ` +
      `per phase, autopipelining ${settings.autoPipelining} on both clients, ${settings.transport}`
  )
  for (const kind of kinds) {
    yield* run("cache", kind, settings.warmupMs)
    yield* run("raw", kind, settings.warmupMs)
  }

  const rounds: Array<{ readonly round: number; readonly first: "cache" | "raw" } & Record<Kind, RoundResult>> = []
  for (let round = 1; round <= settings.rounds; round++) {
    const first = round % 2 === 1 ? "cache" : "raw"
    const second = first === "cache" ? "raw" : "cache"
    const results: Partial<Record<Kind, RoundResult>> = {}
    for (const kind of kinds) {
      const a = yield* run(first, kind, settings.phaseMs)
      const b = yield* run(second, kind, settings.phaseMs)
      const cachePh = first === "cache" ? a : b
      const rawPh = first === "cache" ? b : a
      results[kind] = { cache: cachePh, raw: rawPh, ratio: cachePh.opsPerSec / rawPh.opsPerSec }
    }
    rounds.push({ round, first, ...(results as Record<Kind, RoundResult>) })
    console.log(
      `round ${round} (${first} first): ` + kinds.map((k) => `${k} ${results[k]!.ratio.toFixed(3)}`).join(", ")
    )
  }
  const stats = yield* cache.stats
  const l1Stats = yield* l1Cache.stats
  const stampede = yield* Effect.promise(() => runStampede(cache, settings.rounds))
  const http = process.env["BENCH_HTTP"] === "0" ? undefined : yield* Effect.promise(() => runHttp(server.socketPath))
  return { rounds, redisVersion, stats, l1Stats, stampede, http }
})

interface SideSummary {
  readonly opsPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly cpuUsPerOp: number
  readonly cpuPct: number
}

interface KindSummary {
  readonly ratio: number
  /** Rounds counted (the clean ones). */
  readonly rounds: number
  readonly cache: SideSummary
  readonly raw: SideSummary
}

interface RoundResult {
  readonly cache: Phase
  readonly raw: Phase
  readonly ratio: number
}

const latencies = (p: SideSummary) => `${p.p50Ms.toFixed(2)}/${p.p99Ms.toFixed(2)}`
const cpuOf = (p: SideSummary) => `${p.cpuUsPerOp.toFixed(1)} (${Math.round(p.cpuPct)}%)`

/**
 * The rounds of `kind` that measured what they claim: a round where either side saw misses, failed writes or loads
 * (the store timed out and the cache answered without it, say) did not do the same work on both sides, so its ratio
 * says nothing; it is left out of the medians (all rounds are kept when none is clean).
 */
const clean = (rounds: ReadonlyArray<Record<Kind, RoundResult>>, kind: Kind) => {
  const valid = rounds.filter((r) => r[kind].cache.anomalies === 0 && r[kind].raw.anomalies === 0)
  return valid.length > 0 ? valid : rounds
}

const report = (outcome: Effect.Success<typeof main>) => {
  const { http, l1Stats, redisVersion, rounds, stampede, stats } = outcome
  const summary = Object.fromEntries(
    kinds.map((kind) => {
      const counted = clean(rounds, kind)
      const of = (side: "cache" | "raw") => ({
        opsPerSec: Math.round(median(counted.map((r) => r[kind][side].opsPerSec))),
        p50Ms: fixed(median(counted.map((r) => r[kind][side].p50Ms)), 3),
        p99Ms: fixed(median(counted.map((r) => r[kind][side].p99Ms)), 3),
        cpuUsPerOp: fixed(median(counted.map((r) => r[kind][side].cpuUsPerOp)), 2),
        cpuPct: Math.round(median(counted.map((r) => r[kind][side].cpuPct)))
      })
      const ratio = fixed(median(counted.map((r) => r[kind].ratio)), 3)
      return [kind, { ratio, rounds: counted.length, cache: of("cache"), raw: of("raw") }]
    })
  ) as Record<Kind, KindSummary>
  const anomalies = rounds.reduce(
    (n, r) => n + kinds.reduce((m, k) => m + r[k].cache.anomalies + r[k].raw.anomalies, 0),
    0
  )

  const rows: Array<Array<string>> = [
    [
      "round",
      "phase",
      "cache ops/s",
      "raw ops/s",
      "ratio",
      "cache p50/p99 ms",
      "raw p50/p99 ms",
      "cache cpu µs/op",
      "raw cpu µs/op"
    ]
  ]
  for (const r of rounds) {
    for (const kind of kinds) {
      const x = r[kind]
      rows.push([
        `${r.round} (${r.first} 1st)`,
        kind,
        Math.round(x.cache.opsPerSec).toString(),
        Math.round(x.raw.opsPerSec).toString(),
        x.ratio.toFixed(3),
        latencies(x.cache),
        latencies(x.raw),
        cpuOf(x.cache),
        cpuOf(x.raw)
      ])
    }
  }
  for (const kind of kinds) {
    const s = summary[kind]
    rows.push([
      "median",
      kind,
      `${s.cache.opsPerSec}`,
      `${s.raw.opsPerSec}`,
      s.ratio.toFixed(3),
      latencies(s.cache),
      latencies(s.raw),
      cpuOf(s.cache),
      cpuOf(s.raw)
    ])
  }
  console.log(`\n${table(rows)}\n`)
  console.log("cpu µs/op: this Node process's CPU per operation (% = CPU ÷ wall time; ~100% = client-bound)")
  for (const kind of kinds) console.log(`${kind}: ${labels[kind].cache}  vs  ${labels[kind].raw}`)
  const spread = (kind: Kind) => {
    const ratios = clean(rounds, kind).map((r) => r[kind].ratio)
    const left = rounds.length - ratios.length
    return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}${left > 0 ? `; ${left} round(s) left out` : ""}`
  }
  console.log(
    `\nget_ratio ${summary.get.ratio} (${spread("get")}), set_ratio ${summary.set.ratio} (${spread("set")}), ` +
      `get_or_load_ratio ${summary.getOrLoad.ratio} (${spread("getOrLoad")}), ` +
      `l1_get_ratio ${summary.l1Get.ratio} (${spread("l1Get")}; L1 hit rate ` +
      `${(l1Stats.l1Hits / Math.max(1, l1Stats.l1Hits + l1Stats.l1Misses)).toFixed(3)})` +
      ` (median and range over ${rounds.length} rounds of embedded-cache ops/s ÷ raw ioredis ops/s)`
  )
  if (anomalies > 0) console.log(`WARNING: ${anomalies} misses, failed writes or loads during the measured phases`)

  const results = {
    get_ratio: summary.get.ratio,
    set_ratio: summary.set.ratio,
    get_or_load_ratio: summary.getOrLoad.ratio,
    l1_get_ratio: summary.l1Get.ratio,
    l1_hit_rate: fixed(l1Stats.l1Hits / Math.max(1, l1Stats.l1Hits + l1Stats.l1Misses), 4),
    ratio_range: Object.fromEntries(kinds.map((k) => [k, spread(k)])),
    stampede_ms: stampede.medianMs,
    stampede,
    ...(http === undefined ? {} : { http_cpu_ratio: http.ratio, http }),
    median: summary,
    rounds: rounds.map((r) => ({
      round: r.round,
      first: r.first,
      ...Object.fromEntries(
        kinds.map((k) => [
          k,
          {
            ratio: fixed(r[k].ratio, 4),
            cache: roundPhase(r[k].cache),
            raw: roundPhase(r[k].raw)
          }
        ])
      )
    })),
    anomalies,
    cacheStats: { hits: stats.hits, misses: stats.misses, loads: stats.loads, failedWrites: stats.failedWrites },
    workload: labels,
    notes: [
      "ratio = embedded-cache ops/s ÷ raw ioredis ops/s in the same round; the headline ratios are medians of per-round ratios",
      "both clients talk to the same embedded redis-server over its unix socket; values are stored as the same 1 KB JSON text",
      "embedded-cache get includes key validation and JSON/Schema decode; raw get includes JSON.parse of the reply",
      "raw set sends JSON.stringify(value), computed per call (the cache encodes per call too)",
      "l1Get: a second cache with an L1 over the same store; both sides draw the same Zipf(0.99) keys",
      "cpu µs/op is this Node process's CPU time per operation (client side; redis-server runs on the other core); " +
        "cpu % near 100 means the client is the bottleneck, so the ratio is the client-side cost ratio",
      "closed loop: latency ≈ in-flight ÷ throughput (Little's law); latency is sampled every Nth op per worker",
      "the machine is shared and noisy: compare ratios, not absolute ops/s"
    ],
    node: process.version,
    redis: redisVersion,
    platform: `${os.platform()} ${os.arch()}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? "unknown"})`,
    settings,
    timestamp: new Date().toISOString()
  }
  mergeResults(results)
  console.log("merged into bench/results/latest.json")
}

const roundPhase = (p: Phase) => ({
  ops: p.ops,
  ms: fixed(p.ms, 1),
  cpuUsPerOp: fixed(p.cpuUsPerOp, 2),
  cpuPct: Math.round(p.cpuPct),
  opsPerSec: Math.round(p.opsPerSec),
  p50Ms: fixed(p.p50Ms, 3),
  p99Ms: fixed(p.p99Ms, 3),
  anomalies: p.anomalies
})

await Effect.runPromise(Effect.scoped(main)).then(report, (error: unknown) => {
  console.error("bench failed:", error)
  process.exitCode = 1
})
