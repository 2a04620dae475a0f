/**
 * The scheduled warm-up on the memory cache, driven by the TestClock: a run at each cron tick with its counts in
 * `lastRun` and the metrics, no overlap when a run outlasts the interval, silence after the scope closes, and a
 * clear error for an invalid cron expression.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Metric, Option, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as WarmSchedule from "../../effects/WarmSchedule.ts"
import * as CacheLayers from "../../layers/CacheLayers.ts"
import * as DataSource from "../../src/DataSource.ts"

/** A source holding `k:0`..`k:9`, counting its `loadMany` calls; `gate`, when given, holds every call. */
const source = (gate?: Deferred.Deferred<void>, started?: Deferred.Deferred<void>) => {
  let calls = 0
  const shape = DataSource.make({
    load: (key) => Effect.succeed(/^k:\d$/.test(key) ? Option.some(key) : Option.none()),
    loadMany: (keys) =>
      Effect.gen(function* () {
        calls++
        if (started !== undefined) yield* Deferred.succeed(started, undefined)
        if (gate !== undefined) yield* Deferred.await(gate)
        return new Map(keys.filter((key) => /^k:\d$/.test(key)).map((key) => [key, key] as const))
      })
  })
  return { shape, calls: () => calls }
}

/** Builds `layer` in a fresh scope on a fresh memory cache with `shape` as the source; closes it at the end. */
const build = (shape: DataSource.DataSourceShape, layer: Layer.Layer<WarmSchedule.WarmSchedule, unknown, any>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      layer.pipe(
        Layer.provide(Layer.succeed(DataSource.DataSource, shape)),
        Layer.provide(Layer.fresh(CacheLayers.layerMemory({ defaultTtl: "1 hour" })))
      ),
      scope
    )
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    return {
      service: context.mapUnsafe.get(WarmSchedule.WarmSchedule.key) as WarmSchedule.WarmSchedule["Service"],
      scope
    }
  })

/** Lets forked runs progress until `done` holds (bounded, no wall clock). */
const settle = (done: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if (yield* done) return
      yield* Effect.yieldNow
    }
    assert.fail("the scheduled run did not settle")
  })

const freshMetrics = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, Metric.MetricRegistry, new Map())

describe("WarmSchedule", () => {
  it.effect(
    "runs at each cron tick, re-reads its keys each time, and reports the counts in lastRun and the metrics",
    () =>
      Effect.gen(function* () {
        const { shape } = source()
        let keys: ReadonlyArray<string> = ["k:1", "k:2", "nope"]
        const { service } = yield* build(shape, WarmSchedule.layerCron("* * * * *", { keys: Effect.sync(() => keys) }))
        yield* TestClock.adjust("59 seconds")
        yield* settle(Effect.succeed(true))
        assert.strictEqual(yield* service.runs, 0, "no run before the first tick")
        yield* TestClock.adjust("1 second")
        yield* settle(Effect.map(service.runs, (n) => n === 1))
        const first = Option.getOrThrow(yield* service.lastRun)
        assert.include(first.report!, { total: 3, warmed: 2, missing: 1, failed: 0 })
        assert.strictEqual(first.startedAtMs, 60_000)

        keys = ["k:1", "k:3", "k:4", ""]
        yield* TestClock.adjust("1 minute")
        yield* settle(Effect.map(service.runs, (n) => n === 2))
        const second = Option.getOrThrow(yield* service.lastRun)
        // Scheduled runs refresh: k:1, cached by the first run, is reloaded, not counted as already cached.
        assert.include(second.report!, { total: 4, warmed: 3, alreadyCached: 0, missing: 0, failed: 1 })

        assert.strictEqual((yield* Metric.value(WarmSchedule.runsTotal)).count, 2)
        assert.strictEqual((yield* Metric.value(WarmSchedule.warmedTotal)).count, 5)
        assert.strictEqual((yield* Metric.value(WarmSchedule.missingTotal)).count, 1)
        assert.strictEqual((yield* Metric.value(WarmSchedule.failedTotal)).count, 1)
        assert.strictEqual((yield* Metric.value(WarmSchedule.skippedTotal)).count, 0)
        assert.strictEqual((yield* Metric.value(WarmSchedule.lastRunTimestamp)).value, 120)
        assert.strictEqual((yield* Metric.value(WarmSchedule.lastDuration)).value, 0)
      }).pipe(freshMetrics)
  )

  it.effect("in missing mode a scheduled run leaves cached keys as they are", () =>
    Effect.gen(function* () {
      const counted = source()
      const { service } = yield* build(
        counted.shape,
        WarmSchedule.layerCron("* * * * *", { keys: ["k:1", "k:2"], mode: "missing" })
      )
      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.map(service.runs, (n) => n === 1))
      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.map(service.runs, (n) => n === 2))
      assert.include(Option.getOrThrow(yield* service.lastRun).report!, { warmed: 2, alreadyCached: 2 })
      assert.strictEqual(counted.calls(), 1, "the second run asked the source nothing")
    }).pipe(freshMetrics)
  )

  it.effect("skips and counts the ticks that come while a slower run is still going, so runs never overlap", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      const slow = source(gate, started)
      const { service } = yield* build(slow.shape, WarmSchedule.layerCron("* * * * *", { keys: ["k:1", "k:2"] }))
      yield* TestClock.adjust("1 minute")
      yield* Deferred.await(started)
      assert.isTrue(yield* service.running)
      yield* TestClock.adjust("1 minute")
      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.map(service.skipped, (n) => n === 2))
      assert.strictEqual(slow.calls(), 1, "the held run is the only load")
      assert.strictEqual(yield* service.runs, 0)

      yield* Deferred.succeed(gate, undefined)
      yield* settle(Effect.map(service.runs, (n) => n === 1))
      assert.include(Option.getOrThrow(yield* service.lastRun).report!, { warmed: 2 })
      assert.strictEqual(Option.getOrThrow(yield* service.lastRun).durationMs, 120_000)

      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.map(service.runs, (n) => n === 2))
      assert.strictEqual(yield* service.skipped, 2)
      assert.strictEqual((yield* Metric.value(WarmSchedule.skippedTotal)).count, 2)
    }).pipe(freshMetrics)
  )

  it.effect("stops running when its scope closes", () =>
    Effect.gen(function* () {
      const counted = source()
      const { service, scope } = yield* build(
        counted.shape,
        WarmSchedule.layer({
          keys: Effect.sync(() => [`k:${counted.calls()}`]),
          schedule: Schedule.spaced("10 seconds")
        })
      )
      yield* TestClock.adjust("10 seconds")
      yield* settle(Effect.map(service.runs, (n) => n === 1))
      yield* TestClock.adjust("10 seconds")
      yield* settle(Effect.map(service.runs, (n) => n === 2))
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.succeed(true))
      assert.strictEqual(counted.calls(), 2)
      assert.strictEqual(yield* service.runs, 2)
    }).pipe(freshMetrics)
  )

  it.effect("an invalid cron expression fails the layer with an error naming CACHE_WARM_SCHEDULE", () =>
    Effect.gen(function* () {
      const error = yield* build(source().shape, WarmSchedule.layerCron("61 * * * *", { keys: [] })).pipe(Effect.flip)
      assert.strictEqual((error as { _tag: string })._tag, "InvalidConfigError")
      assert.strictEqual((error as { variable: string }).variable, "CACHE_WARM_SCHEDULE")
      assert.include((error as { message: string }).message, "61 * * * *")
    })
  )

  it.effect("records a run whose keys cannot be read, with the reason, and keeps the schedule going", () =>
    Effect.gen(function* () {
      const { shape } = source()
      let fail = true
      const { service } = yield* build(
        shape,
        WarmSchedule.layerCron("* * * * *", {
          keys: Effect.suspend(() => (fail ? Effect.fail(new Error("no such file")) : Effect.succeed(["k:1"])))
        })
      )
      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.map(service.runs, (n) => n === 1))
      assert.strictEqual(Option.getOrThrow(yield* service.lastRun).error, "no such file")
      fail = false
      yield* TestClock.adjust("1 minute")
      yield* settle(Effect.map(service.runs, (n) => n === 2))
      assert.include(Option.getOrThrow(yield* service.lastRun).report!, { warmed: 1 })
    }).pipe(freshMetrics)
  )
})
