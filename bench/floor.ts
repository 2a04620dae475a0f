/**
 * The floor under `get_ratio` and `set_ratio`: in one process and alternating phases, raw ioredis (`await redis.get`
 * + `JSON.parse`; `redis.set` of `JSON.stringify`), the least an Effect program can do (one `Effect.callback` around
 * the same ioredis call, decoding inside it), and `cache.get` / `cache.set` — so the share of the gap that is the
 * Effect runtime itself is measured, not guessed. Same workload as `get-set.ts` (256 in flight, 1 KB JSON strings,
 * a unix socket). `BENCH_ROUNDS` (5) and `BENCH_PHASE_MS` (1500); `BENCH_ONLY=cacheGet,rawGet` picks variants;
 * `BENCH_PROFILE=file.cpuprofile` profiles the measured rounds only (not the fill). Prints medians, writes nothing.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { Redis } from "ioredis"
import * as fs from "node:fs"
import * as inspector from "node:inspector/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../effects/Cache.ts"
import * as RedisCache from "../layers/RedisCache.ts"
import { CacheStore } from "../src/CacheStore.ts"
import { defaults, EmbeddedRedis } from "../src/EmbeddedRedis.ts"

const envInt = (name: string, fallback: number): number => {
  const n = Number(process.env[name])
  return Number.isSafeInteger(n) && n > 0 ? n : fallback
}
const rounds = envInt("BENCH_ROUNDS", 5)
const phaseMs = envInt("BENCH_PHASE_MS", 1500)
const only = process.env["BENCH_ONLY"]?.split(",")
const inFlight = 256
const keys = Array.from({ length: 100_000 }, (_, i) => `bench:${i}`)
const value = Array.from({ length: 1022 }, (_, i) => "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7919) % 36]).join("")
const json = JSON.stringify(value)
const firstKey = (w: number) => Math.floor((w * keys.length) / inFlight)

interface Result {
  readonly ops: number
  readonly cpuUsPerOp: number
}

const measure = async (run: (deadline: number, count: (n: number) => void) => Promise<void>): Promise<Result> => {
  let ops = 0
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run(start + phaseMs, (n) => (ops += n))
  const used = process.cpuUsage(cpu)
  return { ops: (ops / (performance.now() - start)) * 1000, cpuUsPerOp: (used.user + used.system) / ops }
}

const asyncWorkers = (op: (key: string) => Promise<void>) => (deadline: number, count: (n: number) => void) =>
  Promise.all(
    Array.from({ length: inFlight }, async (_, w) => {
      let i = firstKey(w)
      let n = 0
      while (performance.now() < deadline) {
        await op(keys[i]!)
        n++
        i = i + 1 === keys.length ? 0 : i + 1
      }
      count(n)
    })
  ).then(() => undefined)

const fiberWorkers =
  (op: (key: string) => Effect.Effect<unknown, unknown>) => (deadline: number, count: (n: number) => void) =>
    Effect.runPromise(
      Effect.forEach(
        Array.from({ length: inFlight }, (_, w) => w),
        (w) =>
          Effect.gen(function* () {
            let i = firstKey(w)
            let n = 0
            while (performance.now() < deadline) {
              yield* op(keys[i]!)
              n++
              i = i + 1 === keys.length ? 0 : i + 1
            }
            count(n)
          }),
        { concurrency: inFlight, discard: true }
      ).pipe(Effect.orDie)
    )

/** The raw baseline of a variant. */
const base = (name: string) => (name.endsWith("Get") ? "rawGet" : "rawSet")

const median = (xs: ReadonlyArray<number>) => {
  // oxlint-disable-next-line unicorn/no-array-sort -- sorts a fresh copy
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const main = Effect.gen(function* () {
  const dataDir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ec-floor-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const context = yield* Layer.build(
    RedisCache.layerEmbedded({
      server: { ...defaults(dataDir), maxmemory: "1gb", evictionPolicy: "noeviction", persistence: "none" }
    })
  )
  const cache = Context.get(context, Cache.Cache)
  const store = Context.get(context, CacheStore)
  const socket = Context.get(context, EmbeddedRedis).socketPath
  const redis = yield* Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis({ path: socket, enableAutoPipelining: true })
      await client.ping()
      return client
    }),
    (client) => Effect.promise(() => client.quit())
  )
  yield* Effect.promise(async () => {
    const pipeline = redis.pipeline()
    for (const key of keys) pipeline.set(key, json)
    await pipeline.exec()
  })
  let anomalies = 0
  const options = { schema: Schema.String }
  const variants: Record<string, (deadline: number, count: (n: number) => void) => Promise<void>> = {
    rawGet: asyncWorkers(async (key) => {
      const text = await redis.get(key)
      if (text === null || typeof JSON.parse(text) !== "string") anomalies++
    }),
    bareGet: fiberWorkers((key) =>
      Effect.callback<unknown>((resume) => {
        redis.get(key).then((text) => resume(Effect.succeed(text === null ? undefined : JSON.parse(text))))
      })
    ),
    storeGet: fiberWorkers((key) =>
      Effect.map(store.get(key), (text) => (text === undefined ? undefined : JSON.parse(text)))
    ),
    cacheGet: fiberWorkers((key) =>
      Effect.map(cache.get(key, Schema.String), (found) => {
        if (Option.isNone(found)) anomalies++
      })
    ),
    rawSet: asyncWorkers(async (key) => {
      if ((await redis.set(key, JSON.stringify(value))) !== "OK") anomalies++
    }),
    bareSet: fiberWorkers((key) =>
      Effect.callback<unknown>((resume) => {
        redis.set(key, JSON.stringify(value)).then((ok) => resume(Effect.succeed(ok)))
      })
    ),
    cacheSet: fiberWorkers((key) => cache.set(key, value, options))
  }
  const names = Object.keys(variants).filter((n) => only === undefined || only.includes(n))
  for (const name of names) yield* Effect.promise(() => measure(variants[name]!)) // warm-up
  const profile = process.env["BENCH_PROFILE"]
  const session = new inspector.Session()
  if (profile !== undefined) {
    session.connect()
    yield* Effect.promise(() => session.post("Profiler.enable"))
    yield* Effect.promise(() => session.post("Profiler.setSamplingInterval", { interval: 200 }))
    yield* Effect.promise(() => session.post("Profiler.start"))
  }
  const results: Record<string, Array<Result>> = {}
  for (let round = 0; round < rounds; round++) {
    // oxlint-disable-next-line unicorn/no-array-reverse -- reverses a fresh copy
    const order = round % 2 === 0 ? names : [...names].reverse()
    for (const name of order) (results[name] ??= []).push(yield* Effect.promise(() => measure(variants[name]!)))
  }
  if (profile !== undefined) {
    const { profile: taken } = yield* Effect.promise(() => session.post("Profiler.stop"))
    fs.writeFileSync(profile, JSON.stringify(taken))
    session.disconnect()
  }

  for (const name of names) {
    const rs = results[name]!
    const raw = results[base(name)]
    const ratios = raw === undefined ? [] : rs.map((r, i) => r.ops / raw[i]!.ops)
    const extra = raw === undefined ? [] : rs.map((r, i) => r.cpuUsPerOp - raw[i]!.cpuUsPerOp)
    console.log(
      `${name.padEnd(9)} ${Math.round(median(rs.map((r) => r.ops)))
        .toString()
        .padStart(7)} ops/s  ${median(rs.map((r) => r.cpuUsPerOp)).toFixed(2)} µs/op` +
        (ratios.length > 0
          ? `  ratio ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})` +
            `  cpu over raw ${median(extra).toFixed(2)} µs/op`
          : "")
    )
  }
  for (const name of names)
    console.log(`${name} total ops ${Math.round(results[name]!.reduce((n, r) => n + (r.ops * phaseMs) / 1000, 0))}`)
  if (anomalies > 0) console.log(`WARNING: ${anomalies} anomalies`)
})

await Effect.runPromise(Effect.scoped(main))
