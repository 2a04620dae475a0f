/**
 * The commands of the sync model, each with `check`, `run` and `toString`, so a failure reads as a script.
 * The model only counts the messages held for each instance (to know when a delivery command applies); what
 * the instances may answer is checked against the source of truth and the floors kept by the world.
 */
import { Effect } from "effect"
import * as fc from "fast-check"
import { CacheStore } from "../../src/CacheStore.ts"
import type { Target } from "../../src/InvalidationEvent.ts"
import * as World from "../../test/utils/World.ts"
import * as Sync from "./World.ts"

/** Messages held per instance. */
export interface Model {
  readonly held: Array<number>
}

type Command = fc.AsyncCommand<Model, Sync.Real, false>

const othersGetOne = (model: Model, from: number) => {
  for (let j = 0; j < model.held.length; j++) if (j !== from) model.held[j]!++
}

const describeTarget = (target: Target) =>
  target.invalidation_type === "key"
    ? target.key
    : target.invalidation_type === "pattern"
      ? `pattern ${target.pattern}`
      : `tags ${target.tags.join(",")}`

/** The source changes and instance `i` writes it: `set` of the new value, or an invalidation of the target. */
const update = (i: number, target: Target, write: "set" | "invalidate"): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length,
  run: async (m: Model, real: Sync.Real) => {
    await real.run(Sync.update(real, i, target, write))
    othersGetOne(m, i)
    assertNoViolation(real)
  },
  toString: () => `update(i${i}, ${write} ${describeTarget(target)})`
})

const read = (i: number, key: string, load: boolean): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length,
  run: async (_: Model, real: Sync.Real) => {
    await real.run(load ? Sync.read(real, i, key) : Sync.get(real, i, key))
    assertNoViolation(real)
  },
  toString: () => `${load ? "getOrLoad" : "get"}(i${i}, ${key})`
})

/** Delivers a held message; index > 0 delivers out of order (a reorder), leaving it held is a delay. */
const deliver = (i: number, index: number): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length && m.held[i]! > 0,
  run: async (m: Model, real: Sync.Real) => {
    await real.run(Sync.deliver(real, i, index))
    m.held[i]!--
    assertNoViolation(real)
  },
  toString: () => `deliver(i${i}, #${index})`
})

const duplicate = (i: number, index: number): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length && m.held[i]! > 0,
  run: async (m: Model, real: Sync.Real) => {
    const id = real.ids[i]!
    await real.run(real.hub.duplicate(id, index % real.hub.held(id).length))
    m.held[i]!++
  },
  toString: () => `duplicate(i${i}, #${index})`
})

/** Loses a held message; the final drain shows it as a seq gap, which must flush the instance. */
const drop = (i: number, index: number): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length && m.held[i]! > 0,
  run: async (m: Model, real: Sync.Real) => {
    const id = real.ids[i]!
    await real.run(real.hub.drop(id, index % real.hub.held(id).length))
    m.held[i]!--
  },
  toString: () => `drop(i${i}, #${index})`
})

/** The store evicts a key behind the cache's back. */
const evict = (i: number, key: string): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length,
  run: async (_: Model, real: Sync.Real) => {
    await real.run(
      World.on(
        real.instances[i]!,
        CacheStore.use((store) => store.delete([key]))
      )
    )
  },
  toString: () => `evict(i${i}, ${key})`
})

/** Time passes: entries expire, gap checks run. */
const expire = (seconds: number): Command => ({
  check: () => true,
  run: async (_: Model, real: Sync.Real) => {
    await real.run(Effect.asVoid(Sync.adjust(seconds)))
  },
  toString: () => `expire(${seconds}s)`
})

const assertNoViolation = (real: Sync.Real) => {
  if (real.violations.length > 0) throw new Error(real.violations.join("\n"))
}

const key = fc.constantFrom(...Sync.keys)
const target: fc.Arbitrary<Target> = fc.oneof(
  key.map((k): Target => ({ invalidation_type: "key", key: k })),
  fc.constantFrom(...Sync.patterns).map((pattern): Target => ({ invalidation_type: "pattern", pattern })),
  fc.subarray([...Sync.tags], { minLength: 1 }).map((tags): Target => ({ invalidation_type: "tag", tags }))
)

/** Command sequences for up to `instances` instances. */
export const commands = (instances: number, maxCommands: number) => {
  const i = fc.nat(instances - 1)
  const index = fc.nat(3)
  const updates = fc.oneof(
    fc
      .tuple(i, key, fc.constantFrom("set" as const, "invalidate" as const))
      .map(([n, k, w]) => update(n, { invalidation_type: "key", key: k }, w)),
    fc.tuple(i, target).map(([n, t]) => update(n, t, "invalidate"))
  )
  const reads = fc.tuple(i, key, fc.boolean()).map(([n, k, load]) => read(n, k, load))
  const deliveries = fc.tuple(i, index).map(([n, x]) => deliver(n, x))
  // Weights by repetition: the races worth finding need updates, reads and deliveries to interleave, and
  // long expiries would wipe the entries whose staleness is under test.
  return fc.commands<Model, Sync.Real, false>(
    [
      updates,
      updates,
      updates,
      reads,
      reads,
      reads,
      deliveries,
      deliveries,
      deliveries,
      deliveries,
      fc.tuple(i, index).map(([n, x]) => duplicate(n, x)),
      fc.tuple(i, index).map(([n, x]) => drop(n, x)),
      fc.tuple(i, key).map(([n, k]) => evict(n, k)),
      fc.integer({ min: 1, max: 15 }).map((s) => expire(s))
    ],
    { maxCommands }
  )
}
