/**
 * Throughput and lag of invalidation sync: fauxqs (SNS/SQS protocol peer) in this process on 127.0.0.1, three
 * instances each on its own embedded redis-server (`CacheLayers.layerSynced` over `SnsSqsBus.layer`, production
 * defaults), one instance invalidating fresh keys at a target rate (open loop: a write is issued on schedule whether
 * or not earlier ones returned) and the two peers timing, per key, issue → the peer's store delete of that key; the
 * writer's SNS messages and publish calls are counted per step (messages per write, for the scale model).
 *
 * A step-up search runs rates for `BENCH_SYNC_STEP_MS` each, waits for the peers to drain, and stops at the first
 * rate whose p99 lag is 1 s or more; 1,000/s and 5,000/s are always measured. Run with `npm run bench:sync` (also
 * run by `npm run bench`); merges `sync_keys_per_s`, `sync_lag_p50_ms`, `sync_lag_p99_ms` and the steps into
 * `bench/results/latest.json`.
 */
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Cache } from "../effects/Cache.ts"
import * as CacheLayers from "../layers/CacheLayers.ts"
import * as SnsSqsBus from "../layers/bus/SnsSqsBus.ts"
import * as EmbeddedRedisServer from "../layers/store/EmbeddedRedisServer.ts"
import * as RedisStore from "../layers/store/RedisStore.ts"
import { CacheStore } from "../src/CacheStore.ts"
import { InvalidationBus } from "../src/InvalidationBus.ts"
import type { InvalidationEvent } from "../src/InvalidationEvent.ts"
import { defaults } from "../src/EmbeddedRedis.ts"
import * as Fauxqs from "../test/utils/Fauxqs.ts"
import * as TempDir from "../test/utils/TempDir.ts"

const envInt = (name: string, fallback: number): number => {
  const n = Number(process.env[name])
  return Number.isSafeInteger(n) && n > 0 ? n : fallback
}

const settings = {
  stepMs: envInt("BENCH_SYNC_STEP_MS", 4000),
  /** How long after a step's last write the peers get to apply everything; unapplied keys count at this bound. */
  drainMs: envInt("BENCH_SYNC_DRAIN_MS", 15_000),
  rates: [250, 500, 1000, 2000, 3000, 5000, 7500, 10_000, 15_000, 20_000],
  /** The driver issues what is due every tick. */
  tickMs: 5,
  lagBoundMs: 1000
} as const

/** When each key was issued, and when each peer deleted it. */
const issuedAt = new Map<string, number>()
const appliedAt = [new Map<string, number>(), new Map<string, number>()]

/** The embedded store of one instance; a peer's store records when each key is deleted. */
const storeLayer = (dir: string, peer: number | undefined) => {
  const base = RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedRedisServer.layer(defaults(dir))))
  if (peer === undefined) return base
  return Layer.effect(
    CacheStore,
    Effect.map(Effect.service(CacheStore), (store) =>
      CacheStore.of({
        ...store,
        delete: (keys) =>
          Effect.tap(store.delete(keys), () =>
            Effect.sync(() => {
              const now = performance.now()
              const seen = appliedAt[peer]!
              for (const key of keys) if (!seen.has(key)) seen.set(key, now)
            })
          )
      })
    )
  ).pipe(Layer.provide(base))
}

/** What the writer's bus was asked to publish: bus calls, messages (events) and targets. */
const sent = { calls: 0, messages: 0, targets: 0 }

const countTargets = (event: InvalidationEvent) => (event.version === 2 ? event.targets.length : 1)

const instance = (fauxqs: Fauxqs.Fauxqs, id: string, peer: number | undefined) =>
  Effect.gen(function* () {
    const dir = yield* TempDir.make
    const bus = SnsSqsBus.layer({
      endpoint: fauxqs.endpoint,
      region: fauxqs.region,
      credentials: fauxqs.credentials,
      instanceId: id,
      topicName: "bench-sync"
    })
    // The writer's bus counts what it publishes (for the scale model's messages per write).
    const counted = Layer.effect(
      InvalidationBus,
      Effect.map(Effect.service(InvalidationBus), (b) =>
        InvalidationBus.of({
          ...b,
          publish: (events) =>
            Effect.tap(b.publish(events), () =>
              Effect.sync(() => {
                sent.calls++
                sent.messages += events.length
                for (const event of events) sent.targets += countTargets(event)
              })
            )
        })
      )
    ).pipe(Layer.provide(bus))
    return yield* Layer.build(
      CacheLayers.layerSynced({ store: storeLayer(dir, peer), bus: peer === undefined ? counted : bus })
    )
  })

const percentile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

interface Step {
  readonly rate: number
  readonly issued: number
  readonly issuedPerSec: number
  readonly appliedPerSec: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  /** Keys a peer had not applied when the drain deadline passed (counted at the deadline in the percentiles). */
  readonly unapplied: number
  /** SNS messages the writer published in this step, and its publish calls (PublishBatch of up to 10). */
  readonly messages: number
  readonly publishCalls: number
  /** Key invalidations per message: the coalescing factor. */
  readonly targetsPerMessage: number
}

/** Issues `rate` key invalidations/s on `writer` for `stepMs`, then waits for the peers and measures their lag. */
const step = (writer: Context.Context<Cache>, rate: number, label: string) =>
  Effect.gen(function* () {
    const cache = Context.get(writer, Cache)
    const keys: Array<string> = []
    const before = { ...sent }
    const start = performance.now()
    let issued = 0
    while (performance.now() - start < settings.stepMs) {
      const due = Math.floor(((performance.now() - start) / 1000) * rate)
      for (; issued < due; issued++) {
        const key = `${label}:${issued}`
        keys.push(key)
        issuedAt.set(key, performance.now())
        yield* Effect.forkDetach(cache.invalidate({ invalidation_type: "key", key }))
      }
      yield* Effect.sleep(settings.tickMs)
    }
    const issueMs = performance.now() - start
    const deadline = performance.now() + settings.drainMs
    const done = () => appliedAt.every((seen) => keys.every((key) => seen.has(key)))
    while (!done() && performance.now() < deadline) yield* Effect.sleep(20)
    const lags: Array<number> = []
    let unapplied = 0
    let lastApply = start
    for (const seen of appliedAt) {
      for (const key of keys) {
        const at = seen.get(key)
        if (at === undefined) unapplied++
        else lastApply = Math.max(lastApply, at)
        lags.push((at ?? deadline) - issuedAt.get(key)!)
      }
    }
    lags.sort((a, b) => a - b)
    const result: Step = {
      rate,
      issued,
      issuedPerSec: Math.round(issued / (issueMs / 1000)),
      appliedPerSec: Math.round((keys.length - unapplied / 2) / ((lastApply - start) / 1000)),
      p50Ms: Math.round(percentile(lags, 0.5) * 10) / 10,
      p99Ms: Math.round(percentile(lags, 0.99) * 10) / 10,
      maxMs: Math.round(lags.at(-1) ?? 0),
      unapplied,
      messages: sent.messages - before.messages,
      publishCalls: sent.calls - before.calls,
      targetsPerMessage:
        Math.round(((sent.targets - before.targets) / Math.max(1, sent.messages - before.messages)) * 10) / 10
    }
    console.log(
      `${String(rate).padStart(6)}/s: issued ${result.issuedPerSec}/s, applied ${result.appliedPerSec}/s per peer, ` +
        `lag p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms` +
        `, ${result.messages} messages (${result.targetsPerMessage} keys each)` +
        (unapplied > 0 ? `, ${unapplied} unapplied after ${settings.drainMs} ms` : "")
    )
    return result
  })

const main = Effect.gen(function* () {
  const fauxqs = yield* Fauxqs.make()
  const writer = yield* instance(fauxqs, "bench-a", undefined)
  yield* instance(fauxqs, "bench-b", 0)
  yield* instance(fauxqs, "bench-c", 1)
  // Warm-up: the queues exist, connections are open, the first long polls are waiting.
  yield* step(writer, 100, "warmup")
  const steps: Array<Step> = []
  let sustained: Step | undefined
  for (const rate of settings.rates) {
    const s = yield* step(writer, rate, `r${rate}`)
    steps.push(s)
    if (s.p99Ms >= settings.lagBoundMs || s.unapplied > 0) break
    sustained = s
  }
  for (const rate of [1000, 5000]) {
    if (!steps.some((s) => s.rate === rate)) steps.push(yield* step(writer, rate, `x${rate}`))
  }
  return { sustained, steps }
})

const report = ({
  sustained,
  steps
}: {
  readonly sustained: Step | undefined
  readonly steps: ReadonlyArray<Step>
}) => {
  const at = (rate: number) => steps.find((s) => s.rate === rate)
  // The headline lag: at the sustained rate when there is one, otherwise at 5,000/s.
  const headline = sustained ?? at(5000)
  const file = path.join(import.meta.dirname, "results", "latest.json")
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const previous: Record<string, unknown> = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {}
  const merged = {
    ...previous,
    sync_keys_per_s: sustained?.appliedPerSec ?? 0,
    sync_lag_p50_ms: headline?.p50Ms,
    sync_lag_p99_ms: headline?.p99Ms,
    sync: {
      lag_at:
        sustained === undefined ? "5000/s (no rate kept p99 under 1 s)" : `the sustained rate ${sustained.rate}/s`,
      sustained_rate: sustained?.rate ?? 0,
      at_1000: at(1000),
      at_5000: at(5000),
      steps,
      notes: [
        "open loop: the writer issues key invalidations on schedule; lag = issue on the writer → store delete on a peer",
        "sustained = the highest target rate whose p99 lag over both peers stayed under 1 s with nothing unapplied",
        "fauxqs, the three instances and the driver share one Node process; each instance has its own redis-server",
        "the machine is shared and noisy: rerun before trusting a difference"
      ],
      settings,
      node: process.version,
      platform: `${os.platform()} ${os.arch()}, ${os.cpus().length} cpus`,
      timestamp: new Date().toISOString()
    }
  }
  fs.writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`)
  console.log(
    `sustained ${merged.sync_keys_per_s} key invalidations/s per peer; lag p50 ${merged.sync_lag_p50_ms} ms, ` +
      `p99 ${merged.sync_lag_p99_ms} ms (${merged.sync.lag_at}); wrote ${path.relative(process.cwd(), file)}`
  )
}

await Effect.runPromise(Effect.scoped(main)).then(report, (error: unknown) => {
  console.error("bench failed:", error)
  process.exitCode = 1
})
// Open handles (SDK sockets, fauxqs) must not keep the process alive once the scope closed.
process.exit()
