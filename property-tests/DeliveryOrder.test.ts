/**
 * Any permutation and duplication of deliveries ends in the same state as delivering each event once, in
 * order: applying an invalidation is idempotent and invalidations commute. Checked on a memory-bus world:
 * instance i1 holds every key; i0 publishes a generated list of invalidations; i1 receives them in order once
 * (the reference) or shuffled with duplicates (the test), and must end with the same keys and the same count
 * of applied events.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as fc from "fast-check"
import { Cache } from "../effects/Cache.ts"
import { SyncConsumer } from "../effects/SyncConsumer.ts"
import * as MemoryStore from "../layers/store/MemoryStore.ts"
import type { Target } from "../src/InvalidationEvent.ts"
import * as World from "../test/utils/World.ts"
import { settings } from "./Settings.ts"
import * as Sync from "./sync/World.ts"

const target: fc.Arbitrary<Target> = fc.oneof(
  fc.constantFrom(...Sync.keys).map((key): Target => ({ invalidation_type: "key", key })),
  fc.constantFrom(...Sync.patterns).map((pattern): Target => ({ invalidation_type: "pattern", pattern })),
  fc.subarray([...Sync.tags], { minLength: 1 }).map((tags): Target => ({ invalidation_type: "tag", tags }))
)

/** Publishes `targets` from i0, delivers them to i1 in `order` (indexes into the held list, repeats allowed). */
const outcome = async (targets: ReadonlyArray<Target>, order: (count: number) => ReadonlyArray<number>) => {
  // One event per invalidation, sent at once: each can be delivered, duplicated and reordered on its own.
  const real = await Sync.make(2, () => MemoryStore.layer, {
    publisher: { awaitMs: 1000, coalesceWindow: 0, maxTargetsPerEvent: 1 }
  })
  try {
    return await real.run(
      Effect.gen(function* () {
        const [i0, i1] = real.instances
        for (const key of Sync.keys) yield* Sync.read(real, 1, key)
        for (const t of targets)
          yield* World.on(
            i0!,
            Cache.use((cache) => cache.invalidate(t))
          )
        const held = [...real.hub.held("i1")]
        // Deliver copies by position in the publish order: duplicates are held copies of the same message.
        for (const position of order(held.length)) {
          const index = real.hub.held("i1").findIndex((m) => m.id === held[position]!.id)
          if (index >= 0) yield* real.hub.duplicate("i1", index)
          const copy = real.hub.held("i1").length - 1
          yield* Sync.deliver(real, 1, copy)
        }
        const present: Array<string> = []
        for (const key of Sync.keys) {
          const value = yield* World.on(
            i1!,
            Cache.use((cache) => cache.get(key, Sync.Versioned))
          )
          if (Option.isSome(value)) present.push(key)
        }
        const stats = yield* World.on(
          i1!,
          SyncConsumer.use((s) => s.stats)
        )
        return { present, applied: stats.applied }
      })
    )
  } finally {
    await real.close()
  }
}

describe("delivery order", () => {
  it("any permutation with duplicates ends as each event once, in order", { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(target, { minLength: 1, maxLength: 8 }),
        fc.infiniteStream(fc.nat()),
        async (targets, randomness) => {
          const reference = await outcome(targets, (n) => Array.from({ length: n }, (_, i) => i))
          const picks = randomness[Symbol.iterator]()
          const shuffled = await outcome(targets, (n) => {
            // Every message at least once, in a random order, plus up to n random duplicates.
            const order = Array.from({ length: n }, (_, i) => i)
            for (let i = n - 1; i > 0; i--) {
              const j = picks.next().value! % (i + 1)
              ;[order[i], order[j]] = [order[j]!, order[i]!]
            }
            const extra = picks.next().value! % (n + 1)
            for (let k = 0; k < extra; k++) {
              order.splice(picks.next().value! % (order.length + 1), 0, picks.next().value! % n)
            }
            return order
          })
          expect(shuffled).toEqual(reference)
        }
      ),
      settings(300)
    )
  })
})
