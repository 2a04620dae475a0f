/**
 * The commands of the sync model, each with `check`, `run` and `toString`, so a failure reads as a script.
 * The model only counts the messages held for each instance (to know when a delivery command applies; it follows
 * the hub, since a coalesced update holds one message for several writes); what
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

/** The model follows the hub's held counts (a coalesced update may hold one message for several writes). */
const syncHeld = (model: Model, real: Sync.Real) => {
  for (let j = 0; j < model.held.length; j++) model.held[j] = real.hub.held(real.ids[j]!).length
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
    syncHeld(m, real)
    assertNoViolation(real)
  },
  toString: () => `update(i${i}, ${write} ${describeTarget(target)})`
})

/** Instance `i` writes several targets at once: they are coalesced into one multi-target event. */
const updateMany = (i: number, targets: ReadonlyArray<readonly [Target, "set" | "invalidate"]>): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length,
  run: async (m: Model, real: Sync.Real) => {
    await real.run(Sync.updateAll(real, i, targets))
    syncHeld(m, real)
    assertNoViolation(real)
  },
  toString: () => `updateMany(i${i}, ${targets.map(([t, w]) => `${w} ${describeTarget(t)}`).join("; ")})`
})

/** Delivers several held messages to instance `i` as one receive batch, in the given (possibly reordered) order. */
const deliverMany = (i: number, indexes: ReadonlyArray<number>): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length && m.held[i]! > 0,
  run: async (m: Model, real: Sync.Real) => {
    await real.run(Sync.deliverAll(real, i, indexes))
    syncHeld(m, real)
    assertNoViolation(real)
  },
  toString: () => `deliverMany(i${i}, #${indexes.join(",#")})`
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
    syncHeld(m, real)
    assertNoViolation(real)
  },
  toString: () => `deliver(i${i}, #${index})`
})

const duplicate = (i: number, index: number): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length && m.held[i]! > 0,
  run: async (m: Model, real: Sync.Real) => {
    const id = real.ids[i]!
    await real.run(real.hub.duplicate(id, index % real.hub.held(id).length))
    syncHeld(m, real)
  },
  toString: () => `duplicate(i${i}, #${index})`
})

/** Loses a held message; the final drain shows it as a seq gap, which must flush the instance. */
const drop = (i: number, index: number): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length && m.held[i]! > 0,
  run: async (m: Model, real: Sync.Real) => {
    const id = real.ids[i]!
    await real.run(real.hub.drop(id, index % real.hub.held(id).length))
    syncHeld(m, real)
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

/** The source goes down (every load fails: fail-safe may answer stale copies) or comes back. */
const sourceDown = (down: boolean): Command => ({
  check: () => true,
  run: async (_: Model, real: Sync.Real) => {
    real.sourceDown = down
  },
  toString: () => `sourceDown(${down})`
})

/** While the source is down, time passes beyond the TTL and instance `i` reads `key`: fail-safe's moment. */
const outageRead = (i: number, key: string, seconds: number): Command => ({
  check: (m: Readonly<Model>) => i < m.held.length,
  run: async (_: Model, real: Sync.Real) => {
    const wasDown = real.sourceDown
    real.sourceDown = true
    await real.run(Effect.asVoid(Sync.adjust(seconds)))
    await real.run(Sync.read(real, i, key))
    real.sourceDown = wasDown
    assertNoViolation(real)
  },
  toString: () => `outageRead(i${i}, ${key}, after ${seconds}s)`
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

/**
 * Command sequences for up to `instances` instances; `withOutages` adds source outages and the long waits that let
 * entries expire into stale copies (for caches with fail-safe on).
 */
export const commands = (instances: number, maxCommands: number, withOutages = false) => {
  const i = fc.nat(instances - 1)
  const index = fc.nat(3)
  const updates = fc.oneof(
    fc
      .tuple(i, key, fc.constantFrom("set" as const, "invalidate" as const))
      .map(([n, k, w]) => update(n, { invalidation_type: "key", key: k }, w)),
    fc.tuple(i, target).map(([n, t]) => update(n, t, "invalidate"))
  )
  const many = fc
    .tuple(
      i,
      fc.array(
        fc.oneof(
          fc
            .tuple(key, fc.constantFrom("set" as const, "invalidate" as const))
            .map(([k, w]) => [{ invalidation_type: "key", key: k }, w] as const),
          target.map((t) => [t, "invalidate"] as const)
        ),
        { minLength: 2, maxLength: 4 }
      )
    )
    .map(([n, targets]) => updateMany(n, targets))
  const reads = fc.tuple(i, key, fc.boolean()).map(([n, k, load]) => read(n, k, load))
  const deliveries = fc.tuple(i, index).map(([n, x]) => deliver(n, x))
  const batches = fc.tuple(i, fc.array(fc.nat(5), { minLength: 2, maxLength: 5 })).map(([n, xs]) => deliverMany(n, xs))
  // Weights by repetition: the races worth finding need updates, reads and deliveries to interleave, and
  // long expiries would wipe the entries whose staleness is under test.
  return fc.commands<Model, Sync.Real, false>(
    [
      updates,
      updates,
      many,
      reads,
      reads,
      reads,
      deliveries,
      deliveries,
      batches,
      batches,
      fc.tuple(i, index).map(([n, x]) => duplicate(n, x)),
      fc.tuple(i, index).map(([n, x]) => drop(n, x)),
      fc.tuple(i, key).map(([n, k]) => evict(n, k)),
      fc.integer({ min: 1, max: 15 }).map((s) => expire(s)),
      ...(withOutages
        ? [
            fc.boolean().map(sourceDown),
            fc.integer({ min: 16, max: 45 }).map((s) => expire(s)),
            fc.tuple(i, key, fc.integer({ min: 16, max: 60 })).map(([n, k, s]) => outageRead(n, k, s)),
            fc.tuple(i, key, fc.integer({ min: 16, max: 60 })).map(([n, k, s]) => outageRead(n, k, s)),
            reads,
            reads
          ]
        : [])
    ],
    withOutages ? { maxCommands, size: "max" } : { maxCommands }
  )
}
