/**
 * Sync under a burst, over a real SNS/SQS protocol peer (fauxqs on 127.0.0.1) with three instances, each on its own
 * embedded redis-server and the production defaults of publisher, bus and consumer: one instance writes 2,000 keys
 * per second for 10 s, and each of the two peers must drop every written key within the stated bound of its write
 * (README, "The staleness bound"), checked while the burst runs and after it — waiting for the observable state with
 * a deadline, never sleeping a fixed time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { Cache } from "../../../effects/Cache.ts"
import * as CacheLayers from "../../../layers/CacheLayers.ts"
import * as SnsSqsBus from "../../../layers/bus/SnsSqsBus.ts"
import * as EmbeddedRedisServer from "../../../layers/store/EmbeddedRedisServer.ts"
import * as RedisStore from "../../../layers/store/RedisStore.ts"
import { CacheStore } from "../../../src/CacheStore.ts"
import { defaults } from "../../../src/EmbeddedRedis.ts"
import * as Fauxqs from "../../utils/Fauxqs.ts"
import * as TempDir from "../../utils/TempDir.ts"

/** The bound a peer promises for applying an invalidation at this rate (README, "The staleness bound"). */
const boundMs = 5000
const ratePerSecond = 2000
const burstMs = 10_000

const instance = (fauxqs: Fauxqs.Fauxqs, instanceId: string) =>
  Effect.gen(function* () {
    const dir = yield* TempDir.make
    return yield* Layer.build(
      CacheLayers.layerSynced({
        store: RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedRedisServer.layer(defaults(dir)))),
        bus: SnsSqsBus.layer({
          endpoint: fauxqs.endpoint,
          region: fauxqs.region,
          credentials: fauxqs.credentials,
          instanceId,
          topicName: "sync-burst"
        })
      })
    )
  })

describe("sync over SNS/SQS under a burst", () => {
  it.live(
    "a 10 s burst of 2,000 writes/s on one instance reaches both peers, each write within the bound",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const [writer, ...peers] = yield* Effect.forEach(["burst-a", "burst-b", "burst-c"], (id) =>
          instance(fauxqs, id)
        )
        const cache = Context.get(writer!, Cache)
        const stores = peers.map((peer) => Context.get(peer, CacheStore))
        const keys = Array.from({ length: (ratePerSecond * burstMs) / 1000 }, (_, i) => `burst:${i}`)
        // The peers hold every key (written to their stores directly: nothing is published).
        for (const store of stores) {
          yield* Effect.forEach(keys, (key) => store.set(key, '"old"'), {
            concurrency: 64,
            discard: true
          })
        }
        const writtenAt: Array<number> = []
        /** Per peer, how many keys (in write order) were already checked gone. */
        const checked = peers.map(() => 0)
        const late: Array<string> = []
        // Checks, on each peer, the keys written at least `boundMs` ago that were not checked yet: they must be gone.
        const checkDue = Effect.forEach(
          stores,
          (store, p) =>
            Effect.gen(function* () {
              const due = writtenAt.filter((at) => performance.now() - at >= boundMs).length
              for (; checked[p]! < due; checked[p]!++) {
                const key = keys[checked[p]!]!
                if (yield* store.exists(key)) late.push(`${key} on peer ${p + 1}`)
              }
            }),
          { discard: true }
        )
        const start = performance.now()
        while (writtenAt.length < keys.length) {
          const due = Math.min(keys.length, Math.floor(((performance.now() - start) / 1000) * ratePerSecond))
          while (writtenAt.length < due) {
            const key = keys[writtenAt.length]!
            writtenAt.push(performance.now())
            yield* Effect.forkChild(cache.set(key, "new", { schema: Schema.String }))
          }
          yield* checkDue
          yield* Effect.sleep(5)
        }
        const issuedPerSecond = (keys.length / (performance.now() - start)) * 1000
        // After the burst: every key is due within the bound of its write; wait for that, then check the rest.
        while (checked.some((n) => n < keys.length)) {
          yield* checkDue
          yield* Effect.sleep(20)
        }
        assert.isAbove(issuedPerSecond, ratePerSecond * 0.9, "the writer kept the rate")
        assert.deepStrictEqual(late.slice(0, 5), [], `${late.length} invalidations outlived the ${boundMs} ms bound`)
      }).pipe(Effect.scoped),
    90_000
  )
})
