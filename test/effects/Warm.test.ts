/**
 * Warming on the memory cache and the memory data source: counts, isolation of failing keys, TTLs on the
 * TestClock, bounded concurrency, listing by pattern, and silence on the bus.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import { Cache } from "../../effects/Cache.ts"
import * as Warm from "../../effects/Warm.ts"
import * as CacheLayers from "../../layers/CacheLayers.ts"
import * as MemoryBus from "../../layers/bus/MemoryBus.ts"
import * as MemoryDataSource from "../../layers/source/MemoryDataSource.ts"
import * as DataSource from "../../src/DataSource.ts"
import * as World from "../utils/World.ts"

const numbered = (n: number, prefix = "k") => Array.from({ length: n }, (_, i) => `${prefix}:${i}`)

/** Runs `effect` on a fresh memory cache with `source` as the data source. */
const withSource =
  (source: DataSource.DataSourceShape) =>
  <A, E>(effect: Effect.Effect<A, E, Cache | DataSource.DataSource>) =>
    effect.pipe(
      Effect.provideService(DataSource.DataSource, source),
      Effect.provide(Layer.fresh(CacheLayers.layerMemory({ defaultTtl: "1 hour" })))
    )

const get = (key: string) => Cache.use((cache) => cache.get(key, Schema.Json))

describe("Warm.warm", () => {
  it.effect("loads every key in batches of batchSize, caches them, and reports the counts and progress", () => {
    const memory = MemoryDataSource.make(numbered(250).map((key, i) => [key, { n: i }] as const))
    return Effect.gen(function* () {
      const progress: Array<readonly [number, number]> = []
      const report = yield* Warm.warm(numbered(250), {
        batchSize: 100,
        onProgress: (done, total) => Effect.sync(() => void progress.push([done, total]))
      })
      assert.deepStrictEqual(
        { ...report, durationMs: 0 },
        { total: 250, warmed: 250, alreadyCached: 0, missing: 0, failed: 0, durationMs: 0, failures: [] }
      )
      assert.sameMembers(
        memory.batches().map((batch) => batch.length),
        [100, 100, 50]
      )
      assert.strictEqual(memory.loads(), 0)
      assert.deepStrictEqual(yield* get("k:249"), Option.some({ n: 249 }))
      assert.sameMembers(
        progress.map(([done]) => done),
        [100, 200, 250]
      )
      assert.isTrue(progress.every(([, total]) => total === 250))
    }).pipe(withSource(memory.source))
  })

  it.effect("counts keys the source does not have as missing and caches nothing for them", () => {
    const memory = MemoryDataSource.make({ "k:0": 0, "k:1": 1 })
    return Effect.gen(function* () {
      const report = yield* Warm.warm(["k:0", "k:1", "k:2", "k:3", "k:0"])
      assert.strictEqual(report.total, 4)
      assert.strictEqual(report.warmed, 2)
      assert.strictEqual(report.missing, 2)
      assert.strictEqual(report.failed, 0)
      assert.deepStrictEqual(yield* get("k:3"), Option.none())
    }).pipe(withSource(memory.source))
  })

  it.effect("continues past a failing key: its batch is retried key by key, so only that key fails", () => {
    const memory = MemoryDataSource.make(numbered(20).map((key) => [key, key] as const))
    memory.fail("k:7")
    return Effect.gen(function* () {
      const report = yield* Warm.warm(numbered(20), { batchSize: 10 })
      assert.strictEqual(report.warmed, 19)
      assert.strictEqual(report.failed, 1)
      assert.strictEqual(report.missing, 0)
      assert.deepStrictEqual(report.failures, [{ key: "k:7", message: "the source fails for k:7" }])
      // Only the batch holding the bad key fell back to single loads.
      assert.strictEqual(memory.loads(), 10)
      assert.deepStrictEqual(yield* get("k:6"), Option.some("k:6"))
      assert.deepStrictEqual(yield* get("k:7"), Option.none())
    }).pipe(withSource(memory.source))
  })

  it.effect("counts a source that dies on a key as a failure of that key, not of the run", () => {
    const source = DataSource.make({
      load: (key) => (key === "bad" ? Effect.die(new Error("source bug")) : Effect.succeed(Option.some(key))),
      loadMany: (keys) =>
        keys.includes("bad")
          ? Effect.die(new Error("source bug"))
          : Effect.succeed(new Map(keys.map((key) => [key, key])))
    })
    return Effect.gen(function* () {
      const report = yield* Warm.warm(["a", "bad", "b"])
      assert.strictEqual(report.warmed, 2)
      assert.deepStrictEqual(report.failures, [{ key: "bad", message: "source bug" }])
    }).pipe(withSource(source))
  })

  it.effect("counts an invalid key as failed without asking the source for it", () => {
    const memory = MemoryDataSource.make({ ok: 1 })
    return Effect.gen(function* () {
      const report = yield* Warm.warm(["ok", "", "a\nb"])
      assert.strictEqual(report.warmed, 1)
      assert.strictEqual(report.failed, 2)
      assert.deepStrictEqual(
        report.failures.map((failure) => failure.key),
        ["", "a\nb"]
      )
      assert.deepStrictEqual(memory.batches(), [["ok"]])
    }).pipe(withSource(memory.source))
  })

  it.effect("counts a value that does not decode with the schema as failed and does not cache it", () => {
    const memory = MemoryDataSource.make({ a: 1, b: "two" })
    return Effect.gen(function* () {
      const report = yield* Warm.warm(["a", "b"], { schema: Schema.Number })
      assert.strictEqual(report.warmed, 1)
      assert.deepStrictEqual(report.failures, [
        {
          key: "b",
          message: "the source's value does not decode with the schema"
        }
      ])
      assert.isFalse(yield* Cache.use((cache) => cache.exists("b")))
    }).pipe(withSource(memory.source))
  })

  it.effect("counts every failure but lists only the first hundred", () => {
    const memory = MemoryDataSource.make({})
    return Effect.gen(function* () {
      const report = yield* Warm.warm(Array.from({ length: 150 }, (_, i) => `bad\n${i}`))
      assert.strictEqual(report.failed, 150)
      assert.strictEqual(report.failures.length, Warm.maxFailuresReported)
    }).pipe(withSource(memory.source))
  })

  it.effect("applies the TTL of the run to warmed entries, so they expire on the clock", () => {
    const memory = MemoryDataSource.make({ a: 1, b: 2 })
    return Effect.gen(function* () {
      yield* Warm.warm(["a"], { ttl: "1 minute", tags: ["warm"] })
      yield* Warm.warm(["b"])
      assert.strictEqual(yield* Cache.use((cache) => cache.ttl("a")), 60_000)
      assert.strictEqual(yield* Cache.use((cache) => cache.ttl("b")), 3_600_000)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(yield* get("a"), Option.none())
      assert.deepStrictEqual(yield* get("b"), Option.some(2))
    }).pipe(withSource(memory.source))
  })

  it.effect("records the run's tags, so invalidating a tag drops the warmed entries", () => {
    const memory = MemoryDataSource.make({ a: 1, b: 2 })
    return Effect.gen(function* () {
      yield* Warm.warm(["a", "b"], { tags: ["catalog"] })
      const outcome = yield* Cache.use((cache) => cache.invalidate({ invalidation_type: "tag", tags: ["catalog"] }))
      assert.deepStrictEqual(outcome, { _tag: "Deleted", removed: 2 })
    }).pipe(withSource(memory.source))
  })

  it.effect("leaves a key that is already cached as it is, counted as warmed and alreadyCached", () => {
    const memory = MemoryDataSource.make({ a: "new", b: "new" })
    return Effect.gen(function* () {
      yield* Cache.use((cache) => cache.set("a", "old", { schema: Schema.String }))
      const report = yield* Warm.warm(["a", "b"])
      assert.strictEqual(report.warmed, 2)
      assert.strictEqual(report.alreadyCached, 1)
      assert.deepStrictEqual(memory.batches(), [["b"]])
      assert.deepStrictEqual(yield* get("a"), Option.some("old"))
    }).pipe(withSource(memory.source))
  })

  it.effect("keeps at most `concurrency` batches loading at once", () => {
    const memory = MemoryDataSource.make(numbered(40).map((key) => [key, 1] as const))
    let open = 0
    let maxOpen = 0
    const slow: DataSource.DataSourceShape = {
      ...memory.source,
      loadMany: (keys) =>
        Effect.suspend(() => {
          open++
          maxOpen = Math.max(maxOpen, open)
          return memory.source
            .loadMany(keys)
            .pipe(Effect.delay("1 second"), Effect.ensuring(Effect.sync(() => void open--)))
        })
    }
    return Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(Warm.warm(numbered(40), { batchSize: 2, concurrency: 3 }))
      yield* TestClock.adjust("1 minute")
      const report = yield* Fiber.join(fiber)
      assert.strictEqual(report.warmed, 40)
      assert.strictEqual(memory.batches().length, 20)
      assert.strictEqual(maxOpen, 3)
    }).pipe(withSource(slow))
  })

  it.effect("publishes nothing: a peer instance on the bus receives no event from a warm", () =>
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({ instances: ["a", "b"], mode: "manual" })
      const [a] = yield* World.instances(hub, ["a", "b"])
      const memory = MemoryDataSource.make(numbered(50).map((key) => [key, key] as const))
      yield* World.on(
        a!,
        Cache.use((cache) => cache.set("k:0", "old", { schema: Schema.String }))
      )
      assert.strictEqual(hub.held("b").length, 1, "a write does publish (the probe sees it)")
      const report = yield* World.on(
        a!,
        Warm.warm(numbered(50), { batchSize: 10 }).pipe(Effect.provideService(DataSource.DataSource, memory.source))
      )
      assert.strictEqual(report.warmed, 50)
      assert.strictEqual(hub.held("b").length, 1)
    })
  )
})

describe("Warm.warmByPattern", () => {
  it.effect("warms exactly the keys the source lists for the pattern", () => {
    const memory = MemoryDataSource.make([
      ...numbered(5, "user").map((key) => [key, key] as const),
      ...numbered(3, "order").map((key) => [key, key] as const)
    ])
    return Effect.gen(function* () {
      const report = yield* Warm.warmByPattern("user:*", { batchSize: 2 })
      assert.strictEqual(report.total, 5)
      assert.strictEqual(report.warmed, 5)
      assert.deepStrictEqual(yield* get("user:4"), Option.some("user:4"))
      assert.deepStrictEqual(yield* get("order:0"), Option.none())
      assert.deepStrictEqual(
        memory.batches().map((batch) => batch.length),
        [2, 2, 1]
      )
    }).pipe(withSource(memory.source))
  })

  it.effect("fails with KeyListingUnsupportedError on a source that cannot list its keys", () => {
    const source = DataSource.make({ load: () => Effect.succeed(Option.none()) })
    return Effect.gen(function* () {
      const error = yield* Effect.flip(Warm.warmByPattern("user:*"))
      assert.strictEqual(error._tag, "KeyListingUnsupportedError")
    }).pipe(withSource(source))
  })
})
