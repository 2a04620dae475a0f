/**
 * Monitoring of a cache instance: a `snapshot` with the seed's stats fields (keys, memory, hits, misses, hit rate,
 * evictions, operations per second, uptime) plus store health, per-operation latency percentiles, the cache's own
 * counters and the sync consumer's; the same numbers as Prometheus metrics; and four alerts (low hit rate, high
 * memory, high error rate, store down) evaluated by a background fiber that logs each transition exactly once.
 *
 * Operation counts and latencies come from `layerInstrumented`, a `Cache` that delegates to the real one and
 * records each call (two `Clock` reads, a few array writes; about 0.6 µs a call); a program that does not use it
 * pays nothing. All time is read from Effect's monotonic `Clock`, so `TestClock` drives the sliding window, the
 * uptime and the evaluator. The sync consumer is a declared collaborator: `layerSynced` and
 * `layerInstrumentedSynced` require a `SyncConsumer` and report its counters; `layer` and `layerInstrumented` have
 * no `sync` section, whatever else is provided.
 *
 * The rate alerts judge the recent past, not the whole life of the instance: operations are counted per second
 * over the window; hits, misses and errors (degraded reads + failed writes, the cache's own counters) are
 * differences against the newest evaluation at least a window old, so they cover between one window and one
 * window plus `evaluateEvery`. Every evaluation (the background one, `snapshot`, `prometheusText`) compares the
 * alerts with the previous ones and logs a change once: a warning when one fires, an info when it clears.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schedule, Semaphore } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { CacheStore, type StoreInfo } from "../src/CacheStore.ts"
import { Cache } from "./Cache.ts"
import { evaluate, RateWindow } from "./internal/Evaluation.ts"
import { instrument } from "./internal/Instrumented.ts"
import { Recorder } from "./internal/Recorder.ts"
import { register } from "./StatsMetrics.ts"
import {
  type AlertName,
  alertNames,
  type Alerts,
  type AlertThresholds,
  defaultThresholds,
  type Operation,
  type StatsSnapshot
} from "./StatsSnapshot.ts"
import { SyncConsumer } from "./SyncConsumer.ts"

// The snapshot's schemas and the metrics stay reachable as `Stats.StatsSnapshot`, `Stats.metrics`, ….
export { durationBoundaries } from "./internal/Recorder.ts"
export { metrics } from "./StatsMetrics.ts"
export {
  type AlertName,
  Alerts,
  type AlertThresholds,
  CacheCounters,
  defaultThresholds,
  LatencyPercentiles,
  Operation,
  StatsSnapshot,
  SyncSnapshot,
  WindowSnapshot
} from "./StatsSnapshot.ts"

/** How stats are kept. */
export interface StatsOptions {
  /** This instance's identity, reported as `instance_id`. */
  readonly instanceId: string
  /** The sliding window of `operations_per_second` and of the rate alerts. Default 60 s. */
  readonly window?: Duration.Input | undefined
  /** How often the background fiber refreshes the gauges and evaluates the alerts. Default 10 s. */
  readonly evaluateEvery?: Duration.Input | undefined
  /** Recent latencies kept per operation for the percentiles. Default 1024. */
  readonly latencySamples?: number | undefined
  /** How long PING and INFO may take before the store counts as down. Default 2 s. */
  readonly probeTimeout?: Duration.Input | undefined
  readonly thresholds?: Partial<AlertThresholds> | undefined
}

/** The stats service. */
export class Stats extends Context.Service<
  Stats,
  {
    /** Fresh stats: reads the cache's counters, pings the store and reads its INFO; evaluates the alerts. */
    readonly snapshot: Effect.Effect<StatsSnapshot>
    /** Refreshes every gauge, then renders the whole metric registry in the Prometheus text format. */
    readonly prometheusText: Effect.Effect<string>
    /** Records one operation that took `durationMs`, for callers that time work outside `layerInstrumented`. */
    readonly record: (operation: Operation, durationMs: number) => Effect.Effect<void>
    /** Evaluates the alerts now (the background fiber does it every `evaluateEvery`); logs transitions. */
    readonly evaluate: Effect.Effect<Alerts>
  }
>()("embedded-cache/Stats") {}

const emptyInfo: StoreInfo = { kind: "redis", keys: 0, usedMemory: 0, maxMemory: 0, evictedKeys: 0, tagIndexEntries: 0 }

/** Logs each alert whose state changed since the last evaluation, once: a warning when it fires, an info when not. */
const alertLog = (instanceId: string) => {
  const state: Record<AlertName, boolean> = {
    low_hit_rate: false,
    high_memory: false,
    high_error_rate: false,
    store_down: false
  }
  return (alerts: Alerts, details: Record<AlertName, Record<string, unknown>>) =>
    Effect.forEach(
      alertNames,
      (name) => {
        if (state[name] === alerts[name]) return Effect.void
        state[name] = alerts[name]
        const log = alerts[name]
          ? Effect.logWarning(`cache alert fired: ${name}`)
          : Effect.logInfo(`cache alert cleared: ${name}`)
        return log.pipe(Effect.annotateLogs({ alert: name, instance_id: instanceId, ...details[name] }))
      },
      { discard: true }
    )
}

/**
 * Builds the stats over the cache and store in context, reporting `consumer`'s counters when given, and the
 * recorder that `layerInstrumented` feeds.
 */
const makeParts = Effect.fnUntraced(function* (options: StatsOptions, consumer: SyncConsumer["Service"] | undefined) {
  const cache = yield* Cache
  const store = yield* CacheStore
  const clock = yield* Clock.Clock
  const windowSeconds = Math.max(1, Math.round(Duration.toSeconds(options.window ?? "60 seconds")))
  const probeTimeout = options.probeTimeout ?? "2 seconds"
  const thresholds: AlertThresholds = { ...defaultThresholds, ...options.thresholds }
  const recorder = new Recorder(windowSeconds, Math.max(1, options.latencySamples ?? 1024))
  const rates = new RateWindow(windowSeconds * 1000)
  const startedMs = Number(clock.monotonicTimeNanosUnsafe()) / 1e6
  const logTransitions = alertLog(options.instanceId)
  let lastInfo: StoreInfo | undefined
  let latest: StatsSnapshot | undefined
  const lock = yield* Semaphore.make(1)

  const probe = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Option.Option<A>> =>
    effect.pipe(Effect.timeoutOption(probeTimeout), Effect.orElseSucceed(Option.none<A>))

  /** Reads everything, evaluates the alerts (logging transitions) and keeps the result for the metric hooks. */
  const refresh: Effect.Effect<StatsSnapshot> = lock.withPermits(1)(
    Effect.gen(function* () {
      const counters = yield* cache.stats
      const up = Option.isSome(yield* probe(store.ping))
      const info = up ? yield* probe(store.info) : Option.none<StoreInfo>()
      if (Option.isSome(info)) lastInfo = info.value
      const sync = consumer === undefined ? undefined : yield* consumer.stats
      const nowNanos = clock.monotonicTimeNanosUnsafe()
      const nowMs = Number(nowNanos) / 1e6
      const errors = counters.degradedReads + counters.failedWrites
      const delta = rates.delta({ atMs: nowMs, hits: counters.hits, misses: counters.misses, errors })
      const windowOps = recorder.inWindow(nowNanos)
      const reading = { instanceId: options.instanceId, counters, up, info: lastInfo ?? emptyInfo, sync }
      const { snapshot, details } = evaluate(
        { ...reading, nowMs, startedMs, windowSeconds, windowOps, delta },
        recorder,
        thresholds
      )
      latest = snapshot
      yield* logTransitions(snapshot.alerts, details)
      return snapshot
    })
  )

  yield* refresh
  yield* register(() => latest!, recorder)

  const every = options.evaluateEvery ?? "10 seconds"
  yield* refresh.pipe(Effect.repeat(Schedule.spaced(every)), Effect.delay(every), Effect.forkScoped)

  const service = Stats.of({
    snapshot: refresh,
    prometheusText: Effect.andThen(refresh, PrometheusMetrics.format()),
    record: (operation, durationMs) =>
      Effect.sync(() => recorder.add(recorder.byOperation[operation], durationMs, clock.monotonicTimeNanosUnsafe())),
    evaluate: Effect.map(refresh, (snapshot) => snapshot.alerts)
  })
  return { service, recorder, clock }
})

/** The `SyncConsumer` in context, for the synced layers. */
const consumerInContext: Effect.Effect<SyncConsumer["Service"] | undefined, never, SyncConsumer> =
  Effect.service(SyncConsumer)

const statsLayer = <R>(options: StatsOptions, consumer: Effect.Effect<SyncConsumer["Service"] | undefined, never, R>) =>
  Layer.effect(
    Stats,
    Effect.flatMap(consumer, (c) => Effect.map(makeParts(options, c), (parts) => parts.service))
  )

const instrumentedLayer = <R>(
  options: StatsOptions,
  consumer: Effect.Effect<SyncConsumer["Service"] | undefined, never, R>
) =>
  Layer.effectContext(
    Effect.gen(function* () {
      const parts = yield* makeParts(options, yield* consumer)
      const inner = yield* Cache
      return Context.make(Stats, parts.service).pipe(Context.add(Cache, instrument(inner, parts.recorder, parts.clock)))
    })
  )

/**
 * The stats of the `Cache` and `CacheStore` in context, with the alert evaluator running in the layer's scope; the
 * snapshot has no `sync` section. Operation counts and latencies come only from `record`; use `layerInstrumented`
 * to have every cache call recorded.
 */
export const layer = (options: StatsOptions): Layer.Layer<Stats, never, Cache | CacheStore> =>
  statsLayer(options, Effect.succeed(undefined))

/** `layer` for a synced instance: the snapshot's `sync` section reports the `SyncConsumer` in context. */
export const layerSynced = (options: StatsOptions): Layer.Layer<Stats, never, Cache | CacheStore | SyncConsumer> =>
  statsLayer(options, consumerInContext)

/**
 * `Stats` plus an instrumented `Cache` that records every call's operation and duration, built over the `Cache`
 * in context; the snapshot has no `sync` section. Provide it on top of a cache composition, so that programs get
 * the instrumented cache: `Stats.layerInstrumented(options).pipe(Layer.provideMerge(CacheLayers.layerMemory()))`.
 */
export const layerInstrumented = (options: StatsOptions): Layer.Layer<Stats | Cache, never, Cache | CacheStore> =>
  instrumentedLayer(options, Effect.succeed(undefined))

/**
 * `layerInstrumented` for a synced instance (over `CacheLayers.layerSynced`, which provides the `SyncConsumer`):
 * the snapshot's `sync` section reports the consumer's counters.
 */
export const layerInstrumentedSynced = (
  options: StatsOptions
): Layer.Layer<Stats | Cache, never, Cache | CacheStore | SyncConsumer> => instrumentedLayer(options, consumerInContext)

/** A fresh snapshot from the stats in context. */
export const snapshot = Stats.use((stats) => stats.snapshot)
/** The Prometheus text of the registry, gauges refreshed first, from the stats in context. */
export const prometheusText = Stats.use((stats) => stats.prometheusText)
