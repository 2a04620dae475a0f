/**
 * The contract every `CacheStore` adapter passes, run against MemoryStore and RedisStore and exported so users
 * can check their own adapters: `CacheStoreSuite.suite("mine", myLayer, { clock: "live" })`. With
 * `clock: "test"` expiry is driven by `TestClock`; with `"live"` the store keeps its own time (Redis) and the
 * suite waits for the expiry to be observable, with a deadline.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { CacheStore, type CacheStoreError } from "../../src/CacheStore.ts"

/** How the store under test tells time. */
export interface SuiteOptions {
  readonly clock: "test" | "live"
}

let counter = 0
/** A key no other test uses, so tests can share one store. */
const fresh = (name: string) => `suite:${name}:${process.pid}:${Date.now()}:${counter++}`

/** Runs the contract against the store that `layer` builds. */
export const suite = <E>(name: string, layer: Layer.Layer<CacheStore, E>, options: SuiteOptions) => {
  const run = options.clock === "test" ? it.effect : it.live
  const test = (title: string, body: (store: CacheStore["Service"]) => Effect.Effect<void, CacheStoreError | E>) =>
    run(title, () => CacheStore.use(body).pipe(Effect.provide(layer)))

  /** Lets `ms` pass for the store: moves the TestClock, or waits until `gone` holds (at most 5 s). */
  const elapse = (ms: number, gone: Effect.Effect<boolean, CacheStoreError>) =>
    options.clock === "test"
      ? TestClock.adjust(ms)
      : Effect.gen(function* () {
          const deadline = Date.now() + ms + 5000
          while (!(yield* gone)) {
            if (Date.now() > deadline) return assert.fail(`still present ${ms + 5000} ms after a ${ms} ms TTL`)
            yield* Effect.yieldNow
          }
        })

  describe(`CacheStore contract: ${name}`, () => {
    test("a missing key reads as undefined and a written string reads back", (store) =>
      Effect.gen(function* () {
        const key = fresh("rw")
        assert.isUndefined(yield* store.get(key))
        yield* store.set(key, '"v1"')
        assert.strictEqual(yield* store.get(key), '"v1"')
        yield* store.set(key, '"v2"')
        assert.strictEqual(yield* store.get(key), '"v2"')
      }))

    test("getMany answers in the order asked, undefined for absent keys", (store) =>
      Effect.gen(function* () {
        const [a, b, c] = [fresh("m"), fresh("m"), fresh("m")]
        yield* store.set(a, "1")
        yield* store.set(c, "3")
        assert.deepStrictEqual(yield* store.getMany([a, b, c]), ["1", undefined, "3"])
        assert.deepStrictEqual(yield* store.getMany([]), [])
      }))

    test("ttl reports the remaining milliseconds, -1 without expiry, undefined when absent", (store) =>
      Effect.gen(function* () {
        const [a, b] = [fresh("ttl"), fresh("ttl")]
        yield* store.set(a, "1", { ttlMs: 60_000 })
        yield* store.set(b, "1")
        const remaining = yield* store.ttl(a)
        assert.isDefined(remaining)
        assert.isTrue(remaining! > 55_000 && remaining! <= 60_000, `remaining ${remaining}`)
        assert.strictEqual(yield* store.ttl(b), -1)
        assert.isUndefined(yield* store.ttl(fresh("ttl")))
      }))

    test("getWithTtl answers the string, its remaining TTL and its tags in one read, as get answers it", (store) =>
      Effect.gen(function* () {
        const [a, b, c, leased] = [fresh("gt"), fresh("gt"), fresh("gt"), fresh("gt")]
        const tag = fresh("gt-tag")
        yield* store.set(a, '"x"', { ttlMs: 60_000 })
        yield* store.set(b, "1")
        yield* store.set(c, "[1]", { ttlMs: 60_000, tags: [tag, "other"] })
        const withTtl = (yield* store.getWithTtl(a))!
        assert.strictEqual(withTtl.value, '"x"')
        assert.isTrue(withTtl.ttlMs > 55_000 && withTtl.ttlMs <= 60_000, `remaining ${withTtl.ttlMs}`)
        assert.deepStrictEqual(withTtl.tags, [])
        assert.deepStrictEqual(yield* store.getWithTtl(b), { value: "1", ttlMs: -1, tags: [] })
        const tagged = (yield* store.getWithTtl(c))!
        assert.strictEqual(tagged.value, "[1]")
        assert.deepStrictEqual([...tagged.tags].sort(), ["other", tag].sort())
        assert.isUndefined(yield* store.getWithTtl(fresh("gt")))
        yield* store.lease(leased, "t", 60_000)
        assert.isUndefined(yield* store.getWithTtl(leased), "a lease is not an entry")
        yield* store.deleteTagged([tag])
        assert.isUndefined(yield* store.getWithTtl(c))
      }))

    test("readWithTtl answers the whole value of any type with its remaining TTL and tags", (store) =>
      Effect.gen(function* () {
        const [a, b] = [fresh("rt"), fresh("rt")]
        const tag = fresh("rt-tag")
        yield* store.write(a, { type: "set", value: ["x"] }, { ttlMs: 60_000, tags: [tag] })
        yield* store.write(b, { type: "string", value: "2" })
        const set = (yield* store.readWithTtl(a))!
        assert.deepStrictEqual(set.value, { type: "set", value: ["x"] })
        assert.isTrue(set.ttlMs > 55_000 && set.ttlMs <= 60_000, `remaining ${set.ttlMs}`)
        assert.deepStrictEqual(set.tags, [tag])
        assert.deepStrictEqual(yield* store.readWithTtl(b), {
          value: { type: "string", value: "2" },
          ttlMs: -1,
          tags: []
        })
        assert.isUndefined(yield* store.readWithTtl(fresh("rt")))
      }))

    test("an entry expires once its TTL has passed, and not before", (store) =>
      Effect.gen(function* () {
        const key = fresh("exp")
        const ttl = options.clock === "test" ? 10_000 : 40
        yield* store.set(key, "1", { ttlMs: ttl })
        if (options.clock === "test") {
          yield* TestClock.adjust(ttl - 1)
          assert.strictEqual(yield* store.get(key), "1")
        }
        yield* elapse(
          options.clock === "test" ? 1 : ttl,
          Effect.map(store.exists(key), (e) => !e)
        )
        assert.isUndefined(yield* store.get(key))
        assert.isFalse(yield* store.exists(key))
      }))

    test("delete counts only the live entries it removed", (store) =>
      Effect.gen(function* () {
        const [a, b, h, missing] = [fresh("del"), fresh("del"), fresh("del"), fresh("del")]
        yield* store.set(a, "1")
        yield* store.set(b, "2")
        yield* store.hashSet(h, { f: "v" })
        assert.strictEqual(yield* store.delete([a, b, h, missing]), 3)
        assert.strictEqual(yield* store.delete([a]), 0)
        assert.strictEqual(yield* store.delete([]), 0)
        assert.isFalse(yield* store.exists(h))
      }))

    test("a lease hides the key: get is undefined, exists false, delete counts nothing", (store) =>
      Effect.gen(function* () {
        const key = fresh("lease")
        assert.deepStrictEqual(yield* store.lease(key, "t1", 10_000), { _tag: "Acquired" })
        assert.isUndefined(yield* store.get(key))
        assert.deepStrictEqual(yield* store.getMany([key]), [undefined])
        assert.isFalse(yield* store.exists(key))
        assert.isUndefined(yield* store.ttl(key))
        assert.isUndefined(yield* store.read(key))
        assert.strictEqual(yield* store.delete([key]), 0)
      }))

    test("fill writes only while its own lease is in place, and only once", (store) =>
      Effect.gen(function* () {
        const key = fresh("fill")
        yield* store.lease(key, "t1", 10_000)
        assert.isTrue(yield* store.fill(key, "t1", '"loaded"', { ttlMs: 60_000 }))
        assert.strictEqual(yield* store.get(key), '"loaded"')
        assert.isTrue((yield* store.ttl(key))! > 0)
        assert.isFalse(yield* store.fill(key, "t1", '"again"'))
        assert.strictEqual(yield* store.get(key), '"loaded"')
      }))

    test("lease on a present value answers the value and leaves it in place", (store) =>
      Effect.gen(function* () {
        const key = fresh("present")
        yield* store.set(key, '"there"')
        assert.deepStrictEqual(yield* store.lease(key, "t1", 10_000), { _tag: "Present", value: '"there"' })
        assert.strictEqual(yield* store.get(key), '"there"')
      }))

    test("a delete during a load fences it: the fill does not write back", (store) =>
      Effect.gen(function* () {
        const key = fresh("fence-del")
        yield* store.lease(key, "t1", 10_000)
        yield* store.delete([key])
        assert.isFalse(yield* store.fill(key, "t1", '"stale"'))
        assert.isUndefined(yield* store.get(key))
      }))

    test("a set during a load fences it: the newer value stays", (store) =>
      Effect.gen(function* () {
        const key = fresh("fence-set")
        yield* store.lease(key, "t1", 10_000)
        yield* store.set(key, '"newer"')
        assert.isFalse(yield* store.fill(key, "t1", '"stale"'))
        assert.strictEqual(yield* store.get(key), '"newer"')
      }))

    test("a newer lease fences the older one", (store) =>
      Effect.gen(function* () {
        const key = fresh("fence-lease")
        yield* store.lease(key, "old", 10_000)
        assert.deepStrictEqual(yield* store.lease(key, "new", 10_000), { _tag: "Acquired" })
        assert.isFalse(yield* store.fill(key, "old", '"old"'))
        assert.isTrue(yield* store.fill(key, "new", '"new"'))
        assert.strictEqual(yield* store.get(key), '"new"')
      }))

    test("release removes only its own lease", (store) =>
      Effect.gen(function* () {
        const key = fresh("release")
        yield* store.lease(key, "t1", 10_000)
        yield* store.release(key, "other")
        assert.isTrue(yield* store.fill(key, "t1", '"v"'))
        const key2 = fresh("release")
        yield* store.lease(key2, "t2", 10_000)
        yield* store.release(key2, "t2")
        assert.isFalse(yield* store.fill(key2, "t2", '"v"'))
        assert.isUndefined(yield* store.get(key2))
      }))

    test("a refresh lease keeps the entry readable, with its TTL and tags, until the fill replaces it", (store) =>
      Effect.gen(function* () {
        const [key, tag] = [fresh("refresh"), fresh("refresh-tag")]
        yield* store.set(key, '"old"', { ttlMs: 60_000, tags: [tag] })
        assert.deepStrictEqual(yield* store.lease(key, "t1", 10_000, [tag], "refresh"), { _tag: "Acquired" })
        assert.strictEqual(yield* store.get(key), '"old"')
        assert.deepStrictEqual(yield* store.getMany([key]), ['"old"'])
        const read = yield* store.getWithTtl(key)
        assert.strictEqual(read?.value, '"old"')
        assert.deepStrictEqual(read?.tags, [tag])
        assert.isTrue(read!.ttlMs > 10_000, "the entry keeps its own TTL, not the lease's")
        assert.deepStrictEqual(yield* store.readWithTtl(key).pipe(Effect.map((r) => r?.value)), {
          type: "string",
          value: '"old"'
        })
        assert.isTrue(yield* store.exists(key))
        assert.deepStrictEqual(yield* store.lease(key, "t2", 10_000, [], "fill"), { _tag: "Present", value: '"old"' })
        assert.isTrue(yield* store.fill(key, "t1", '"new"', { ttlMs: 60_000, tags: [tag] }))
        assert.strictEqual(yield* store.get(key), '"new"')
        assert.isFalse(yield* store.fill(key, "t1", '"again"'))
      }))

    test("a write, a delete, a pattern or a tag removes a refreshed entry and fences its reload", (store) =>
      Effect.gen(function* () {
        const [a, b, c, d, tag, leaseTag] = [
          fresh("rf-set"),
          fresh("rf-del"),
          fresh("rf-pattern"),
          fresh("rf-tag"),
          fresh("rf-t"),
          fresh("rf-lt")
        ]
        for (const key of [a, b, c]) yield* store.set(key, '"old"')
        yield* store.set(d, '"old"', { tags: [tag] })
        for (const key of [a, b, c, d]) yield* store.lease(key, "t", 10_000, [leaseTag], "refresh")
        yield* store.set(a, '"newer"')
        assert.strictEqual(yield* store.delete([b]), 1, "the kept entry is a live entry")
        assert.strictEqual(yield* store.deletePattern(c), 1)
        assert.strictEqual(yield* store.deleteTagged([tag]), 1)
        for (const key of [a, b, c, d]) assert.isFalse(yield* store.fill(key, "t", '"stale"'), key)
        assert.strictEqual(yield* store.get(a), '"newer"')
        for (const key of [b, c, d]) assert.isUndefined(yield* store.get(key), key)
      }))

    test("a tag the reload carries fences it, though the kept entry lacks the tag", (store) =>
      Effect.gen(function* () {
        const [key, leaseTag] = [fresh("rf-lease-tag"), fresh("rf-lease-tag")]
        yield* store.set(key, '"old"')
        yield* store.lease(key, "t", 10_000, [leaseTag], "refresh")
        assert.strictEqual(yield* store.deleteTagged([leaseTag]), 0, "the kept entry does not carry the tag")
        assert.isFalse(yield* store.fill(key, "t", '"stale"', { tags: [leaseTag] }))
      }))

    test("release of a refresh lease keeps the entry, unless told not to", (store) =>
      Effect.gen(function* () {
        const [kept, dropped] = [fresh("rf-keep"), fresh("rf-drop")]
        for (const key of [kept, dropped]) {
          yield* store.set(key, '"old"', { ttlMs: 60_000 })
          yield* store.lease(key, "t", 10_000, [], "refresh")
        }
        yield* store.release(kept, "other")
        yield* store.release(kept, "t")
        assert.strictEqual(yield* store.get(kept), '"old"')
        assert.isTrue((yield* store.ttl(kept))! > 10_000, "its TTL is unchanged")
        assert.isFalse(yield* store.fill(kept, "t", '"late"'), "the lease is gone")
        yield* store.release(dropped, "t", false)
        assert.isUndefined(yield* store.get(dropped))
      }))

    test("a refresh lease on a missing key is a plain lease", (store) =>
      Effect.gen(function* () {
        const key = fresh("rf-missing")
        assert.deepStrictEqual(yield* store.lease(key, "t", 10_000, [], "refresh"), { _tag: "Acquired" })
        assert.isUndefined(yield* store.get(key))
        assert.isTrue(yield* store.fill(key, "t", '"v"'))
        assert.strictEqual(yield* store.get(key), '"v"')
      }))

    test("an expired lease cannot be filled", (store) =>
      Effect.gen(function* () {
        const key = fresh("lease-exp")
        const leaseMs = options.clock === "test" ? 5_000 : 40
        const tag = fresh("lease-exp-tag")
        yield* store.lease(key, "t1", leaseMs, [tag])
        // The tag index lists a key while anything (a lease included) is stored under it.
        yield* elapse(
          leaseMs,
          Effect.map(store.tagged(tag), (keys) => keys.length === 0)
        )
        assert.isFalse(yield* store.fill(key, "t1", '"late"'))
        assert.isUndefined(yield* store.get(key))
      }))

    test("tags are recorded on set, fill and lease, and tagged answers only live keys", (store) =>
      Effect.gen(function* () {
        const tag = fresh("tag")
        const [a, b, c] = [fresh("tagged"), fresh("tagged"), fresh("tagged")]
        yield* store.set(a, "1", { tags: [tag] })
        yield* store.lease(b, "t", 10_000, [tag])
        yield* store.write(c, { type: "set", value: ["x"] }, { tags: [tag, "other"] })
        assert.deepStrictEqual([...(yield* store.tagged(tag))].sort(), [a, b, c].sort())
        yield* store.delete([a])
        assert.deepStrictEqual([...(yield* store.tagged(tag))].sort(), [b, c].sort())
        assert.isTrue(yield* store.fill(b, "t", "2", { tags: [tag] }))
        assert.deepStrictEqual([...(yield* store.tagged(tag))].sort(), [b, c].sort())
      }))

    test("write replaces the whole value with each data type and read returns it", (store) =>
      Effect.gen(function* () {
        const key = fresh("write")
        yield* store.write(key, { type: "string", value: "s" })
        assert.deepStrictEqual(yield* store.read(key), { type: "string", value: "s" })
        yield* store.write(key, { type: "hash", value: { a: "1", b: "2" } }, { ttlMs: 60_000 })
        assert.deepStrictEqual(yield* store.read(key), { type: "hash", value: { a: "1", b: "2" } })
        assert.isTrue((yield* store.ttl(key))! > 0)
        yield* store.write(key, { type: "set", value: ["x", "y"] })
        const set = yield* store.read(key)
        assert.deepStrictEqual(set?.type === "set" ? [...set.value].sort() : set, ["x", "y"])
        assert.strictEqual(yield* store.ttl(key), -1)
        yield* store.write(key, {
          type: "sorted_set",
          value: [
            { member: "b", score: 2 },
            { member: "a", score: 1.5 }
          ]
        })
        assert.deepStrictEqual(yield* store.read(key), {
          type: "sorted_set",
          value: [
            { member: "a", score: 1.5 },
            { member: "b", score: 2 }
          ]
        })
        yield* store.write(key, { type: "list", value: ["z", "a", "z"] })
        assert.deepStrictEqual(yield* store.read(key), { type: "list", value: ["z", "a", "z"] })
      }))

    test("writing an empty collection leaves the key absent", (store) =>
      Effect.gen(function* () {
        const key = fresh("empty")
        yield* store.set(key, "1")
        yield* store.write(key, { type: "list", value: [] })
        assert.isFalse(yield* store.exists(key))
        assert.isUndefined(yield* store.read(key))
      }))

    test("hash, set, sorted-set and list operations merge and answer as Redis does", (store) =>
      Effect.gen(function* () {
        const [h, s, z, l] = [fresh("h"), fresh("s"), fresh("z"), fresh("l")]
        yield* store.hashSet(h, { a: "1" })
        yield* store.hashSet(h, { b: "2", a: "3" }, { ttlMs: 60_000 })
        assert.strictEqual(yield* store.hashGet(h, "a"), "3")
        assert.isUndefined(yield* store.hashGet(h, "nope"))
        assert.isTrue((yield* store.ttl(h))! > 0)

        assert.strictEqual(yield* store.setAdd(s, ["a", "b"]), 2)
        assert.strictEqual(yield* store.setAdd(s, ["b", "c"]), 1)
        assert.isTrue(yield* store.setHas(s, "c"))
        assert.isFalse(yield* store.setHas(s, "d"))

        assert.strictEqual(
          yield* store.sortedSetAdd(z, [
            { member: "x", score: 3 },
            { member: "y", score: 1 }
          ]),
          2
        )
        assert.strictEqual(
          yield* store.sortedSetAdd(z, [
            { member: "x", score: 0 },
            { member: "w", score: 2 }
          ]),
          1
        )
        assert.deepStrictEqual(yield* store.sortedSetRange(z, 0, -1), [
          { member: "x", score: 0 },
          { member: "y", score: 1 },
          { member: "w", score: 2 }
        ])
        assert.deepStrictEqual(yield* store.sortedSetRange(z, -2, -2), [{ member: "y", score: 1 }])

        assert.strictEqual(yield* store.listPush(l, ["a", "b"]), 2)
        assert.strictEqual(yield* store.listPush(l, ["c"]), 3)
        assert.deepStrictEqual(yield* store.listRange(l, 0, -1), ["a", "b", "c"])
        assert.deepStrictEqual(yield* store.listRange(l, 1, 1), ["b"])
        assert.deepStrictEqual(yield* store.listRange(l, 5, 9), [])
        assert.deepStrictEqual(yield* store.listRange(fresh("l"), 0, -1), [])
      }))

    test("an operation on a key of another type fails with WrongType", (store) =>
      Effect.gen(function* () {
        const [h, s] = [fresh("wt"), fresh("wt")]
        yield* store.hashSet(h, { a: "1" })
        yield* store.set(s, "1")
        const reason = (effect: Effect.Effect<unknown, CacheStoreError>) =>
          Effect.match(effect, { onFailure: (e) => e.reason, onSuccess: () => "succeeded" })
        assert.strictEqual(yield* reason(store.get(h)), "WrongType")
        assert.strictEqual(yield* reason(store.hashGet(s, "a")), "WrongType")
        assert.strictEqual(yield* reason(store.listPush(h, ["x"])), "WrongType")
        assert.strictEqual(yield* reason(store.lease(h, "t", 1000)), "WrongType")
        assert.deepStrictEqual(yield* store.getMany([h, s]), [undefined, "1"])
      }))

    test("deletePattern removes exactly the live keys matching, leases included, and counts only entries", (store) =>
      Effect.gen(function* () {
        const prefix = fresh("pat")
        yield* store.set(`${prefix}:a`, "1")
        yield* store.set(`${prefix}:b`, "2", { tags: [`${prefix}-tag`] })
        yield* store.hashSet(`${prefix}:h`, { f: "v" })
        yield* store.set(`${prefix}x`, '"not matched"')
        yield* store.lease(`${prefix}:leased`, "t", 10_000)
        assert.strictEqual(yield* store.deletePattern(`${prefix}:*`, 2), 3)
        assert.isFalse(yield* store.fill(`${prefix}:leased`, "t", '"stale"'))
        assert.strictEqual(yield* store.get(`${prefix}x`), '"not matched"')
        assert.strictEqual(yield* store.deletePattern(`${prefix}:*`), 0)
        // The toolkit's own keys never match a pattern: tags keep working after a broad one.
        yield* store.set(`${prefix}:c`, "3", { tags: [`${prefix}-tag`] })
        assert.strictEqual(yield* store.deletePattern(`${prefix}:[ab]`), 0)
        assert.strictEqual(yield* store.deleteTagged([`${prefix}-tag`]), 1)
      }))

    test("deleteTagged removes every live entry carrying any of the tags, counted once each", (store) =>
      Effect.gen(function* () {
        const [t1, t2, other] = [fresh("t1"), fresh("t2"), fresh("t3")]
        const [a, b, c, d, e] = [fresh("dt"), fresh("dt"), fresh("dt"), fresh("dt"), fresh("dt")]
        yield* store.set(a, "1", { tags: [t1] })
        yield* store.set(b, "2", { tags: [t1, t2] })
        yield* store.write(c, { type: "list", value: ["x"] }, { tags: [t2] })
        yield* store.set(d, "4", { tags: [other] })
        // Rewritten without the tag: no longer carries it.
        yield* store.set(e, "5", { tags: [t1] })
        yield* store.set(e, "5")
        assert.strictEqual(yield* store.deleteTagged([t1, t2]), 3)
        assert.isFalse(yield* store.exists(a))
        assert.isFalse(yield* store.exists(b))
        assert.isFalse(yield* store.exists(c))
        assert.strictEqual(yield* store.get(d), "4")
        assert.strictEqual(yield* store.get(e), "5")
        assert.strictEqual(yield* store.deleteTagged([t1, t2]), 0)
      }))

    test("deleteTagged fences a load leased with the tag", (store) =>
      Effect.gen(function* () {
        const [tag, key] = [fresh("ft"), fresh("fk")]
        yield* store.lease(key, "t", 10_000, [tag])
        assert.strictEqual(yield* store.deleteTagged([tag]), 0)
        assert.isFalse(yield* store.fill(key, "t", '"stale"', { tags: [tag] }))
      }))

    test("a tagged entry keeps its tags through reads and collection merges", (store) =>
      Effect.gen(function* () {
        const [tag, s, h] = [fresh("keep"), fresh("ks"), fresh("kh")]
        yield* store.set(s, '"v"', { tags: [tag] })
        assert.strictEqual(yield* store.get(s), '"v"')
        assert.deepStrictEqual(yield* store.getMany([s]), ['"v"'])
        assert.deepStrictEqual(yield* store.read(s), { type: "string", value: '"v"' })
        yield* store.write(h, { type: "hash", value: { a: "1" } }, { tags: [tag], ttlMs: 60_000 })
        yield* store.hashSet(h, { b: "2" }, { ttlMs: 120_000 })
        assert.deepStrictEqual(yield* store.read(h), { type: "hash", value: { a: "1", b: "2" } })
        assert.deepStrictEqual([...(yield* store.tagged(tag))].sort(), [h, s].sort())
        assert.strictEqual(yield* store.deleteTagged([tag]), 2)
      }))

    test("the tag index empties itself once its tagged entries have expired", (store) =>
      Effect.gen(function* () {
        const tag = fresh("expiring")
        const ttl = options.clock === "test" ? 10_000 : 50
        const before = (yield* store.info).tagIndexEntries
        for (let i = 0; i < 50; i++) yield* store.set(fresh("exp-tagged"), "1", { tags: [tag], ttlMs: ttl })
        assert.strictEqual((yield* store.info).tagIndexEntries, before + 50)
        yield* elapse(
          ttl,
          Effect.map(store.info, (info) => info.tagIndexEntries <= before)
        )
        assert.isAtMost((yield* store.info).tagIndexEntries, before)
        assert.deepStrictEqual(yield* store.tagged(tag), [])
        assert.strictEqual(yield* store.deleteTagged([tag]), 0)
      }))

    test("info counts keys, and ping answers while the store is up", (store) =>
      Effect.gen(function* () {
        yield* store.set(fresh("info"), "1")
        const info = yield* store.info
        assert.isTrue(info.keys >= 1)
        assert.isTrue(info.maxMemory >= 0 && info.usedMemory >= 0 && info.evictedKeys >= 0)
        yield* store.ping
      }))
  })
}
