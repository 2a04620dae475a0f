/**
 * The tag index on a real redis-server: its memory follows the live tagged entries (100,000 tagged keys with
 * short TTLs leave nothing behind once they expire), and tag invalidation counts exactly under eviction, when
 * the server may evict entries and index keys alike.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as RedisStore from "../../../layers/store/RedisStore.ts"
import { CacheStore } from "../../../src/CacheStore.ts"
import { EmbeddedRedis } from "../../../src/EmbeddedRedis.ts"
import * as EmbeddedServer from "../../utils/EmbeddedServer.ts"
import * as Poll from "../../utils/Poll.ts"
import * as Resp from "../../utils/Resp.ts"

const storeOn = (server: Parameters<typeof EmbeddedServer.layer>[0]) =>
  RedisStore.layerEmbedded().pipe(Layer.provideMerge(EmbeddedServer.layer(server)), Layer.fresh)

describe("tag index on Redis", () => {
  it.live(
    "returns to empty once 100,000 tagged keys with short TTLs have expired",
    () =>
      Effect.gen(function* () {
        const store = yield* CacheStore
        const baseline = yield* store.info
        const n = 100_000
        yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => store.set(`short:${i}`, '"v"', { ttlMs: 15_000, tags: [`t${i % 100}`, "all"] }),
          { concurrency: 512, discard: true }
        )
        const loaded = yield* store.info
        // Members that expired while writing are already pruned (each write prunes its index).
        assert.isAbove(loaded.tagIndexEntries, n)
        assert.isAtMost(loaded.tagIndexEntries, 2 * n)
        yield* Poll.until(
          Effect.map(store.info, (info) => info.tagIndexEntries === 0 && info.keys === 0),
          {
            timeoutMs: 60_000,
            what: "the tagged keys and their indexes expired",
            intervalMs: 200
          }
        )
        const after = yield* store.info
        console.log(
          `tag index: baseline used_memory ${baseline.usedMemory} B; with ${n} tagged keys ${loaded.usedMemory} B ` +
            `(${loaded.tagIndexEntries} index entries); after expiry ${after.usedMemory} B (${after.tagIndexEntries} entries)`
        )
        // What stays is Redis's own bookkeeping (hash tables are not shrunk at once), not index entries.
        assert.isAtMost(after.usedMemory - baseline.usedMemory, 0.02 * (loaded.usedMemory - baseline.usedMemory))
      }).pipe(Effect.provide(storeOn({ maxmemory: "512mb" }))),
    120_000
  )

  it.live(
    "counts tag invalidations exactly while the server evicts entries and index keys",
    () =>
      Effect.gen(function* () {
        const store = yield* CacheStore
        const tagsOf = (i: number) => [`g${i % 7}`, `h${i % 3}`]
        const n = 6000
        yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => store.set(`ev:${i}`, JSON.stringify("x".repeat(1000)), { tags: tagsOf(i) }),
          { concurrency: 64, discard: true }
        )
        const info = yield* store.info
        assert.isAbove(info.evictedKeys, 0)
        for (const tag of ["g0", "g3", "h1"]) {
          // What is readable now (an entry whose index was evicted reads as absent) and carries the tag.
          let expected = 0
          for (let i = 0; i < n; i++) {
            if (tagsOf(i).includes(tag) && (yield* store.get(`ev:${i}`)) !== undefined) expected++
          }
          const removed = yield* store.deleteTagged([tag])
          assert.strictEqual(removed, expected, `exact count for ${tag}`)
          for (let i = 0; i < n; i++) {
            if (tagsOf(i).includes(tag)) assert.isUndefined(yield* store.get(`ev:${i}`))
          }
        }
        console.log(`eviction: ${info.evictedKeys} keys evicted under a 2 MB limit; tag counts exact`)
      }).pipe(Effect.provide(storeOn({ maxmemory: "2mb", evictionPolicy: "allkeys-lru" }))),
    60_000
  )

  it.live("makes an entry whose tag index was evicted unreadable, so no tag invalidation can miss it", () =>
    Effect.gen(function* () {
      const store = yield* CacheStore
      const server = yield* EmbeddedRedis
      yield* store.set("doc:1", '"v"', { tags: ["docs", "team-a"] })
      yield* store.write("doc:2", { type: "hash", value: { a: "1" } }, { tags: ["docs"] })
      yield* store.set("doc:3", '"v"', { tags: ["team-a"] })
      // What an eviction of the index key would do.
      yield* Resp.command(server.socketPath, "DEL", "\u0000tag:docs")
      assert.isUndefined(yield* store.get("doc:1"))
      assert.isUndefined(yield* store.read("doc:2"))
      assert.isFalse(yield* store.exists("doc:1"))
      assert.strictEqual(yield* store.get("doc:3"), '"v"')
      assert.strictEqual(yield* store.deleteTagged(["team-a"]), 1)
    }).pipe(Effect.provide(storeOn({})))
  )
})
