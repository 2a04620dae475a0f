/**
 * An in-process `CacheStore` for unit tests and for running without Redis. It follows Redis's semantics where
 * the contract suite pins them (wrong-type errors, empty collections never stored, exact delete counts), and
 * takes time from Effect's `Clock`, so `TestClock` drives expiry. Lease and fill are atomic because each
 * operation runs to completion on the single JS thread.
 */
import { Clock, Effect, Layer } from "effect"
import {
  CacheStore,
  CacheStoreError,
  type LeaseResult,
  type StoreInfo,
  type TtlOptions,
  type WithTtl,
  type WriteOptions
} from "../../src/CacheStore.ts"
import type { CacheValue, ScoredMember } from "../../src/CacheValue.ts"
import * as Glob from "../../src/Glob.ts"

type Data =
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "lease"; readonly token: string }
  | { readonly type: "hash"; readonly value: Map<string, string> }
  | { readonly type: "set"; readonly value: Set<string> }
  | { readonly type: "sorted_set"; readonly value: Map<string, number> }
  | { readonly type: "list"; readonly value: Array<string> }

interface Slot {
  data: Data
  /** Epoch milliseconds; `Infinity` when the entry never expires. */
  expiresAt: number
  /** The tags the entry (or the lease) was written with. */
  tags: ReadonlyArray<string>
  /** A refresh lease over this (string) entry: any write or delete of the key replaces the slot, and so drops it. */
  refresh?: { readonly token: string; readonly tags: ReadonlyArray<string> } | undefined
}

const noTags: ReadonlyArray<string> = []

const acquired: LeaseResult = { _tag: "Acquired" }

const wrongType = (operation: string, key: string) =>
  new CacheStoreError({
    operation,
    key,
    reason: "WrongType",
    cause: new Error("WRONGTYPE Operation against a key holding the wrong kind of value")
  })

const byScore = (a: ScoredMember, b: ScoredMember) =>
  a.score - b.score || (a.member < b.member ? -1 : a.member > b.member ? 1 : 0)

/** Redis-style inclusive range with negative indexes counted from the end. */
const range = <A>(items: ReadonlyArray<A>, start: number, stop: number): Array<A> => {
  const n = items.length
  const from = Math.max(0, start < 0 ? n + start : start)
  const to = Math.min(n - 1, stop < 0 ? n + stop : stop)
  return from > to ? [] : items.slice(from, to + 1)
}

const withNow = <A, E>(f: (now: number) => Effect.Effect<A, E>) => Effect.flatMap(Clock.currentTimeMillis, f)
const syncNow = <A>(f: (now: number) => A) => Effect.map(Clock.currentTimeMillis, f)

const toValue = (data: Data): CacheValue | undefined => {
  switch (data.type) {
    case "lease":
      return undefined
    case "string":
      return { type: "string", value: data.value }
    case "hash":
      return { type: "hash", value: Object.fromEntries(data.value) }
    case "set":
      return { type: "set", value: [...data.value] }
    case "sorted_set":
      return {
        type: "sorted_set",
        value: [...data.value].map(([member, score]) => ({ member, score })).sort(byScore)
      }
    case "list":
      return { type: "list", value: [...data.value] }
  }
}

const fromValue = (value: CacheValue): Data | undefined => {
  switch (value.type) {
    case "string":
      return { type: "string", value: value.value }
    case "hash": {
      const entries = Object.entries(value.value)
      return entries.length === 0 ? undefined : { type: "hash", value: new Map(entries) }
    }
    case "set":
      return value.value.length === 0 ? undefined : { type: "set", value: new Set(value.value) }
    case "sorted_set":
      return value.value.length === 0
        ? undefined
        : { type: "sorted_set", value: new Map(value.value.map((m) => [m.member, m.score])) }
    case "list":
      return value.value.length === 0 ? undefined : { type: "list", value: [...value.value] }
  }
}

/** Builds a memory store; each call is a new, empty store. */
export const make: Effect.Effect<CacheStore["Service"]> = Effect.sync(() => {
  const slots = new Map<string, Slot>()
  /** Per tag, the keys written with it and their expiry; pruned as the index is written, like the Redis one. */
  const tags = new Map<string, Map<string, number>>()

  /** The slot at `key` if it has not expired; an expired slot is dropped on the way. */
  const live = (key: string, now: number): Slot | undefined => {
    const slot = slots.get(key)
    if (slot === undefined) return undefined
    if (slot.expiresAt <= now) {
      slots.delete(key)
      return undefined
    }
    return slot
  }

  const isEntry = (slot: Slot | undefined): slot is Slot => slot !== undefined && slot.data.type !== "lease"

  const prune = (tag: string, index: Map<string, number>, now: number) => {
    for (const [key, expiresAt] of index) if (expiresAt <= now) index.delete(key)
    if (index.size === 0) tags.delete(tag)
  }

  const record = (key: string, keyTags: ReadonlyArray<string>, expiresAt: number, now: number) => {
    for (const tag of keyTags) {
      let index = tags.get(tag)
      if (index === undefined) tags.set(tag, (index = new Map()))
      index.set(key, expiresAt)
      prune(tag, index, now)
    }
  }

  /** Removes `key` and answers whether it was a live entry (a lease is not). */
  const remove = (key: string, now: number): boolean => {
    const slot = live(key, now)
    if (slot === undefined) return false
    slots.delete(key)
    for (const tag of slot.tags) tags.get(tag)?.delete(key)
    return slot.data.type !== "lease"
  }

  const put = (key: string, data: Data, now: number, options: WriteOptions | undefined) => {
    const expiresAt = options?.ttlMs === undefined ? Infinity : now + options.ttlMs
    const keyTags = options?.tags ?? noTags
    slots.set(key, { data, expiresAt, tags: keyTags })
    record(key, keyTags, expiresAt, now)
  }

  /** The collection at `key` of type `type`, created empty if absent; fails on a key of another type. */
  const collection = <T extends Data["type"]>(
    operation: string,
    key: string,
    type: T,
    now: number,
    empty: () => Extract<Data, { type: T }>
  ): Effect.Effect<Slot & { data: Extract<Data, { type: T }> }, CacheStoreError> => {
    const slot = live(key, now)
    if (slot === undefined) {
      const created: Slot = { data: empty(), expiresAt: Infinity, tags: noTags }
      slots.set(key, created)
      return Effect.succeed(created as Slot & { data: Extract<Data, { type: T }> })
    }
    return slot.data.type === type
      ? Effect.succeed(slot as Slot & { data: Extract<Data, { type: T }> })
      : Effect.fail(wrongType(operation, key))
  }

  /** Applies the TTL after a collection write; an emptied collection is removed, as Redis does. */
  const touch = (key: string, slot: Slot, size: number, now: number, options: TtlOptions | undefined) => {
    if (size === 0) {
      slots.delete(key)
      return
    }
    if (options?.ttlMs !== undefined) slot.expiresAt = now + options.ttlMs
  }

  /** Whether `key` holds a live entry or lease carrying `tag`. */
  const carries = (key: string, tag: string, now: number): boolean => {
    const slot = live(key, now)
    return slot !== undefined && (slot.tags.includes(tag) || slot.refresh?.tags.includes(tag) === true)
  }

  /** Whether `slot` holds the lease `token`, bare or as a refresh lease over an entry. */
  const holds = (slot: Slot | undefined, token: string): slot is Slot =>
    slot !== undefined && ((slot.data.type === "lease" && slot.data.token === token) || slot.refresh?.token === token)

  const readString = (
    operation: string,
    key: string,
    now: number
  ): Effect.Effect<string | undefined, CacheStoreError> => {
    const slot = live(key, now)
    if (slot === undefined || slot.data.type === "lease") return Effect.succeed(undefined)
    return slot.data.type === "string" ? Effect.succeed(slot.data.value) : Effect.fail(wrongType(operation, key))
  }

  const remaining = (slot: Slot, now: number) => (slot.expiresAt === Infinity ? -1 : slot.expiresAt - now)

  return CacheStore.of({
    get: (key) => withNow((now) => readString("get", key, now)),
    getWithTtl: (key) =>
      withNow((now) =>
        Effect.map(readString("get", key, now), (value): WithTtl<string> | undefined => {
          if (value === undefined) return undefined
          const slot = slots.get(key)!
          return { value, ttlMs: remaining(slot, now), tags: slot.tags }
        })
      ),
    getMany: (keys) =>
      withNow((now) =>
        Effect.forEach(keys, (key) => {
          const slot = live(key, now)
          return Effect.succeed(slot?.data.type === "string" ? slot.data.value : undefined)
        })
      ),
    set: (key, value, options) => syncNow((now) => put(key, { type: "string", value }, now, options)),
    delete: (keys) =>
      syncNow((now) => {
        let removed = 0
        for (const key of keys) if (remove(key, now)) removed++
        return removed
      }),
    exists: (key) => syncNow((now) => isEntry(live(key, now))),
    ttl: (key) =>
      syncNow((now) => {
        const slot = live(key, now)
        return !isEntry(slot) ? undefined : slot.expiresAt === Infinity ? -1 : slot.expiresAt - now
      }),

    lease: (key, token, leaseMs, leaseTags, mode) =>
      withNow((now) =>
        Effect.map(readString("lease", key, now), (value) => {
          if (value === undefined) {
            put(key, { type: "lease", token }, now, { ttlMs: leaseMs, tags: leaseTags })
            return acquired
          }
          if (mode !== "refresh") return { _tag: "Present", value } as const
          const slot = slots.get(key)!
          slot.refresh = { token, tags: leaseTags ?? noTags }
          record(key, slot.refresh.tags, slot.expiresAt, now)
          return acquired
        })
      ),
    fill: (key, token, value, options) =>
      syncNow((now) => {
        if (!holds(live(key, now), token)) return false
        put(key, { type: "string", value }, now, options)
        return true
      }),
    release: (key, token, keep) =>
      syncNow((now) => {
        const slot = live(key, now)
        if (!holds(slot, token)) return
        if (slot.data.type === "lease" || keep === false) remove(key, now)
        else slot.refresh = undefined
      }),

    read: (key) =>
      syncNow((now) => {
        const slot = live(key, now)
        return slot === undefined ? undefined : toValue(slot.data)
      }),
    readWithTtl: (key) =>
      syncNow((now): WithTtl<CacheValue> | undefined => {
        const slot = live(key, now)
        const value = slot === undefined ? undefined : toValue(slot.data)
        return value === undefined ? undefined : { value, ttlMs: remaining(slot!, now), tags: slot!.tags }
      }),
    write: (key, value, options) =>
      syncNow((now) => {
        const data = fromValue(value)
        remove(key, now)
        if (data !== undefined) put(key, data, now, options)
      }),
    hashSet: (key, fields, options) =>
      withNow((now) => {
        const entries = Object.entries(fields)
        if (entries.length === 0) return Effect.void
        return Effect.map(
          collection("hashSet", key, "hash", now, () => ({ type: "hash", value: new Map() })),
          (slot) => {
            for (const [field, value] of entries) slot.data.value.set(field, value)
            touch(key, slot, slot.data.value.size, now, options)
          }
        )
      }),
    hashGet: (key, field) =>
      withNow((now) => {
        const slot = live(key, now)
        if (!isEntry(slot)) return Effect.succeed(undefined)
        return slot.data.type === "hash"
          ? Effect.succeed(slot.data.value.get(field))
          : Effect.fail(wrongType("hashGet", key))
      }),
    setAdd: (key, members, options) =>
      withNow((now) => {
        if (members.length === 0) return Effect.succeed(0)
        return Effect.map(
          collection("setAdd", key, "set", now, () => ({ type: "set", value: new Set() })),
          (slot) => {
            const before = slot.data.value.size
            for (const member of members) slot.data.value.add(member)
            touch(key, slot, slot.data.value.size, now, options)
            return slot.data.value.size - before
          }
        )
      }),
    setHas: (key, member) =>
      withNow((now) => {
        const slot = live(key, now)
        if (!isEntry(slot)) return Effect.succeed(false)
        return slot.data.type === "set"
          ? Effect.succeed(slot.data.value.has(member))
          : Effect.fail(wrongType("setHas", key))
      }),
    sortedSetAdd: (key, members, options) =>
      withNow((now) => {
        if (members.length === 0) return Effect.succeed(0)
        return Effect.map(
          collection("sortedSetAdd", key, "sorted_set", now, () => ({ type: "sorted_set", value: new Map() })),
          (slot) => {
            const before = slot.data.value.size
            for (const { member, score } of members) slot.data.value.set(member, score)
            touch(key, slot, slot.data.value.size, now, options)
            return slot.data.value.size - before
          }
        )
      }),
    sortedSetRange: (key, start, stop) =>
      withNow((now) => {
        const slot = live(key, now)
        if (!isEntry(slot)) return Effect.succeed([])
        if (slot.data.type !== "sorted_set") return Effect.fail(wrongType("sortedSetRange", key))
        const sorted = [...slot.data.value].map(([member, score]) => ({ member, score })).sort(byScore)
        return Effect.succeed(range(sorted, start, stop))
      }),
    listPush: (key, values, options) =>
      withNow((now) => {
        if (values.length === 0) {
          const slot = live(key, now)
          if (!isEntry(slot)) return Effect.succeed(0)
          return slot.data.type === "list"
            ? Effect.succeed(slot.data.value.length)
            : Effect.fail(wrongType("listPush", key))
        }
        return Effect.map(
          collection("listPush", key, "list", now, () => ({ type: "list", value: [] })),
          (slot) => {
            slot.data.value.push(...values)
            touch(key, slot, slot.data.value.length, now, options)
            return slot.data.value.length
          }
        )
      }),
    listRange: (key, start, stop) =>
      withNow((now) => {
        const slot = live(key, now)
        if (!isEntry(slot)) return Effect.succeed([])
        return slot.data.type === "list"
          ? Effect.succeed(range(slot.data.value, start, stop))
          : Effect.fail(wrongType("listRange", key))
      }),

    deletePattern: (pattern) =>
      syncNow((now) => {
        let removed = 0
        for (const key of slots.keys()) if (Glob.matches(pattern, key) && remove(key, now)) removed++
        return removed
      }),
    deleteTagged: (deleteTags) =>
      syncNow((now) => {
        let removed = 0
        for (const tag of deleteTags) {
          const index = tags.get(tag)
          if (index === undefined) continue
          for (const key of index.keys()) {
            const slot = live(key, now)
            if (slot === undefined) continue
            // An entry carrying the tag is counted; a refresh lease taken with it is removed (fenced) uncounted.
            if (slot.tags.includes(tag)) {
              if (remove(key, now)) removed++
            } else if (slot.refresh?.tags.includes(tag) === true) remove(key, now)
          }
          tags.delete(tag)
        }
        return removed
      }),
    tagged: (tag) =>
      syncNow((now) => {
        const index = tags.get(tag)
        if (index === undefined) return []
        for (const key of index.keys()) if (!carries(key, tag, now)) index.delete(key)
        if (index.size === 0) tags.delete(tag)
        return [...index.keys()]
      }),
    info: syncNow((now): StoreInfo => {
      let keys = 0
      for (const key of slots.keys()) if (isEntry(live(key, now))) keys++
      let tagIndexEntries = 0
      for (const [tag, index] of tags) {
        prune(tag, index, now)
        tagIndexEntries += index.size
      }
      return { kind: "memory", keys, usedMemory: 0, maxMemory: 0, evictedKeys: 0, tagIndexEntries }
    }),
    ping: Effect.void,
    flush: Effect.sync(() => {
      slots.clear()
      tags.clear()
    })
  })
})

/** A fresh, empty memory store. */
export const layer: Layer.Layer<CacheStore> = Layer.effect(CacheStore, make)
