/**
 * The L1: an in-process near-cache of string entries in front of the store, bounded by entries and by bytes (the
 * stored JSON text's length), with LRU order and a TinyLFU admission (a count-min sketch of recent key frequencies:
 * a newcomer only displaces the LRU victim if it has been asked for more often). An entry keeps the stored text, the
 * decoded value and the codec that decoded it, its tags, and an expiry never later than the store entry's nor the
 * L1's maximum TTL.
 *
 * Coherence: every invalidation removes what it covers at once, and bumps a stamp — a read or a load captures the
 * stamp when it starts (`begin`) and its result enters only if no invalidation covering its key happened since
 * (`admit`), so a read that raced an invalidation never brings the old value back.
 */
import { Effect } from "effect"
import * as Glob from "../../src/Glob.ts"
import type { Target } from "../../src/InvalidationEvent.ts"
import type { Codec } from "./Codec.ts"

/** How big the L1 may grow and how long an entry may live in it. */
export interface L1Options {
  readonly maxEntries: number
  /** Bound on the sum of the entries' JSON text lengths; unbounded when absent. */
  readonly maxBytes?: number | undefined
  /** Longest an entry may live in the L1 (never longer than its store TTL either); unbounded when absent. */
  readonly ttlMs?: number | undefined
  /** `"tinylfu"` (default): frequency-aware admission; `"lru"`: admit everything (kept for the measurement). */
  readonly policy?: "tinylfu" | "lru" | undefined
}

/** One L1 entry; also a node of the LRU list. */
export interface Entry {
  readonly key: string
  readonly text: string
  /** The value decoded by `codec`; `codec` is undefined until some caller decoded the text. */
  value: unknown
  codec: Codec<any> | undefined
  readonly tags: ReadonlyArray<string>
  /** When the L1 drops it (epoch ms): the earliest of the store's expiry and the L1 maximum. */
  readonly expiresAt: number
  /** When the store entry expires (epoch ms), `Infinity` for never: what a GET answers as its TTL. */
  readonly storeExpiresAt: number
  /** When a hit on it should start a background refresh (eager refresh), `Infinity` for never. */
  readonly refreshAt: number
  readonly hash: number
  prev: Entry | undefined
  next: Entry | undefined
}

/** FNV-1a over the key's UTF-16 code units. */
const hashOf = (key: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** A count-min sketch of 4 rows of saturating 8-bit counters, halved every `10 × capacity` increments (aging). */
class FrequencySketch {
  private readonly table: Uint8Array
  private readonly mask: number
  private readonly sampleSize: number
  private additions = 0

  constructor(capacity: number) {
    let width = 16
    while (width < capacity) width *= 2
    this.table = new Uint8Array(width * 4)
    this.mask = width - 1
    this.sampleSize = 10 * Math.max(capacity, 16)
  }

  private index(hash: number, row: number): number {
    const h = Math.imul(hash ^ (row * 0x9e3779b9), 0x85ebca6b)
    return row * (this.mask + 1) + ((h ^ (h >>> 15)) & this.mask)
  }

  increment(hash: number): void {
    for (let row = 0; row < 4; row++) {
      const i = this.index(hash, row)
      if (this.table[i]! < 255) this.table[i]!++
    }
    if (++this.additions >= this.sampleSize) {
      this.additions = 0
      for (let i = 0; i < this.table.length; i++) this.table[i]! >>= 1
    }
  }

  estimate(hash: number): number {
    let min = 255
    for (let row = 0; row < 4; row++) min = Math.min(min, this.table[this.index(hash, row)]!)
    return min
  }
}

/** Stamps remembered per key before they are all forgotten at once (which rejects every read then in progress). */
const maxRecentStamps = 10_000

/** The L1 of one cache. */
export class L1 {
  hits = 0
  misses = 0
  private readonly entries = new Map<string, Entry>()
  private bytes = 0
  /** Most recently used first. */
  private head: Entry | undefined = undefined
  private tail: Entry | undefined = undefined
  private readonly sketch: FrequencySketch | undefined
  private readonly maxEntries: number
  private readonly maxBytes: number
  private readonly ttlMs: number
  /** Bumped by every invalidation. */
  private stamp = 0
  /** The stamp of the last invalidation that covered more than known keys (pattern, tag, flush). */
  private globalStamp = 0
  /** The stamp of the last invalidation of each key, since `globalStamp`. */
  private readonly recent = new Map<string, number>()

  constructor(options: L1Options) {
    this.maxEntries = Math.max(1, options.maxEntries)
    this.maxBytes = options.maxBytes ?? Infinity
    this.ttlMs = options.ttlMs ?? Infinity
    this.sketch = options.policy === "lru" ? undefined : new FrequencySketch(this.maxEntries)
  }

  /** Live entries. */
  get size(): number {
    return this.entries.size
  }

  /** Bytes of JSON text held. */
  get usedBytes(): number {
    return this.bytes
  }

  /** The live entry of `key` at `now` (made most recent), counted as a hit; undefined (a miss) otherwise. */
  get(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) {
      this.misses++
      if (this.sketch !== undefined) this.sketch.increment(hashOf(key))
      return undefined
    }
    if (entry.expiresAt <= now) {
      this.unlink(entry)
      this.misses++
      return undefined
    }
    this.hits++
    if (this.sketch !== undefined) this.sketch.increment(entry.hash)
    if (this.head !== entry) {
      this.detach(entry)
      this.pushFront(entry)
    }
    return entry
  }

  /** The stamp a read or load of some key captures when it starts, for `admit`. */
  begin(): number {
    return this.stamp
  }

  /**
   * Offers what a read or fill that began at `stamp` found; it enters unless an invalidation covering `key` came
   * since, it is already expired, or it is too big or less wanted than what it would evict. `ttlMs` is the store's
   * remaining TTL when the read began (-1: none); with a stamped entry, its remaining freshness.
   */
  admit(
    key: string,
    stamp: number,
    text: string,
    value: unknown,
    codec: Codec<any> | undefined,
    tags: ReadonlyArray<string>,
    ttlMs: number,
    startedAt: number,
    refreshAt = Infinity
  ): void {
    if (stamp < this.globalStamp) return
    if (this.recent.size > 0) {
      const last = this.recent.get(key)
      if (last !== undefined && last > stamp) return
    }
    if (ttlMs === 0 || text.length > this.maxBytes) return
    const storeExpiresAt = ttlMs < 0 ? Infinity : startedAt + ttlMs
    const expiresAt = Math.min(storeExpiresAt, startedAt + this.ttlMs)
    const existing = this.entries.get(key)
    if (existing !== undefined) this.unlink(existing)
    const hash = existing?.hash ?? hashOf(key)
    while (this.entries.size >= this.maxEntries || this.bytes + text.length > this.maxBytes) {
      const victim = this.tail!
      if (this.sketch !== undefined && this.sketch.estimate(hash) <= this.sketch.estimate(victim.hash)) return
      this.unlink(victim)
    }
    const entry: Entry = {
      key,
      text,
      value,
      codec,
      tags,
      expiresAt,
      storeExpiresAt,
      refreshAt,
      hash,
      prev: undefined,
      next: undefined
    }
    this.entries.set(key, entry)
    this.bytes += text.length
    this.pushFront(entry)
  }

  /** Removes what `target` covers, before the store is touched; reads in progress of those keys will not enter. */
  invalidate(target: Target): void {
    switch (target.invalidation_type) {
      case "key":
        return this.invalidateKey(target.key)
      case "pattern":
        this.globalStamp = ++this.stamp
        this.recent.clear()
        for (const entry of this.entries.values()) if (Glob.matches(target.pattern, entry.key)) this.unlink(entry)
        return
      case "tag":
        this.globalStamp = ++this.stamp
        this.recent.clear()
        for (const entry of this.entries.values()) {
          if (entry.tags.length > 0 && entry.tags.some((tag) => target.tags.includes(tag))) this.unlink(entry)
        }
    }
  }

  /** Removes `key` (a local write or delete); a read of it in progress will not enter. */
  invalidateKey(key: string): void {
    const entry = this.entries.get(key)
    if (entry !== undefined) this.unlink(entry)
    this.stamp++
    if (this.recent.size >= maxRecentStamps) {
      this.recent.clear()
      this.globalStamp = this.stamp
    } else this.recent.set(key, this.stamp)
  }

  /** Removes everything (a flush); no read in progress will enter. */
  clear(): void {
    this.globalStamp = ++this.stamp
    this.recent.clear()
    this.entries.clear()
    this.bytes = 0
    this.head = this.tail = undefined
  }

  private unlink(entry: Entry): void {
    this.entries.delete(entry.key)
    this.bytes -= entry.text.length
    this.detach(entry)
  }

  private detach(entry: Entry): void {
    if (entry.prev === undefined) this.head = entry.next
    else entry.prev.next = entry.next
    if (entry.next === undefined) this.tail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = entry.next = undefined
  }

  private pushFront(entry: Entry): void {
    entry.next = this.head
    if (this.head !== undefined) this.head.prev = entry
    this.head = entry
    if (this.tail === undefined) this.tail = entry
  }
}

/** The L1 `options` describe; none when absent or when `maxEntries` is 0. */
export const make = (options: L1Options | undefined): L1 | undefined =>
  options === undefined || options.maxEntries <= 0 ? undefined : new L1(options)

/**
 * `write` of `key`, with the key removed from the L1 before it runs and again once it is done (so a read that raced
 * the write and read the old value leaves nothing behind); `write` itself without an L1.
 */
export const removingKey = <A>(l1: L1 | undefined, key: string, write: Effect.Effect<A>): Effect.Effect<A> =>
  l1 === undefined
    ? write
    : Effect.suspend(() => {
        l1.invalidateKey(key)
        return Effect.ensuring(
          write,
          Effect.sync(() => l1.invalidateKey(key))
        )
      })

/** `flush`, with the L1 emptied before it runs and again once it is done; `flush` itself without an L1. */
export const removingAll = <A>(l1: L1 | undefined, flush: Effect.Effect<A>): Effect.Effect<A> =>
  l1 === undefined
    ? flush
    : Effect.suspend(() => {
        l1.clear()
        return Effect.ensuring(
          flush,
          Effect.sync(() => l1.clear())
        )
      })
