/**
 * The system under test of the sync model: 2–4 instances in one process, each with its own store, cache,
 * publisher and sync consumer, on a MemoryBus hub in manual mode (every delivery is a command), with time on
 * a TestClock. Also the source of truth and the bookkeeping the invariants need.
 */
import { Effect, Exit, Fiber, Layer, ManagedRuntime, Option, References, Schema, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Cache, type CacheOptions } from "../../effects/Cache.ts"
import { Publisher, type PublisherOptions } from "../../effects/Publisher.ts"
import { SyncConsumer } from "../../effects/SyncConsumer.ts"
import * as MemoryBus from "../../layers/bus/MemoryBus.ts"
import type { CacheStore } from "../../src/CacheStore.ts"
import { LoadError } from "../../src/DataSource.ts"
import * as Glob from "../../src/Glob.ts"
import { InvalidationEventJson, type Target, targetsOf } from "../../src/InvalidationEvent.ts"
import * as World from "../../test/utils/World.ts"

/** The keys, their tags, and the patterns and tags commands pick from. */
export const keys = ["a:0", "a:1", "b:0", "b:1"] as const
export const tagsOf: Record<string, ReadonlyArray<string>> = {
  "a:0": ["t0"],
  "a:1": ["t0", "t1"],
  "b:0": ["t1"],
  "b:1": []
}
export const patterns = ["a:*", "b:*", "*:0", "?:1"] as const
export const tags = ["t0", "t1"] as const

/** A cached value: the source version it was read at. */
export const Versioned = Schema.Struct({ key: Schema.String, version: Schema.Number })

export const sync = { gapTimeout: "10 seconds", silenceBound: "1 hour", checkInterval: "1 second" } as const
export const ttl = "30 seconds"
/** The publishers' coalescing window: an update moves the TestClock by it, so what was issued together travels together. */
export const window = "5 millis"
const publisher = { awaitMs: 1000, coalesceWindow: window } as const

const decode = Schema.decodeUnknownSync(InvalidationEventJson)

/** One run's world. */
export interface Real {
  readonly hub: MemoryBus.MemoryHub
  readonly ids: ReadonlyArray<string>
  readonly instances: ReadonlyArray<World.Instance>
  /** The source of truth: key → version. */
  readonly source: Map<string, number>
  /** Per instance and key, the oldest version it may still answer: raised by every invalidation it applied. */
  readonly floors: Array<Map<string, number>>
  /** Per event, the source versions of the keys it covers, as they were when it was published. */
  readonly published: Map<string, Map<string, number>>
  /** Violations found so far (the model run fails on the first). */
  readonly violations: Array<string>
  /** While true, every load from the source fails (an outage: fail-safe may answer stale copies). */
  sourceDown: boolean
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
  readonly close: () => Promise<void>
}

/** Keys a target covers. */
export const covered = (target: Target): ReadonlyArray<string> => {
  switch (target.invalidation_type) {
    case "key":
      return [target.key]
    case "pattern":
      return keys.filter((key) => Glob.matches(target.pattern, key))
    case "tag":
      return keys.filter((key) => tagsOf[key]!.some((tag) => target.tags.includes(tag)))
  }
}

const macrotask = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Yields (never sleeps: the clock is a TestClock) until `condition` holds. */
export const settle = <E>(condition: Effect.Effect<boolean, E>, what: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 20_000; i++) {
      if (yield* condition) return
      yield* i % 20 === 19 ? macrotask : Effect.yieldNow
    }
    return yield* Effect.die(new Error(`never settled: ${what}`))
  })

const handled = (instance: World.Instance) =>
  World.on(
    instance,
    SyncConsumer.use((s) => s.stats)
  ).pipe(Effect.map((s) => s.applied + s.duplicates + s.own + s.malformed))

/** What the world is built with: `unsafeAckBeforeApply` turns on the consumer's deliberately broken batch path. */
export interface WorldOptions {
  readonly unsafeAckBeforeApply?: boolean
  /** The publishers' options; default: the coalescing window `window`, which `update` moves the clock past. */
  readonly publisher?: PublisherOptions
  /** The caches' options (e.g. fail-safe, eager refresh, negative caching). */
  readonly cache?: CacheOptions
}

/**
 * Raises instance `i`'s floors for the event in `body` and checks its cached values at once: runs when the bus sees
 * the delivery acknowledged, when the invalidation must already be visible (ack only after apply).
 */
const onAcknowledged = (real: Real, i: number, body: string) =>
  Effect.gen(function* () {
    const versions = real.published.get(decode(body).event_id)
    if (versions === undefined) return
    const floors = real.floors[i]!
    for (const [key, version] of versions) {
      floors.set(key, Math.max(floors.get(key)!, version))
      const value = yield* World.on(
        real.instances[i]!,
        Cache.use((cache) => cache.get(key, Versioned))
      )
      checkAnswer(real, i, key, value, "get at acknowledgement")
    }
  }).pipe(Effect.orDie)

/** Builds a world of `count` instances, each store from `store`. */
export const make = async (
  count: number,
  store: (index: number) => Layer.Layer<CacheStore, unknown>,
  options: WorldOptions = {}
): Promise<Real> => {
  // Errors only: outages make fail-safe and eager refresh log a warning per failed load.
  const runtime = ManagedRuntime.make(
    Layer.merge(TestClock.layer(), Layer.succeed(References.MinimumLogLevel, "Error"))
  )
  const scope = await runtime.runPromise(Scope.make())
  const ids = Array.from({ length: count }, (_, i) => `i${i}`)
  let self: Real | undefined
  const consumer = { ...sync, unsafeAckBeforeApply: options.unsafeAckBeforeApply ?? false }
  const built = await runtime.runPromise(
    Effect.gen(function* () {
      const hub = yield* MemoryBus.makeHub({
        instances: ids,
        mode: "manual",
        onAck: (id, body) => (self === undefined ? Effect.void : onAcknowledged(self, ids.indexOf(id), body))
      })
      const instances = yield* Effect.forEach(ids, (id, i) =>
        Layer.build(
          World.instanceLayer(hub, id, {
            sync: consumer,
            store: store(i),
            publisher: options.publisher ?? publisher,
            ...(options.cache === undefined ? {} : { cache: options.cache })
          })
        )
      )
      return { hub, instances }
    }).pipe(Scope.provide(scope))
  )
  self = {
    ...built,
    ids,
    source: new Map(keys.map((key) => [key, 0])),
    floors: ids.map(() => new Map(keys.map((key) => [key, 0]))),
    published: new Map(),
    violations: [],
    sourceDown: false,
    run: (effect) => runtime.runPromise(effect),
    close: async () => {
      await runtime.runPromise(Scope.close(scope, Exit.void))
      await runtime.dispose()
    }
  }
  return self
}

/** Checks a value answered by instance `i` for `key` against its floor. */
export const checkAnswer = (
  real: Real,
  i: number,
  key: string,
  value: Option.Option<{ readonly version: number }>,
  how: string
) => {
  if (Option.isNone(value)) return
  const floor = real.floors[i]!.get(key)!
  if (value.value.version < floor) {
    real.violations.push(
      `${real.ids[i]} ${how} ${key} answered version ${value.value.version} below its floor ${floor}`
    )
  }
}

/** The cache write of one update on `instance`: `set` of the new value, or an invalidation of the target. */
const write = (real: Real, instance: World.Instance, target: Target, how: "set" | "invalidate"): Effect.Effect<void> =>
  how === "set" && target.invalidation_type === "key"
    ? World.on(
        instance,
        Cache.use((cache) =>
          cache.set(
            target.key,
            { key: target.key, version: real.source.get(target.key)! },
            { schema: Versioned, ttl, tags: tagsOf[target.key] }
          )
        )
      ).pipe(Effect.asVoid, Effect.orDie)
    : World.on(
        instance,
        Cache.use((cache) => cache.invalidate(target))
      ).pipe(Effect.asVoid, Effect.orDie)

/**
 * Updates the source for the targets' keys, then writes them all on instance `i` at once: the writes are issued
 * together, the clock passes the coalescing window, so they travel as one (multi-target) event.
 */
export const updateAll = (real: Real, i: number, targets: ReadonlyArray<readonly [Target, "set" | "invalidate"]>) =>
  Effect.gen(function* () {
    const before = new Set(real.hub.held(real.ids[(i + 1) % real.ids.length]!).map((m) => m.id))
    const touched = [...new Set(targets.flatMap(([target]) => covered(target)))].filter((key) => real.source.has(key))
    for (const key of touched) real.source.set(key, real.source.get(key)! + 1)
    const instance = real.instances[i]!
    const fibers = yield* Effect.forEach(targets, ([target, how]) =>
      Effect.forkChild(write(real, instance, target, how))
    )
    // Every write has reached the publisher (its local apply is done), so one window takes them all.
    yield* settle(
      Effect.map(
        World.on(
          instance,
          Publisher.use((p) => p.pending)
        ),
        (n) => n >= targets.length
      ),
      "the writes reach the publisher"
    )
    yield* TestClock.adjust(window)
    yield* Effect.forEach(fibers, Fiber.join, { discard: true })
    for (const key of touched) real.floors[i]!.set(key, real.source.get(key)!)
    // Remember what each event says, to raise the floors of the instances that apply it.
    const peer = real.ids[(i + 1) % real.ids.length]!
    const fresh = real.hub.held(peer).filter((m) => !before.has(m.id))
    for (const message of fresh) {
      const event = decode(message.body)
      const keysOfEvent = new Set(targetsOf(event).flatMap(covered))
      real.published.set(
        event.event_id,
        new Map(touched.filter((key) => keysOfEvent.has(key)).map((key) => [key, real.source.get(key)!]))
      )
    }
  })

/** Updates the source for `target`'s keys, then invalidates (or, for a key, writes) on instance `i`. */
export const update = (real: Real, i: number, target: Target, how: "set" | "invalidate") =>
  updateAll(real, i, [[target, how]])

/** Delivers the held message `index` (mod the held count) to instance `i` and waits until it was handled. */
export const deliver = (real: Real, i: number, index: number) =>
  Effect.gen(function* () {
    const id = real.ids[i]!
    const held = real.hub.held(id)
    if (held.length === 0) return
    const message = held[index % held.length]!
    const instance = real.instances[i]!
    const before = yield* handled(instance)
    yield* real.hub.deliver(id, index % held.length)
    yield* settle(
      Effect.map(handled(instance), (n) => n > before),
      `${id} handles a delivery`
    )
    raiseFloors(real, i, [message.body])
  })

/** Raises instance `i`'s floors for the events in `bodies`, now applied. */
const raiseFloors = (real: Real, i: number, bodies: ReadonlyArray<string>) => {
  for (const body of bodies) {
    const versions = real.published.get(decode(body).event_id)
    if (versions === undefined) continue
    const floors = real.floors[i]!
    for (const [key, version] of versions) floors.set(key, Math.max(floors.get(key)!, version))
  }
}

/**
 * Delivers the held messages at `indexes` (mod the held count, in that order) to instance `i` in one receive
 * batch and waits until all were handled.
 */
export const deliverAll = (real: Real, i: number, indexes: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const id = real.ids[i]!
    const held = real.hub.held(id)
    if (held.length === 0) return
    const chosen = [...new Set(indexes.map((x) => x % held.length))]
    const bodies = chosen.map((x) => held[x]!.body)
    const instance = real.instances[i]!
    const before = yield* handled(instance)
    yield* real.hub.deliverAll(id, chosen)
    yield* settle(
      Effect.map(handled(instance), (n) => n >= before + chosen.length),
      `${id} handles a batch of ${chosen.length}`
    )
    raiseFloors(real, i, bodies)
  })

/**
 * Reads `key` on instance `i` through getOrLoad (the loader reads the source, or fails while it is down) and checks
 * the answer — a stale fail-safe copy included; a failed read answers nothing to check.
 */
export const read = (real: Real, i: number, key: string) =>
  Effect.gen(function* () {
    const load = Effect.suspend(() =>
      real.sourceDown
        ? Effect.fail(new LoadError({ key, message: "the source is down" }))
        : Effect.succeed({ key, version: real.source.get(key)! })
    )
    const value = yield* World.on(
      real.instances[i]!,
      Cache.use((cache) => cache.getOrLoad(key, load, { schema: Versioned, ttl, tags: tagsOf[key] }))
    ).pipe(Effect.option)
    if (Option.isSome(value)) checkAnswer(real, i, key, value, "getOrLoad")
  })

/** Reads `key` on instance `i` without loading and checks the answer. */
export const get = (real: Real, i: number, key: string) =>
  Effect.gen(function* () {
    const value = yield* World.on(
      real.instances[i]!,
      Cache.use((cache) => cache.get(key, Versioned))
    )
    checkAnswer(real, i, key, value, "get")
  })

/**
 * Ends a run: every publisher sends one more event (so a lost one shows as a seq gap), every held message is
 * delivered, the clock passes the gap timeout; then every instance must answer the source's value or miss.
 */
export const drainAndCheck = (real: Real) =>
  Effect.gen(function* () {
    for (let i = 0; i < real.instances.length; i++) {
      yield* update(real, i, { invalidation_type: "key", key: `sentinel:${i}` }, "invalidate")
    }
    for (let i = 0; i < real.instances.length; i++) {
      while (real.hub.held(real.ids[i]!).length > 0) yield* deliver(real, i, 0)
    }
    yield* TestClock.adjust("12 seconds")
    for (let i = 0; i < real.instances.length; i++) {
      for (const key of keys) {
        const value = yield* World.on(
          real.instances[i]!,
          Cache.use((cache) => cache.get(key, Versioned))
        )
        if (Option.isSome(value) && value.value.version !== real.source.get(key)) {
          real.violations.push(
            `after draining, ${real.ids[i]} answers ${key} at version ${value.value.version}, the source is at ${real.source.get(
              key
            )}`
          )
        }
      }
    }
  })

/** Moves the TestClock. */
export const adjust = (seconds: number) => TestClock.adjust(`${seconds} seconds`)
