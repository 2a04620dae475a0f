/**
 * The L1 structure on its own: LRU order, bounds, TinyLFU admission, expiry and the invalidation stamps that keep a
 * raced read out.
 */
import { assert, describe, it } from "vitest"
import { L1 } from "../../../effects/internal/L1.ts"

const offer = (l1: L1, key: string, text = "1", stamp = l1.begin(), ttlMs = -1, at = 0) =>
  l1.admit(key, stamp, text, undefined, undefined, [], ttlMs, at)

describe("L1", () => {
  it("evicts the least recently used entry when full (LRU policy)", () => {
    const l1 = new L1({ maxEntries: 2, policy: "lru" })
    offer(l1, "a")
    offer(l1, "b")
    l1.get("a", 0)
    offer(l1, "c")
    assert.isDefined(l1.get("a", 0))
    assert.isUndefined(l1.get("b", 0))
    assert.isDefined(l1.get("c", 0))
  })

  it("does not let a one-off key displace a frequently read one (TinyLFU admission)", () => {
    const l1 = new L1({ maxEntries: 2 })
    offer(l1, "hot1")
    offer(l1, "hot2")
    for (let i = 0; i < 5; i++) {
      l1.get("hot1", 0)
      l1.get("hot2", 0)
    }
    for (let i = 0; i < 20; i++) {
      l1.get(`cold:${i}`, 0)
      offer(l1, `cold:${i}`)
    }
    assert.isDefined(l1.get("hot1", 0))
    assert.isDefined(l1.get("hot2", 0))
    // A key read more often than the LRU victim gets in.
    for (let i = 0; i < 10; i++) l1.get("rising", 0)
    offer(l1, "rising")
    assert.isDefined(l1.get("rising", 0))
  })

  it("keeps its bytes under maxBytes and refuses a text larger than the bound", () => {
    const l1 = new L1({ maxEntries: 100, maxBytes: 10, policy: "lru" })
    offer(l1, "a", "12345")
    offer(l1, "b", "12345")
    offer(l1, "c", "123")
    assert.isAtMost(l1.usedBytes, 10)
    offer(l1, "big", "12345678901")
    assert.isUndefined(l1.get("big", 0))
  })

  it("expires an entry at the earlier of the store's remaining TTL and its maximum TTL", () => {
    const l1 = new L1({ maxEntries: 10, ttlMs: 1000 })
    offer(l1, "store-bound", "1", l1.begin(), 500, 100)
    offer(l1, "l1-bound", "1", l1.begin(), 5000, 100)
    assert.isDefined(l1.get("store-bound", 599))
    assert.isUndefined(l1.get("store-bound", 600))
    assert.isDefined(l1.get("l1-bound", 1099))
    assert.isUndefined(l1.get("l1-bound", 1100))
  })

  it("refuses what a read began before an invalidation covering its key, and accepts other keys' reads", () => {
    const l1 = new L1({ maxEntries: 10 })
    const before = l1.begin()
    l1.invalidateKey("a")
    offer(l1, "a", "old", before)
    assert.isUndefined(l1.get("a", 0))
    offer(l1, "b", "ok", before)
    assert.isDefined(l1.get("b", 0), "a key invalidation does not refuse other keys")
    const beforeTag = l1.begin()
    l1.invalidate({ invalidation_type: "tag", tags: ["t"] })
    offer(l1, "c", "old", beforeTag)
    assert.isUndefined(l1.get("c", 0), "a tag, pattern or flush refuses every read that began before it")
    offer(l1, "c", "new")
    assert.isDefined(l1.get("c", 0))
  })
})
