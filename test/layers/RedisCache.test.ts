import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { Duration, Effect, Layer, Option, Schema } from "effect"
import * as Cache from "../../effects/Cache.ts"
import * as RedisCache from "../../layers/RedisCache.ts"
import * as PendingFile from "../../layers/store/PendingFile.ts"
import { CacheStore } from "../../src/CacheStore.ts"
import { defaults, EmbeddedRedis, type EmbeddedRedisConfig } from "../../src/EmbeddedRedis.ts"
import * as Poll from "../utils/Poll.ts"
import * as TempDir from "../utils/TempDir.ts"

/** The embedded composition on a fresh temp dir. */
const embedded = (
  server: Partial<EmbeddedRedisConfig> = {},
  cache: Cache.CacheOptions = {},
  store: RedisCache.EmbeddedOptions["store"] = {}
) =>
  Layer.unwrap(
    Effect.map(TempDir.make, (dir) =>
      RedisCache.layerEmbedded({ server: { ...defaults(dir), ...server }, cache, store })
    )
  ).pipe(Layer.fresh)

/** SIGKILLs the running server and waits until the supervisor has a new one and the store reaches it. */
const killAndAwaitRestart = Effect.gen(function* () {
  const server = yield* EmbeddedRedis
  const store = yield* CacheStore
  const pid = yield* server.pid
  assert.isDefined(pid)
  process.kill(pid!, "SIGKILL")
  yield* Poll.until(
    Effect.map(server.pid, (now) => now !== undefined && now !== pid),
    {
      timeoutMs: 5000,
      what: "the supervisor restarted the server"
    }
  )
  yield* server.awaitReady
  yield* Poll.until(Effect.isSuccess(store.ping), { timeoutMs: 5000, what: "the store reconnected" })
})

const value1k = "x".repeat(1024)

describe("layerEmbedded", () => {
  it.live("answers getOrLoad from the loader, with no error, while the server is killed and restarted", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const server = yield* EmbeddedRedis
      const store = yield* CacheStore
      yield* cache.getOrLoad("k", Effect.succeed("cached"), { schema: Schema.String })
      const pid = (yield* server.pid)!
      process.kill(pid, "SIGKILL")
      let served = 0
      let restarted = false
      while (!restarted) {
        assert.strictEqual(
          yield* cache.getOrLoad(`k:${served}`, Effect.succeed(`loaded ${served}`), { schema: Schema.String }),
          `loaded ${served}`
        )
        served++
        const now = yield* server.pid
        restarted = now !== undefined && now !== pid && (yield* Effect.isSuccess(store.ping))
        yield* Effect.yieldNow
      }
      // Once the breaker has probed the new server, fills reach the store again.
      yield* Poll.until(
        Effect.andThen(
          cache.getOrLoad("after", Effect.succeed("filled"), { schema: Schema.String }),
          Effect.map(store.get("after"), (v) => v === '"filled"')
        ),
        { timeoutMs: 5000, what: "fills reach the restarted server" }
      )
      assert.isTrue(served > 0)
      assert.strictEqual(yield* server.restarts, 1)
    }).pipe(Effect.provide(embedded({}, { resetAfter: "50 millis", failureThreshold: 1 })))
  )

  it.live("times out on a hung server (SIGSTOP) and answers getOrLoad from the loader, then recovers", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const server = yield* EmbeddedRedis
      const store = yield* CacheStore
      yield* cache.set("k", "cached", { schema: Schema.String })
      const pid = (yield* server.pid)!
      process.kill(pid, "SIGSTOP")
      const answered = yield* Effect.ensuring(
        cache.getOrLoad("k", Effect.succeed("from the loader"), { schema: Schema.String }).pipe(Effect.timed),
        Effect.sync(() => process.kill(pid, "SIGCONT"))
      )
      assert.strictEqual(answered[1], "from the loader")
      // The 200 ms command timeout, detected by a watchdog ticking every 50 ms.
      assert.isBelow(Duration.toMillis(answered[0]), 2000)
      assert.isAbove((yield* cache.stats).degradedReads, 0)
      yield* Poll.until(Effect.isSuccess(store.ping), { timeoutMs: 10_000, what: "the store reconnected" })
      yield* Poll.until(
        Effect.map(cache.get("k", Schema.String), (v) => Option.getOrUndefined(v) === "cached"),
        { timeoutMs: 10_000, what: "reads are served from the store again" }
      )
    }).pipe(Effect.provide(embedded({}, { resetAfter: "50 millis" }, { commandTimeoutMs: 200 })))
  )

  it.live("keeps every acknowledged write across a SIGKILL with aof and appendfsync always", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const store = yield* CacheStore
      const keys = Array.from({ length: 1000 }, (_, i) => `durable:${i}`)
      const outcomes = yield* Effect.forEach(keys, (key) => cache.set(key, key, { schema: Schema.String }), {
        concurrency: 64
      })
      assert.isTrue(outcomes.every((o) => o._tag === "Written"))
      yield* killAndAwaitRestart
      const values = yield* store.getMany(keys)
      assert.strictEqual(values.filter((v, i) => v === JSON.stringify(keys[i])).length, 1000)
    }).pipe(Effect.provide(embedded({ persistence: "aof", appendfsync: "always" })))
  )

  it.live("never answers a value whose delete the hung server missed, after it restarts from its AOF", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const server = yield* EmbeddedRedis
      const store = yield* CacheStore
      yield* cache.set("user:1", "old", { schema: Schema.String })
      const pid = (yield* server.pid)!
      process.kill(pid, "SIGSTOP")
      // The delete times out against the hung server; the SIGKILL then ensures it never ran there.
      assert.strictEqual((yield* cache.delete("user:1"))._tag, "Pending")
      process.kill(pid, "SIGKILL")
      yield* Poll.until(
        Effect.map(server.pid, (now) => now !== undefined && now !== pid),
        { timeoutMs: 10_000, what: "the supervisor restarted the server" }
      )
      // The restarted server replayed its AOF, and the breaker never opened (threshold 100): until the retry has
      // applied the delete, every read misses; after it, the key is gone from the store.
      assert.strictEqual((yield* cache.stats).breakerOpened, 0)
      yield* Poll.until(
        Effect.gen(function* () {
          assert.deepStrictEqual(yield* cache.get("user:1", Schema.String), Option.none())
          return (yield* cache.stats).pendingInvalidations === 0
        }),
        { timeoutMs: 10_000, what: "the pending delete was applied" }
      )
      assert.isUndefined(yield* store.get("user:1"))
      assert.deepStrictEqual(yield* cache.get("user:1", Schema.String), Option.none())
    }).pipe(
      Effect.provide(
        embedded({ persistence: "aof", appendfsync: "always" }, { failureThreshold: 100 }, { commandTimeoutMs: 200 })
      )
    )
  )

  it.live("a restart applies the invalidations a previous run left pending before serving its AOF's data", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const server = { ...defaults(dir), persistence: "aof", appendfsync: "always" } as const
      const layer = RedisCache.layerEmbedded({ server }).pipe(Layer.fresh)
      yield* Cache.Cache.use((cache) => cache.set("user:1", "old", { schema: Schema.String })).pipe(
        Effect.provide(layer)
      )
      // As a run that died with the delete of user:1 still pending would have left it.
      fs.writeFileSync(path.join(dir, PendingFile.fileName), JSON.stringify({ keys: ["user:1"], everything: false }))
      yield* Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const store = yield* CacheStore
        assert.deepStrictEqual(yield* cache.get("user:1", Schema.String), Option.none())
        yield* Poll.until(
          Effect.map(cache.stats, (stats) => stats.pendingInvalidations === 0),
          { timeoutMs: 10_000, what: "the inherited delete was applied" }
        )
        assert.isUndefined(yield* store.get("user:1"))
        assert.isFalse(fs.existsSync(path.join(dir, PendingFile.fileName)), "the journal is cleared once applied")
      }).pipe(Effect.provide(layer))
    }).pipe(Effect.scoped)
  )

  it.live("records a delete the store could not apply in the data dir before answering Pending", () =>
    Effect.gen(function* () {
      const dir = yield* TempDir.make
      const server = { ...defaults(dir), persistence: "aof", appendfsync: "always" } as const
      yield* Effect.gen(function* () {
        const cache = yield* Cache.Cache
        const redis = yield* EmbeddedRedis
        const pid = (yield* redis.pid)!
        process.kill(pid, "SIGSTOP")
        const outcome = yield* Effect.ensuring(
          cache.delete("user:1"),
          Effect.sync(() => process.kill(pid, "SIGCONT"))
        )
        assert.strictEqual(outcome._tag, "Pending")
        const journal = JSON.parse(fs.readFileSync(path.join(dir, PendingFile.fileName), "utf8"))
        assert.deepStrictEqual(journal, { keys: ["user:1"], everything: false })
      }).pipe(
        Effect.provide(
          RedisCache.layerEmbedded({ server, cache: { failureThreshold: 100 }, store: { commandTimeoutMs: 200 } }).pipe(
            Layer.fresh
          )
        )
      )
    }).pipe(Effect.scoped)
  )

  it.live("evicts under allkeys-lru and keeps used memory within the limit", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      const store = yield* CacheStore
      const limit = 4 * 1024 * 1024
      // 2x the limit in 1 KB values.
      yield* Effect.forEach(
        Array.from({ length: 8192 }, (_, i) => i),
        (i) =>
          Effect.flatMap(cache.set(`lru:${i}`, value1k, { schema: Schema.String }), (outcome) => {
            assert.strictEqual(outcome._tag, "Written")
            return Effect.void
          }),
        { concurrency: 32 }
      )
      const info = yield* store.info
      assert.strictEqual(info.maxMemory, limit)
      assert.isAtMost(info.usedMemory, limit + 4096)
      assert.isAbove(info.evictedKeys, 0)
      assert.deepStrictEqual(yield* cache.get("lru:8191", Schema.String), Option.some(value1k))
    }).pipe(Effect.provide(embedded({ maxmemory: "4mb", evictionPolicy: "allkeys-lru" })))
  )

  it.live("fails writes soft with OutOfMemory under noeviction, drops the value they replaced, serves reads", () =>
    Effect.gen(function* () {
      const cache = yield* Cache.Cache
      yield* cache.set("first", value1k, { schema: Schema.String })
      let i = 0
      let outcome: Cache.WriteOutcome = { _tag: "Written" }
      while (outcome._tag === "Written" && i < 20_000) {
        outcome = yield* cache.set(`fill:${i++}`, value1k, { schema: Schema.String })
      }
      assert.strictEqual(outcome._tag, "NotWritten")
      if (outcome._tag === "NotWritten") assert.strictEqual(outcome.error.reason, "OutOfMemory")
      assert.deepStrictEqual(yield* cache.get("first", Schema.String), Option.some(value1k))
      assert.deepStrictEqual(yield* cache.get("fill:0", Schema.String), Option.some(value1k))
      // A refused write must not leave the older value readable: it was overwritten as far as the caller knows.
      const rewrite = yield* cache.set("first", "newer ".repeat(200), { schema: Schema.String })
      assert.strictEqual(rewrite._tag, "NotWritten")
      assert.deepStrictEqual(yield* cache.get("first", Schema.String), Option.none())
      // A healthy store refusing writes is not an outage: the breaker stays closed.
      assert.strictEqual((yield* cache.stats).breaker, "closed")
    }).pipe(Effect.provide(embedded({ maxmemory: "4mb", evictionPolicy: "noeviction" })))
  )
})
