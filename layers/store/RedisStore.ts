/**
 * A `CacheStore` on ioredis, over the embedded server's unix socket or any Redis URL, through one
 * `RedisConnection` (fail fast when down, a per-connection command timeout, failures classified once). Leases,
 * fills, exact-count deletes and tag verification are Lua scripts (`RedisScripts`), loaded once and run by SHA;
 * ioredis reloads them when a restarted server answers NOSCRIPT.
 */
import { Effect, Layer } from "effect"
import { Redis } from "ioredis"
import {
  CacheStore,
  CacheStoreError,
  type LeaseResult,
  type StoreInfo,
  type TtlOptions,
  type WithTtl
} from "../../src/CacheStore.ts"
import type { CacheValue, ScoredMember } from "../../src/CacheValue.ts"
import { EmbeddedRedis } from "../../src/EmbeddedRedis.ts"
import * as RedisConnection from "./RedisConnection.ts"
import { scripts } from "./RedisScripts.ts"

/** How to reach Redis and how patient to be with it. */
export type RedisStoreOptions = RedisConnection.ConnectionOptions

/** The prefix of a lease placeholder. JSON text (what the cache writes) never starts with NUL. */
const leasePrefix = "\u0000lease:"
/** The key of the index of keys carrying `tag`. Keys cannot contain control characters, so it never collides. */
export const tagIndexKey = (tag: string): string => `\u0000tag:${tag}`
/** The companion key holding the tags of a tagged hash, set, sorted set or list. */
const companionKey = (key: string): string => `\u0000kt:${key}`

/** A string as stored: its JSON text, prefixed with its tags when it has any (see RedisStoreScripts). */
const storedString = (value: string, tags: ReadonlyArray<string> | undefined): string =>
  tags === undefined || tags.length === 0 ? value : `\u0001${JSON.stringify(tags)}\u0000${value}`

type Reply = string | number | null | ReadonlyArray<Reply>
type ScriptCommand = (numberOfKeys: number, ...args: ReadonlyArray<string>) => Promise<Reply>
type Scripted = Redis & { readonly [K in keyof typeof scripts]: ScriptCommand }

/** Fails with the first error of a MULTI/EXEC reply, if any. */
const checkExec = (operation: string, replies: Array<[Error | null, unknown]> | null) => {
  if (replies === null) throw new Error(`${operation}: transaction aborted`)
  for (const [error] of replies) if (error !== null) throw error
  return replies
}

const parseInfo = (text: string): Map<string, string> => {
  const fields = new Map<string, string>()
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1))
  }
  return fields
}

const toValue = (reply: Reply): CacheValue | undefined => {
  if (!Array.isArray(reply) || reply.length === 0) return undefined
  const [type, data] = reply as [string, Reply]
  if (type === "string") return { type: "string", value: data as string }
  const items = data as ReadonlyArray<string>
  switch (type) {
    case "hash": {
      const value: Record<string, string> = {}
      for (let i = 0; i < items.length; i += 2) value[items[i]!] = items[i + 1]!
      return { type: "hash", value }
    }
    case "set":
      return { type: "set", value: items }
    case "zset":
      return { type: "sorted_set", value: pairs(items) }
    case "list":
      return { type: "list", value: items }
  }
  return undefined
}

const pairs = (items: ReadonlyArray<string>): Array<ScoredMember> => {
  const members: Array<ScoredMember> = []
  for (let i = 0; i < items.length; i += 2) members.push({ member: items[i]!, score: Number(items[i + 1]) })
  return members
}

/** Applies a collection write's TTL to the entry and to its tags' companion. */
const expireWith = (tx: ReturnType<Redis["multi"]>, key: string, options: TtlOptions | undefined) => {
  if (options?.ttlMs === undefined) return
  tx.pexpire(key, options.ttlMs)
  tx.pexpire(companionKey(key), options.ttlMs)
}

const noTags: ReadonlyArray<string> = []

/** `ecGetTtl`'s reply as a `WithTtl`: `{text, ms, tags JSON?}`, or nil. */
const toStringWithTtl = (reply: Reply): WithTtl<string> | undefined => {
  if (!Array.isArray(reply)) return undefined
  const tags = reply[2] as string | undefined
  return {
    value: reply[0] as string,
    ttlMs: reply[1] as number,
    tags: tags === undefined ? noTags : (JSON.parse(tags) as ReadonlyArray<string>)
  }
}

/** `ecRead`'s reply as a `WithTtl`: `{type, data, ms, tags JSON}`, or empty. */
const toValueWithTtl = (reply: Reply): WithTtl<CacheValue> | undefined => {
  const value = toValue(reply)
  if (value === undefined) return undefined
  const [, , ttlMs, tags] = reply as [string, Reply, number, string]
  return { value, ttlMs, tags: tags === "[]" ? noTags : (JSON.parse(tags) as ReadonlyArray<string>) }
}

const stringWithTtl = (reply: Reply) => Effect.succeed(toStringWithTtl(reply))
const valueWithTtl = (reply: Reply) => Effect.succeed(toValueWithTtl(reply))

const absent: Effect.Effect<undefined> = Effect.succeed(undefined)
const done = (): Effect.Effect<void> => Effect.void

/** Connects, loads the scripts, and builds the store; the connection closes with the scope. */
export const make = Effect.fnUntraced(function* (options: RedisStoreOptions) {
  const { call, callKey, redis } = yield* RedisConnection.connect(options)
  for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(name, { lua })
  const r = redis as Scripted
  // Load every script now, so the first fill doesn't pay for it (ioredis then runs them by SHA).
  yield* call("script load", undefined, () =>
    Promise.all(Object.values(scripts).map((lua) => redis.script("LOAD", lua)))
  )

  const exec = (operation: string, key: string, build: (tx: ReturnType<Redis["multi"]>) => void) =>
    call(operation, key, () => {
      const tx = redis.multi()
      build(tx)
      return tx.exec().then((replies) => checkExec(operation, replies))
    })

  /** Every key matching `match`, scanned `count` at a time (never KEYS). */
  const scan = Effect.fnUntraced(function* (
    match: string,
    count: number,
    each: (keys: Array<string>) => Effect.Effect<void, CacheStoreError>
  ) {
    let cursor = "0"
    do {
      const [next, keys] = yield* call("scan", undefined, () => redis.scan(cursor, "MATCH", match, "COUNT", count))
      cursor = next
      if (keys.length > 0) yield* each(keys)
    } while (cursor !== "0")
  })

  const info = Effect.gen(function* () {
    const [memory, stats, keys] = yield* call("info", undefined, () =>
      Promise.all([redis.info("memory"), redis.info("stats"), redis.dbsize()])
    )
    let tagIndexEntries = 0
    yield* scan(tagIndexKey("*"), 1000, (indexes) =>
      call("info", undefined, () => Promise.all(indexes.map((index) => redis.zcard(index)))).pipe(
        Effect.map((sizes) => {
          for (const size of sizes) tagIndexEntries += size
        })
      )
    )
    const m = parseInfo(memory)
    const s = parseInfo(stats)
    return {
      kind: "redis",
      keys,
      usedMemory: Number(m.get("used_memory") ?? 0),
      maxMemory: Number(m.get("maxmemory") ?? 0),
      evictedKeys: Number(s.get("evicted_keys") ?? 0),
      tagIndexEntries
    } satisfies StoreInfo
  })

  const checked = (key: string) =>
    call("get", key, () => r.ecGet(1, key)) as Effect.Effect<string | null, CacheStoreError>

  /**
   * A string as readers see it: a bare lease is absent; a tagged entry, or one a refresh lease keeps readable, is
   * read again through a script (which verifies its tags: an index may be gone).
   */
  const readString = (value: string | null, key: string): Effect.Effect<string | undefined, CacheStoreError> => {
    if (value === null) return absent
    const first = value.charCodeAt(0)
    if (first === 0 && value.indexOf("\u0000", 1) < 0) return absent
    return first <= 1 ? Effect.map(checked(key), (v) => v ?? undefined) : Effect.succeed(value)
  }

  // The hot commands and their replies, built once: a call allocates no closures of its own.
  const getCommand = (key: string) => redis.get(key)
  const getTtlCommand = (key: string) => r.ecGetTtl(1, key)
  const readCommand = (key: string) => r.ecRead(1, key)
  const setCommand = (key: string, value: string) => redis.set(key, value)

  const ttlString = (options: TtlOptions | undefined) => (options?.ttlMs === undefined ? "" : String(options.ttlMs))

  return CacheStore.of({
    get: (key) => callKey("get", key, undefined, getCommand, readString),
    getWithTtl: (key) => callKey("getWithTtl", key, undefined, getTtlCommand, stringWithTtl),
    getMany: (keys) =>
      keys.length === 0
        ? Effect.succeed([])
        : Effect.flatMap(
            call("getMany", undefined, () => redis.mget(...keys)),
            (values) => Effect.forEach(values, (value, i) => readString(value, keys[i]!))
          ),
    set: (key, value, options) =>
      options?.tags === undefined || options.tags.length === 0
        ? options?.ttlMs === undefined
          ? callKey("set", key, value, setCommand, done)
          : call("set", key, () => redis.set(key, value, "PX", options.ttlMs!), done)
        : call(
            "set",
            key,
            () => r.ecSetTagged(1, key, storedString(value, options.tags), ttlString(options), ...options.tags!),
            done
          ),
    delete: (keys) =>
      keys.length === 0
        ? Effect.succeed(0)
        : call("delete", keys.length === 1 ? keys[0] : undefined, () => r.ecDelete(keys.length, ...keys)).pipe(
            Effect.map((n) => n as number)
          ),
    exists: (key) => call("exists", key, () => r.ecTtl(1, key)).pipe(Effect.map((ms) => ms !== -2)),
    ttl: (key) =>
      call("ttl", key, () => r.ecTtl(1, key)).pipe(Effect.map((ms) => (ms === -2 ? undefined : (ms as number)))),

    lease: (key, token, leaseMs, tags, mode) =>
      call("lease", key, () =>
        r.ecLease(1, key, leasePrefix + token, String(leaseMs), mode ?? "fill", ...(tags ?? []))
      ).pipe(
        Effect.map((reply): LeaseResult => {
          const [present, value] = reply as [number, string?]
          return present === 1 ? { _tag: "Present", value: value! } : { _tag: "Acquired" }
        })
      ),
    fill: (key, token, value, options) =>
      call("fill", key, () =>
        r.ecFill(
          1,
          key,
          leasePrefix + token,
          storedString(value, options?.tags),
          ttlString(options),
          ...(options?.tags ?? [])
        )
      ).pipe(Effect.map((written) => written === 1)),
    release: (key, token, keep) =>
      call("release", key, () => r.ecRelease(1, key, leasePrefix + token, keep === false ? "0" : "1")).pipe(
        Effect.asVoid
      ),

    read: (key) => call("read", key, () => r.ecRead(1, key)).pipe(Effect.map(toValue)),
    readWithTtl: (key) => callKey("read", key, undefined, readCommand, valueWithTtl),
    write: (key, value, options) => {
      const tags = options?.tags ?? []
      let items: ReadonlyArray<string | number>
      switch (value.type) {
        case "string":
          items = [storedString(value.value, tags)]
          break
        case "hash":
          items = Object.entries(value.value).flat()
          break
        case "set":
        case "list":
          items = value.value
          break
        case "sorted_set":
          items = value.value.flatMap((m) => [m.score, m.member])
          break
      }
      return call("write", key, () =>
        r.ecWrite(1, key, value.type, ttlString(options), JSON.stringify(tags), ...items.map(String))
      ).pipe(Effect.asVoid)
    },
    hashSet: (key, fields, options) =>
      Object.keys(fields).length === 0
        ? Effect.void
        : exec("hashSet", key, (tx) => {
            tx.hset(key, fields)
            expireWith(tx, key, options)
          }).pipe(Effect.asVoid),
    hashGet: (key, field) =>
      call("hashGet", key, () => redis.hget(key, field)).pipe(Effect.map((value) => value ?? undefined)),
    setAdd: (key, members, options) =>
      members.length === 0
        ? Effect.succeed(0)
        : exec("setAdd", key, (tx) => {
            tx.sadd(key, ...members)
            expireWith(tx, key, options)
          }).pipe(Effect.map((replies) => replies[0]![1] as number)),
    setHas: (key, member) => call("setHas", key, () => redis.sismember(key, member)).pipe(Effect.map((n) => n === 1)),
    sortedSetAdd: (key, members, options) =>
      members.length === 0
        ? Effect.succeed(0)
        : exec("sortedSetAdd", key, (tx) => {
            tx.zadd(key, ...members.flatMap((m) => [m.score, m.member]))
            expireWith(tx, key, options)
          }).pipe(Effect.map((replies) => replies[0]![1] as number)),
    sortedSetRange: (key, start, stop) =>
      call("sortedSetRange", key, () => redis.zrange(key, String(start), String(stop), "WITHSCORES")).pipe(
        Effect.map(pairs)
      ),
    listPush: (key, values, options) =>
      values.length === 0
        ? call("listPush", key, () => redis.llen(key))
        : exec("listPush", key, (tx) => {
            tx.rpush(key, ...values)
            expireWith(tx, key, options)
          }).pipe(Effect.map((replies) => replies[0]![1] as number)),
    listRange: (key, start, stop) => call("listRange", key, () => redis.lrange(key, start, stop)),

    deletePattern: (pattern, count = 1000) =>
      Effect.gen(function* () {
        let removed = 0
        yield* scan(pattern, count, (keys) => {
          // The toolkit's own keys (tag indexes, companions) start with a control character: never a match.
          const own = keys.filter((key) => key.charCodeAt(0) >= 0x20)
          return own.length === 0
            ? Effect.void
            : call("deletePattern", undefined, () => r.ecDelete(own.length, ...own)).pipe(
                Effect.map((n) => void (removed += n as number))
              )
        })
        return removed
      }),
    deleteTagged: (tags) =>
      tags.length === 0
        ? Effect.succeed(0)
        : call("deleteTagged", undefined, () => r.ecDeleteTagged(0, ...tags)).pipe(Effect.map((n) => n as number)),
    tagged: (tag) =>
      call("tagged", undefined, () => r.ecTagged(0, tag)).pipe(Effect.map((keys) => keys as ReadonlyArray<string>)),
    info,
    ping: call("ping", undefined, () => redis.ping()).pipe(Effect.asVoid),
    flush: call("flush", undefined, () => redis.flushdb()).pipe(Effect.asVoid)
  })
})

/** A store on the Redis at `options.connection`. */
export const layer = (options: RedisStoreOptions): Layer.Layer<CacheStore, CacheStoreError> =>
  Layer.effect(CacheStore, make(options))

/** A store on the embedded server's unix socket. */
export const layerEmbedded = (
  options: Omit<RedisStoreOptions, "connection"> = {}
): Layer.Layer<CacheStore, CacheStoreError, EmbeddedRedis> =>
  Layer.effect(
    CacheStore,
    EmbeddedRedis.use((server) => make({ ...options, connection: server.socketPath }))
  )
