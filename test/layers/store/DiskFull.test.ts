/**
 * A full disk under AOF persistence: redis-server keeps answering reads but refuses every write with MISCONF, deletes
 * and flushes included. The cache must keep reads working, fail writes soft, never answer a value whose invalidation
 * the full disk refused, and apply that invalidation once space is freed. The data dir is on a 4 MiB tmpfs mounted
 * for the test (this project's machines and CI run as root).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Cache from "../../../effects/Cache.ts"
import * as RedisCache from "../../../layers/RedisCache.ts"
import { CacheStore } from "../../../src/CacheStore.ts"
import { defaults } from "../../../src/EmbeddedRedis.ts"
import * as Disk from "../../utils/Disk.ts"
import * as Poll from "../../utils/Poll.ts"

/** A small tmpfs mounted on a fresh temp dir, unmounted and removed when the scope closes. */
const smallDisk = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-full-"))
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir])
    return dir
  }),
  (dir) =>
    Effect.sync(() => {
      execFileSync("umount", ["-l", dir])
      fs.rmSync(dir, { recursive: true, force: true })
    })
)

/** Fills what is left of the disk under `dir` with one file; answers its path. */
const fillDisk = (dir: string) =>
  Effect.sync(() => {
    const file = path.join(dir, "filler")
    Disk.fillUp(file)
    return file
  })

/** Fills the disk, invalidates, checks what is answered, frees the disk, checks the invalidation landed. */
const scenario = (dir: string) =>
  Effect.gen(function* () {
    const cache = yield* Cache.Cache
    const store = yield* CacheStore
    yield* cache.set("user:1", "old", { schema: Schema.String })
    yield* cache.set("user:2", "kept", { schema: Schema.String })
    const filler = yield* fillDisk(dir)
    // The first writes after the disk filled up still land in memory; the failed AOF write then stops all writes.
    let refusedBecause: string | undefined
    yield* Poll.until(
      Effect.map(cache.set(`more:${Math.random()}`, "x".repeat(512), { schema: Schema.String }), (outcome) => {
        if (outcome._tag === "NotWritten") refusedBecause = outcome.error.reason
        return outcome._tag === "NotWritten"
      }),
      { timeoutMs: 10_000, what: "the store refuses writes" }
    )
    assert.strictEqual(refusedBecause, "ReadOnly")

    assert.strictEqual((yield* cache.delete("user:1"))._tag, "Pending")
    assert.strictEqual(yield* store.get("user:1"), '"old"', "the store still holds the invalidated value")
    assert.deepStrictEqual(yield* cache.get("user:1", Schema.String), Option.none())
    assert.deepStrictEqual(yield* cache.get("user:2", Schema.String), Option.some("kept"), "reads keep working")
    assert.strictEqual((yield* cache.stats).breaker, "closed", "a store that answers reads is not an outage")

    yield* Effect.sync(() => fs.rmSync(filler))
    yield* Poll.until(
      Effect.gen(function* () {
        assert.deepStrictEqual(yield* cache.get("user:1", Schema.String), Option.none())
        return (yield* cache.stats).pendingInvalidations === 0
      }),
      { timeoutMs: 20_000, what: "the pending delete is applied once space is freed" }
    )
    assert.isUndefined(yield* store.get("user:1"))
    assert.deepStrictEqual(yield* cache.get("user:2", Schema.String), Option.some("kept"))
  })

describe("a full disk under AOF persistence", () => {
  it.live("keeps reads working, fails writes soft, and never serves a value a refused delete invalidated", () =>
    Effect.gen(function* () {
      const dir = yield* smallDisk
      const server = { ...defaults(path.join(dir, "data")), persistence: "aof", appendfsync: "everysec" } as const
      // The server stops when the scenario ends, before the disk is unmounted.
      yield* scenario(dir).pipe(Effect.provide(RedisCache.layerEmbedded({ server })))
    })
  )
})
