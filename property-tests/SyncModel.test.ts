/**
 * Model-based tests of invalidation sync: generated scripts of source updates with writes and invalidations
 * (key, pattern, tag) — alone or several at once, coalesced into one multi-target event — reads, and deliveries that
 * are delayed, reordered, duplicated, dropped or handed out several per receive batch, plus evictions and expiry, on
 * 2–4 instances. Invariants: an instance never answers a value older than an invalidation it applied, nor one older
 * than an invalidation whose delivery it acknowledged (checked at the acknowledgement); after all deliveries drain
 * (and gaps are detected), every instance answers the source's value or misses. A consumer that acknowledges a batch
 * before applying it (a test-only switch) must fail the property. A failure prints the script, its seed and its replay path.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as fc from "fast-check"
import * as MemoryStore from "../layers/store/MemoryStore.ts"
import * as RedisStore from "../layers/store/RedisStore.ts"
import { CacheStore } from "../src/CacheStore.ts"
import * as EmbeddedServer from "../test/utils/EmbeddedServer.ts"
import { settings } from "./Settings.ts"
import * as Commands from "./sync/Commands.ts"
import * as Sync from "./sync/World.ts"

const runs = (
  store: (index: number) => Layer.Layer<CacheStore, unknown>,
  numRuns: number,
  maxCommands: number,
  options: Sync.WorldOptions = {}
) =>
  fc.assert(
    fc.asyncProperty(
      fc
        .integer({ min: 2, max: 4 })
        .chain((n) => fc.tuple(fc.constant(n), Commands.commands(n, maxCommands, options.cache !== undefined))),
      async ([count, script]) => {
        const real = await Sync.make(count, store, options)
        try {
          await fc.asyncModelRun(() => ({ model: { held: Array.from({ length: count }, () => 0) }, real }), script)
          await real.run(Sync.drainAndCheck(real))
          if (real.violations.length > 0) throw new Error(real.violations.join("\n"))
        } finally {
          await real.close()
        }
      }
    ),
    settings(numRuns)
  )

describe("invalidation sync model", () => {
  it("holds on the memory store for generated scripts", { timeout: 300_000 }, () =>
    runs(() => MemoryStore.layer, Number(process.env["SYNC_RUNS"] ?? 1000), 40)
  )

  it(
    "holds with fail-safe, eager refresh and negative caching on every instance, through source outages",
    { timeout: 300_000 },
    () =>
      runs(() => MemoryStore.layer, Number(process.env["SYNC_RUNS"] ?? 500), 40, {
        cache: {
          failSafe: { maxStale: "2 minutes", throttle: "5 seconds" },
          eagerRefresh: 0.5,
          negativeTtl: "5 seconds"
        }
      })
  )

  it("catches a batch path that acknowledges a batch before applying it", { timeout: 300_000 }, async () => {
    let failure: unknown
    try {
      await runs(() => MemoryStore.layer, 500, 40, { unsafeAckBeforeApply: true })
    } catch (error) {
      failure = error
    }
    // The property must fail, on an acknowledged invalidation that was not visible yet.
    assert.instanceOf(failure, Error, "the property held with the broken batch path")
    assert.include(String((failure as Error).cause), "get at acknowledgement")
  })

  // Four real redis-servers, one per instance, flushed before each run.
  const servers = Array.from({ length: 4 }, () =>
    ManagedRuntime.make(RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedServer.layer())))
  )
  afterAll(() => Promise.all(servers.map((server) => server.dispose())))

  it("holds on the real Redis store for a smaller set of scripts", { timeout: 300_000 }, async () => {
    const stores = await Promise.all(servers.map((server) => server.runPromise(CacheStore.use(Effect.succeed))))
    await runs((i) => Layer.effect(CacheStore, Effect.as(stores[i]!.flush, stores[i]!)), 60, 30)
  })
})
