import { afterEach, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Facade from "../../layers/PromiseCache.ts"
import { InvalidKeyError } from "../../src/CacheKey.ts"
import { RedisServerError } from "../../src/EmbeddedRedis.ts"
import { InvalidPatternError } from "../../src/InvalidationEvent.ts"
import * as Resp from "../utils/Resp.ts"

/** Caches and directories made by a test, released after it whatever its outcome. */
const opened: Array<Facade.EmbeddedCache> = []
const dirs: Array<string> = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((cache) => cache.close()))
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const open = async (config: Facade.FacadeConfig) => {
  const cache = await Facade.createCache({ logLevel: "Error", ...config })
  opened.push(cache)
  return cache
}

const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-"))
  dirs.push(dir)
  return dir
}

/** Whether process `pid` exists. */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** A promise and the function that resolves it. */
const deferred = <T>() => {
  const settlers: Array<(value: T) => void> = []
  const promise = new Promise<T>((settle) => settlers.push(settle))
  return { promise, resolve: (value: T) => settlers[0]!(value) }
}

/** A loader that counts its calls. */
const counting = <T>(value: T) => {
  let calls = 0
  return {
    load: async () => {
      calls++
      return value
    },
    calls: () => calls
  }
}

/** The contract both stores keep. */
const contract = (name: string, config: () => Facade.FacadeConfig) =>
  describe(`createCache on ${name}`, () => {
    it("round-trips JSON values through set and get, and a miss is undefined", async () => {
      const cache = await open(config())
      const user = { id: 1, name: "ada", tags: ["x"], nested: { ok: true, none: null } }
      assert.isTrue(await cache.set("user:1", user))
      assert.deepStrictEqual(await cache.get("user:1"), user)
      assert.isTrue(await cache.set("n", 42, { ttl: 60 }))
      assert.strictEqual(await cache.get<number>("n"), 42)
      assert.isUndefined(await cache.get("missing"))
    })

    it("getOrLoad loads a miss once and answers later calls from the cache", async () => {
      const cache = await open(config())
      const loader = counting({ id: 2 })
      assert.deepStrictEqual(await cache.getOrLoad("user:2", loader.load, { ttl: 60, tags: ["users"] }), { id: 2 })
      assert.deepStrictEqual(await cache.getOrLoad("user:2", loader.load), { id: 2 })
      assert.strictEqual(loader.calls(), 1)
      assert.deepStrictEqual(await cache.get("user:2"), { id: 2 })
    })

    it("getOrLoad shares one load between concurrent callers of a key", async () => {
      const cache = await open(config())
      let calls = 0
      const gate = deferred<string>()
      const started = deferred<void>()
      const load = () => {
        calls++
        started.resolve()
        return gate.promise
      }
      const callers = Array.from({ length: 10 }, () => cache.getOrLoad("shared", load))
      await started.promise
      gate.resolve("v")
      assert.deepStrictEqual(
        await Promise.all(callers),
        Array.from({ length: 10 }, () => "v")
      )
      assert.strictEqual(calls, 1)
    })

    it("getOrLoad rejects with the loader's own error and caches nothing", async () => {
      const cache = await open(config())
      const boom = new Error("source down")
      const error = await cache.getOrLoad("k", () => Promise.reject(boom)).catch((e: unknown) => e)
      assert.strictEqual(error, boom)
      assert.isUndefined(await cache.get("k"))
      assert.strictEqual(await cache.getOrLoad("k", async () => "ok"), "ok")
    })

    it("delete and invalidateKey/Pattern/Tags remove entries and report exact counts", async () => {
      const cache = await open(config())
      for (const key of ["a:1", "a:2", "a:3", "b:1"]) await cache.set(key, key)
      await cache.set("t:1", 1, { tags: ["red"] })
      await cache.set("t:2", 2, { tags: ["red", "blue"] })
      await cache.set("t:3", 3, { tags: ["green"] })
      assert.deepStrictEqual(await cache.delete("b:1"), { removed: 1, pending: false })
      assert.deepStrictEqual(await cache.delete("b:1"), { removed: 0, pending: false })
      assert.deepStrictEqual(await cache.invalidateKey("a:3"), { removed: 1, pending: false })
      assert.deepStrictEqual(await cache.invalidatePattern("a:*"), { removed: 2, pending: false })
      assert.deepStrictEqual(await cache.invalidateTags(["red"]), { removed: 2, pending: false })
      assert.isUndefined(await cache.get("a:1"))
      assert.isUndefined(await cache.get("t:2"))
      assert.strictEqual(await cache.get("t:3"), 3)
      const everything = await cache.invalidatePattern("*").catch((e: unknown) => e)
      assert.instanceOf(everything, InvalidPatternError)
      assert.deepStrictEqual(await cache.invalidatePattern("*", { all: true }), { removed: 1, pending: false })
    })

    it("warm loads the keys it is given, counting missing and failed keys, without overwriting cached ones", async () => {
      const cache = await open(config())
      await cache.set("w:0", "cached")
      const report = await cache.warm(["w:0", "w:1", "w:2", "w:missing", "w:bad"], async (key) => {
        if (key === "w:bad") throw new Error("no")
        return key === "w:missing" ? undefined : `loaded ${key}`
      })
      assert.include(report, { total: 5, warmed: 3, alreadyCached: 1, missing: 1, failed: 1 })
      assert.strictEqual(await cache.get("w:0"), "cached")
      assert.strictEqual(await cache.get("w:1"), "loaded w:1")
      assert.isUndefined(await cache.get("w:missing"))
    })

    it("stats report the seed's fields, the operations through the facade and the store", async () => {
      const cache = await open({ ...config(), instanceId: "facade-test" })
      await cache.set("s", 1)
      await cache.get("s")
      await cache.get("s")
      await cache.get("nope")
      const stats = await cache.stats()
      assert.strictEqual(stats.instance_id, "facade-test")
      assert.strictEqual(stats.hits, 2)
      assert.strictEqual(stats.misses, 1)
      assert.closeTo(stats.hit_rate, 2 / 3, 1e-9)
      assert.isAtLeast(stats.total_keys, 1)
      assert.strictEqual(stats.window.operations, 4)
      assert.strictEqual(stats.latency_ms.get.samples, 3)
      assert.isTrue(stats.store_up)
      assert.strictEqual(stats.store, name === "memory" ? "memory" : "redis")
    })

    it("rejects with the typed error itself: an invalid key, a bad TTL, a value that is not JSON", async () => {
      const cache = await open(config())
      assert.instanceOf(await cache.get("").catch((e: unknown) => e), InvalidKeyError)
      const ttl = await cache.set("k", 1, { ttl: -1 }).catch((e: unknown) => e)
      assert.instanceOf(ttl, Facade.InvalidArgumentError)
      assert.strictEqual((ttl as Facade.InvalidArgumentError).argument, "ttl")
      const notJson = await cache.set("k", { f: () => 1 }).catch((e: unknown) => e)
      assert.strictEqual((notJson as { _tag: string })._tag, "SchemaError")
    })

    it("after close() every call rejects with CacheClosedError, and close() can be called again", async () => {
      const cache = await open(config())
      await cache.set("k", 1)
      await cache.close()
      await cache.close()
      assert.instanceOf(await cache.get("k").catch((e: unknown) => e), Facade.CacheClosedError)
      assert.instanceOf(await cache.stats().catch((e: unknown) => e), Facade.CacheClosedError)
    })
  })

contract("memory", () => ({ store: "memory" }))
contract("an embedded redis-server", () => ({ store: "embedded", dataDir: tempDir(), maxmemory: "16mb" }))

describe("createCache with an embedded redis-server", () => {
  it("runs its own server in dataDir with the configured limits, and close() stops it, leaving no pid", async () => {
    const dataDir = tempDir()
    const cache = await open({
      store: "embedded",
      dataDir,
      maxmemory: "8mb",
      evictionPolicy: "allkeys-lfu",
      defaultTtl: 120
    })
    const socket = path.join(dataDir, "redis.sock")
    const pid = Number(fs.readFileSync(path.join(dataDir, "redis.pid"), "utf8").trim())
    assert.isTrue(alive(pid))
    assert.strictEqual(await Effect.runPromise(Resp.configGet(socket, "maxmemory")), String(8 * 1024 * 1024))
    assert.strictEqual(await Effect.runPromise(Resp.configGet(socket, "maxmemory-policy")), "allkeys-lfu")
    await cache.set("k", "v")
    // The default TTL (seconds) applies to a write without one.
    const ttl = (await Effect.runPromise(Resp.command(socket, "TTL", "k"))) as number
    assert.isTrue(ttl > 100 && ttl <= 120, String(ttl))
    const stats = await cache.stats()
    assert.strictEqual(stats.memory_limit, 8 * 1024 * 1024)
    assert.closeTo(stats.memory_usage_percent, (stats.memory_used / stats.memory_limit) * 100, 1e-9)
    await cache.close()
    assert.isFalse(alive(pid), `redis-server ${pid} is still running`)
    assert.isFalse(fs.existsSync(path.join(dataDir, "embedded-cache.lock")))
  })

  it("rejects createCache with the server's error when it cannot start, leaving nothing running", async () => {
    const dataDir = tempDir()
    const error = await Facade.createCache({ store: "embedded", dataDir, binary: "/nonexistent/redis-server" }).catch(
      (e: unknown) => e
    )
    assert.instanceOf(error, RedisServerError)
    assert.strictEqual((error as RedisServerError).reason, "BinaryNotFound")
    assert.isFalse(fs.existsSync(path.join(dataDir, "embedded-cache.lock")))
  })

  it("rejects an invalid configuration before starting anything", async () => {
    const dataDir = tempDir()
    const policy = await Facade.createCache({
      store: "embedded",
      dataDir,
      evictionPolicy: "most-recent" as "allkeys-lru"
    }).catch((e: unknown) => e)
    assert.strictEqual((policy as { _tag: string })._tag, "SchemaError")
    const ttl = await Facade.createCache({ store: "memory", defaultTtl: 0 }).catch((e: unknown) => e)
    assert.instanceOf(ttl, Facade.InvalidArgumentError)
    assert.isFalse(fs.existsSync(path.join(dataDir, "redis.pid")))
  })
})

describe("loaders used by warm", () => {
  it("warm without a loader uses the configured one, and rejects when there is none", async () => {
    const configured = await open({ store: "memory", load: async (key) => `from config ${key}` })
    assert.strictEqual((await configured.warm(["c:1"])).warmed, 1)
    assert.strictEqual(await configured.get("c:1"), "from config c:1")
    const bare = await open({ store: "memory" })
    assert.instanceOf(await bare.warm(["c:1"]).catch((e: unknown) => e), Facade.InvalidArgumentError)
  })

  it("a loader's rejection fails that key in the warm report instead of rejecting warm", async () => {
    const cache = await open({ store: "memory" })
    const report = await cache.warm(["x"], () => Promise.reject(new Error("nope")))
    assert.strictEqual(report.failed, 1)
    assert.strictEqual(report.failures[0]?.message, "nope")
  })
})
