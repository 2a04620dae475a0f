/**
 * A `CacheStore` on ioredis, over the embedded server's unix socket or any Redis URL. Commands fail fast when
 * the connection is down (no offline queue) and time out per command, so the cache can degrade instead of
 * hanging. Leases, fills and exact-count deletes are Lua scripts, loaded once and run by SHA; ioredis reloads
 * them when a restarted server answers NOSCRIPT.
 */
import { Effect, Layer } from "effect"
import { Redis } from "ioredis"
import {
  CacheStore,
  CacheStoreError,
  type LeaseResult,
  type StoreFailure,
  type StoreInfo,
  type WriteOptions
} from "../src/CacheStore.ts"
import type { CacheValue, ScoredMember } from "../src/CacheValue.ts"
import { EmbeddedRedis } from "../src/EmbeddedRedis.ts"

/** How to reach Redis and how patient to be with it. */
export interface RedisStoreOptions {
  /** A unix socket path (`/run/x/redis.sock`) or a `redis://` / `rediss://` URL. */
  readonly connection: string
  /** Batch commands issued in the same tick into one write (ioredis auto-pipelining). Default true. */
  readonly autoPipelining?: boolean | undefined
  /** A command not answered within this many milliseconds fails with `Timeout`. Default 1000. */
  readonly commandTimeoutMs?: number | undefined
  /** How long the first connection may take. Default 5000. */
  readonly connectTimeoutMs?: number | undefined
}

/** The prefix of a lease placeholder. JSON text (what the cache writes) never starts with NUL. */
const leasePrefix = "\u0000lease:"
/** The key of the index of keys carrying `tag`. Keys cannot contain control characters, so it never collides. */
export const tagIndexKey = (tag: string): string => `\u0000tag:${tag}`

const scripts = {
  // KEYS: key, tag indexes...; ARGV: lease value, lease ms → {1, value} when a value is present, else {0}
  ecLease: `
local v = redis.call('GET', KEYS[1])
if v and string.byte(v, 1) ~= 0 then return {1, v} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do redis.call('SADD', KEYS[i], KEYS[1]) end
return {0}`,
  // KEYS: key, tag indexes...; ARGV: lease value, value, ttl ms or '' → 1 when written
  ecFill: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
for i = 2, #KEYS do redis.call('SADD', KEYS[i], KEYS[1]) end
return 1`,
  // KEYS: key; ARGV: lease value
  ecRelease: `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`,
  // KEYS: keys → number of live entries (leases excluded) removed
  ecDelete: `
local n = 0
for i = 1, #KEYS do
  local t = redis.call('TYPE', KEYS[i]).ok
  if t == 'string' then
    if string.byte(redis.call('GET', KEYS[i]), 1) ~= 0 then n = n + 1 end
  elseif t ~= 'none' then n = n + 1 end
  redis.call('DEL', KEYS[i])
end
return n`,
  // KEYS: key → remaining ms, -1 for none, -2 when absent or only leased
  ecTtl: `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return -2 end
if t == 'string' and string.byte(redis.call('GET', KEYS[1]), 1) == 0 then return -2 end
return redis.call('PTTL', KEYS[1])`,
  // KEYS: key → {type, data...} of the whole value, {} when absent or leased
  ecRead: `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'string' then
  local v = redis.call('GET', KEYS[1])
  if string.byte(v, 1) == 0 then return {} end
  return {t, v}
elseif t == 'hash' then return {t, redis.call('HGETALL', KEYS[1])}
elseif t == 'set' then return {t, redis.call('SMEMBERS', KEYS[1])}
elseif t == 'zset' then return {t, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
elseif t == 'list' then return {t, redis.call('LRANGE', KEYS[1], 0, -1)}
end
return {}`,
  // KEYS: tag index → its members that still exist; the others are pruned from the index
  ecTagged: `
local live = {}
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', k) == 1 then live[#live + 1] = k else redis.call('SREM', KEYS[1], k) end
end
return live`
} as const

type Reply = string | number | null | ReadonlyArray<Reply>
type ScriptCommand = (numberOfKeys: number, ...args: ReadonlyArray<string>) => Promise<Reply>
type Scripted = Redis & { readonly [K in keyof typeof scripts]: ScriptCommand }

const reasonOf = (cause: unknown): StoreFailure => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.startsWith("OOM")) return "OutOfMemory"
  if (message.startsWith("WRONGTYPE") || message.includes("WRONGTYPE")) return "WrongType"
  if (message === "Command timed out") return "Timeout"
  if (
    message.includes("enableOfflineQueue") || message.includes("Connection is closed") ||
    message.includes("ECONNREFUSED") || message.includes("ENOENT") || message.includes("ECONNRESET") ||
    message.includes("EPIPE") || message.includes("LOADING")
  ) return "Unavailable"
  return "Unknown"
}

const failure = (operation: string, key: string | undefined, cause: unknown) =>
  new CacheStoreError({ operation, key, reason: reasonOf(cause), cause })

/** Runs one ioredis call as an Effect, converting its failure once, here. */
const call = <A>(operation: string, key: string | undefined, f: () => Promise<A>): Effect.Effect<A, CacheStoreError> =>
  Effect.callback<A, CacheStoreError>((resume) => {
    f().then(
      (value) => resume(Effect.succeed(value)),
      (cause) => resume(Effect.fail(failure(operation, key, cause)))
    )
  })

const ttlArgs = (options: WriteOptions | undefined): ReadonlyArray<string> =>
  options?.ttlMs === undefined ? [] : ["PX", String(options.ttlMs)]

const tagKeys = (tags: ReadonlyArray<string> | undefined): ReadonlyArray<string> =>
  tags === undefined ? [] : tags.map(tagIndexKey)

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

const afterWrite = (tx: ReturnType<Redis["multi"]>, key: string, options: WriteOptions | undefined) => {
  if (options?.ttlMs !== undefined) tx.pexpire(key, options.ttlMs)
  if (options?.tags !== undefined) { for (const tag of options.tags) tx.sadd(tagIndexKey(tag), key) }
}

/** Connects, loads the scripts, and builds the store; the connection closes with the scope. */
export const make = Effect.fnUntraced(function*(options: RedisStoreOptions) {
  const settings = {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: options.autoPipelining ?? true,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    maxRetriesPerRequest: 0,
    // Reconnect quickly: the embedded server is restarted within a second or two.
    retryStrategy: (attempt: number) => Math.min(attempt * 20, 500)
  }
  const redis = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = options.connection.includes("://")
          ? new Redis(options.connection, settings)
          : new Redis({ ...settings, path: options.connection })
        // Connection errors also surface as failed commands; keep them from becoming unhandled 'error' events.
        client.on("error", () => {})
        await client.connect()
        return client
      },
      catch: (cause) => new CacheStoreError({ operation: "connect", reason: "Unavailable", cause })
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )
  for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(name, { lua })
  const r = redis as Scripted
  // Load every script now, so the first fill doesn't pay for it (ioredis then runs them by SHA).
  yield* call(
    "script load",
    undefined,
    () => Promise.all(Object.values(scripts).map((lua) => redis.script("LOAD", lua)))
  )

  const exec = (operation: string, key: string, build: (tx: ReturnType<Redis["multi"]>) => void) =>
    call(operation, key, () => {
      const tx = redis.multi()
      build(tx)
      return tx.exec().then((replies) => checkExec(operation, replies))
    })

  const info = call("info", undefined, () => Promise.all([redis.info("memory"), redis.info("stats"), redis.dbsize()]))
    .pipe(Effect.map(([memory, stats, keys]): StoreInfo => {
      const m = parseInfo(memory)
      const s = parseInfo(stats)
      return {
        kind: "redis",
        keys,
        usedMemory: Number(m.get("used_memory") ?? 0),
        maxMemory: Number(m.get("maxmemory") ?? 0),
        evictedKeys: Number(s.get("evicted_keys") ?? 0)
      }
    }))

  return CacheStore.of({
    get: (key) =>
      call("get", key, () => redis.get(key)).pipe(
        Effect.map((value) => value === null || value.charCodeAt(0) === 0 ? undefined : value)
      ),
    getMany: (keys) =>
      keys.length === 0
        ? Effect.succeed([])
        : call("getMany", undefined, () => redis.mget(...keys)).pipe(
          Effect.map((values) => values.map((value) => value === null || value.charCodeAt(0) === 0 ? undefined : value))
        ),
    set: (key, value, options) =>
      options?.tags === undefined || options.tags.length === 0
        ? call("set", key, () =>
          options?.ttlMs === undefined ? redis.set(key, value) : redis.set(key, value, "PX", options.ttlMs)).pipe(
            Effect.asVoid
          )
        : exec("set", key, (tx) => {
          tx.set(key, value, ...(ttlArgs(options) as ["PX", string]))
          afterWrite(tx, key, { tags: options.tags })
        }).pipe(Effect.asVoid),
    delete: (keys) =>
      keys.length === 0
        ? Effect.succeed(0)
        : call("delete", keys.length === 1 ? keys[0] : undefined, () => r.ecDelete(keys.length, ...keys)).pipe(
          Effect.map((n) => n as number)
        ),
    exists: (key) => call("exists", key, () => r.ecTtl(1, key)).pipe(Effect.map((ms) => ms !== -2)),
    ttl: (key) =>
      call("ttl", key, () => r.ecTtl(1, key)).pipe(Effect.map((ms) => ms === -2 ? undefined : ms as number)),

    lease: (key, token, leaseMs, tags) => {
      const indexes = tagKeys(tags)
      return call(
        "lease",
        key,
        () => r.ecLease(1 + indexes.length, key, ...indexes, leasePrefix + token, String(leaseMs))
      )
        .pipe(Effect.map((reply): LeaseResult => {
          const [present, value] = reply as [number, string?]
          return present === 1 ? { _tag: "Present", value: value! } : { _tag: "Acquired" }
        }))
    },
    fill: (key, token, value, options) => {
      const indexes = tagKeys(options?.tags)
      return call("fill", key, () =>
        r.ecFill(
          1 + indexes.length,
          key,
          ...indexes,
          leasePrefix + token,
          value,
          options?.ttlMs === undefined ? "" : String(options.ttlMs)
        )).pipe(Effect.map((written) => written === 1))
    },
    release: (key, token) => call("release", key, () => r.ecRelease(1, key, leasePrefix + token)).pipe(Effect.asVoid),

    read: (key) => call("read", key, () => r.ecRead(1, key)).pipe(Effect.map(toValue)),
    write: (key, value, options) =>
      exec("write", key, (tx) => {
        tx.del(key)
        let size: number
        switch (value.type) {
          case "string":
            size = 1
            tx.set(key, value.value)
            break
          case "hash": {
            const entries = Object.entries(value.value)
            size = entries.length
            if (size > 0) tx.hset(key, Object.fromEntries(entries))
            break
          }
          case "set":
            size = value.value.length
            if (size > 0) tx.sadd(key, ...value.value)
            break
          case "sorted_set":
            size = value.value.length
            if (size > 0) tx.zadd(key, ...value.value.flatMap((m) => [m.score, m.member]))
            break
          case "list":
            size = value.value.length
            if (size > 0) tx.rpush(key, ...value.value)
            break
        }
        if (size > 0) afterWrite(tx, key, options)
      }).pipe(Effect.asVoid),
    hashSet: (key, fields, options) =>
      Object.keys(fields).length === 0 ? Effect.void : exec("hashSet", key, (tx) => {
        tx.hset(key, fields)
        afterWrite(tx, key, options)
      }).pipe(Effect.asVoid),
    hashGet: (key, field) =>
      call("hashGet", key, () => redis.hget(key, field)).pipe(Effect.map((value) => value ?? undefined)),
    setAdd: (key, members, options) =>
      members.length === 0 ? Effect.succeed(0) : exec("setAdd", key, (tx) => {
        tx.sadd(key, ...members)
        afterWrite(tx, key, options)
      }).pipe(Effect.map((replies) => replies[0]![1] as number)),
    setHas: (key, member) => call("setHas", key, () => redis.sismember(key, member)).pipe(Effect.map((n) => n === 1)),
    sortedSetAdd: (key, members, options) =>
      members.length === 0 ? Effect.succeed(0) : exec("sortedSetAdd", key, (tx) => {
        tx.zadd(key, ...members.flatMap((m) => [m.score, m.member]))
        afterWrite(tx, key, options)
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
          afterWrite(tx, key, options)
        }).pipe(Effect.map((replies) => replies[0]![1] as number)),
    listRange: (key, start, stop) => call("listRange", key, () => redis.lrange(key, start, stop)),

    tagged: (tag) =>
      call("tagged", undefined, () => r.ecTagged(1, tagIndexKey(tag))).pipe(
        Effect.map((keys) => keys as ReadonlyArray<string>)
      ),
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
