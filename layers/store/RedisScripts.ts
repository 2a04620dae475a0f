/**
 * The Lua scripts of the Redis store. Each runs atomically on the server, which is what makes leases, fenced
 * fills, exact-count deletes and tag verification correct under concurrency. Layout of the keyspace:
 * - a string entry is its JSON text, or `\1<tags JSON>\0<JSON text>` when written with tags;
 * - a lease is `\0lease:<token>` at the entry's key; a refresh lease over a string entry is
 *   `\0lease:<token>\0<the entry as stored>`, TTL kept: the entry stays readable until the fill replaces it, and any
 *   write or delete of the key removes both (which fences the reload);
 * - `\0tag:<tag>` is a sorted set of the keys carrying the tag, scored by their expiry (server ms, `inf` for
 *   none); it drops expired members when written and expires with its last member;
 * - `\0kt:<key>` holds the tags JSON of a tagged hash/set/sorted-set/list entry.
 * User keys cannot contain control characters, so none of these can collide with one.
 */

/** Helpers every script starts with. */
const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function index_tags(key, tags, ttl)
  if #tags == 0 then return end
  local now = now_ms()
  local score = (ttl == '' and '+inf') or tostring(now + tonumber(ttl))
  for _, tag in ipairs(tags) do
    local idx = '\\0tag:' .. tag
    redis.call('ZADD', idx, score, key)
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. now)
    local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
    if top[2] == nil then
    elseif top[2] == 'inf' then redis.call('PERSIST', idx)
    else redis.call('PEXPIREAT', idx, math.floor(tonumber(top[2]))) end
  end
end
local function listed(key, tags)
  for _, tag in ipairs(tags) do
    if not redis.call('ZSCORE', '\\0tag:' .. tag, key) then return false end
  end
  return true
end
local function split_tagged(v)
  local sep = string.find(v, '\\0', 2, true)
  return cjson.decode(string.sub(v, 2, sep - 1)), string.sub(v, sep + 1)
end
-- The entry a refresh lease keeps readable (as stored), or nil for a bare lease.
local function kept_of(v)
  local sep = string.find(v, '\\0', 2, true)
  if not sep then return nil end
  return string.sub(v, sep + 1)
end
-- What a reader may see of a key: 'none', 'lease', or the type with its tags (and whether a refresh lease holds
-- it); an entry whose tags are no longer all indexed (an index was evicted) is deleted and reads as 'none'.
local function inspect(key)
  local t = redis.call('TYPE', key).ok
  if t == 'none' then return 'none', nil, nil, false end
  if t == 'string' then
    local v = redis.call('GET', key)
    local leased = false
    if string.byte(v, 1) == 0 then
      local kept = kept_of(v)
      if not kept then return 'lease', nil, v, true end
      v, leased = kept, true
    end
    if string.byte(v, 1) == 1 then
      local tags, payload = split_tagged(v)
      if not listed(key, tags) then redis.call('DEL', key) return 'none', nil, nil, false end
      return 'string', tags, payload, leased
    end
    return 'string', {}, v, leased
  end
  local kt = redis.call('GET', '\\0kt:' .. key)
  local tags = (kt and cjson.decode(kt)) or {}
  if not listed(key, tags) then redis.call('DEL', key, '\\0kt:' .. key) return 'none', nil, nil, false end
  return t, tags, nil, false
end
-- Whether the string \`cur\` is the lease \`lease\`, bare or over a kept entry.
local function holds(cur, lease)
  return cur and (cur == lease or string.sub(cur, 1, #lease + 1) == lease .. '\\0')
end
local function remove(key, kind, tags)
  if tags then for _, tag in ipairs(tags) do redis.call('ZREM', '\\0tag:' .. tag, key) end end
  redis.call('DEL', key)
  if kind ~= 'string' and kind ~= 'lease' then redis.call('DEL', '\\0kt:' .. key) end
end
local function has(list, x)
  for _, y in ipairs(list) do if y == x then return true end end
  return false
end
`

const script = (body: string): string => prelude + body

/** The scripts, by the command name ioredis defines for each. */
export const scripts = {
  // KEYS: key → the readable string, or nil (absent, leased, or no longer indexed)
  ecGet: script(`
local kind, _, payload = inspect(KEYS[1])
if kind == 'string' then return payload end
if kind == 'none' or kind == 'lease' then return false end
return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')`),

  // KEYS: key → {JSON text, remaining ms (-1: none), tags JSON or nil}, or nil (absent, leased, no longer
  // indexed). GET first, so an untagged entry costs GET + PTTL; only a tagged one is verified against its indexes.
  ecGetTtl: script(`
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' and v.err then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
if not v then return false end
local b = string.byte(v, 1)
if b == 0 then
  local kind, tags, payload = inspect(KEYS[1])
  if kind ~= 'string' then return false end
  if #tags == 0 then return {payload, redis.call('PTTL', KEYS[1])} end
  return {payload, redis.call('PTTL', KEYS[1]), cjson.encode(tags)}
end
if b == 1 then
  local sep = string.find(v, '\\0', 2, true)
  local tagsJson = string.sub(v, 2, sep - 1)
  if not listed(KEYS[1], cjson.decode(tagsJson)) then redis.call('DEL', KEYS[1]) return false end
  return {string.sub(v, sep + 1), redis.call('PTTL', KEYS[1]), tagsJson}
end
return {v, redis.call('PTTL', KEYS[1])}`),

  // KEYS: key; ARGV: stored value, ttl ms or '', tags... → OK
  ecSetTagged: script(`
local tags = {}
for i = 3, #ARGV do tags[#tags + 1] = ARGV[i] end
if ARGV[2] == '' then redis.call('SET', KEYS[1], ARGV[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
index_tags(KEYS[1], tags, ARGV[2])
return 1`),

  // KEYS: key; ARGV: lease value, lease ms, mode ('fill' | 'refresh'), tags... → {1, value} when a value is
  // present (fill mode), else {0}: the lease is taken (in refresh mode over the entry, kept readable, TTL kept)
  ecLease: script(`
local kind, _, payload = inspect(KEYS[1])
local tags = {}
for i = 4, #ARGV do tags[#tags + 1] = ARGV[i] end
if kind == 'string' then
  if ARGV[3] ~= 'refresh' then return {1, payload} end
  local v = redis.call('GET', KEYS[1])
  if string.byte(v, 1) == 0 then v = kept_of(v) end
  redis.call('SET', KEYS[1], ARGV[1] .. '\\0' .. v, 'KEEPTTL')
  local ttl = redis.call('PTTL', KEYS[1])
  index_tags(KEYS[1], tags, (ttl < 0 and '') or tostring(ttl))
  return {0}
end
if kind ~= 'none' and kind ~= 'lease' then
  return redis.error_reply('WRONGTYPE Operation against a key holding the wrong kind of value')
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
index_tags(KEYS[1], tags, ARGV[2])
return {0}`),

  // KEYS: key; ARGV: lease value, stored value, ttl ms or '', tags... → 1 when written
  ecFill: script(`
if not holds(redis.call('GET', KEYS[1]), ARGV[1]) then return 0 end
local tags = {}
for i = 4, #ARGV do tags[#tags + 1] = ARGV[i] end
if ARGV[3] == '' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
index_tags(KEYS[1], tags, ARGV[3])
return 1`),

  // KEYS: key; ARGV: lease value, '1' to keep the entry a refresh lease holds (else it is removed too)
  ecRelease: script(`
local cur = redis.call('GET', KEYS[1])
if not holds(cur, ARGV[1]) then return 0 end
if cur == ARGV[1] or ARGV[2] ~= '1' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], string.sub(cur, #ARGV[1] + 2), 'KEEPTTL') end
return 0`),

  // KEYS: keys → number of live entries removed (leases removed, not counted)
  ecDelete: script(`
local n = 0
for i = 1, #KEYS do
  local kind, tags = inspect(KEYS[i])
  if kind ~= 'none' then
    if kind ~= 'lease' then n = n + 1 end
    remove(KEYS[i], kind, tags)
  end
end
return n`),

  // ARGV: tags → number of live entries carrying any of them removed; their leases are removed too
  ecDeleteTagged: script(`
local n = 0
for _, tag in ipairs(ARGV) do
  local idx = '\\0tag:' .. tag
  for _, key in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local kind, tags, _, leased = inspect(key)
    if kind == 'lease' then remove(key, kind, nil)
    elseif kind ~= 'none' and has(tags, tag) then
      n = n + 1
      remove(key, kind, tags)
    elseif leased then remove(key, 'lease', nil) -- a refresh lease taken with the tag: fenced, not counted
    end
  end
  redis.call('DEL', idx)
end
return n`),

  // ARGV: tag → live keys carrying it (and keys leased with it); members that don't are pruned
  ecTagged: script(`
local idx = '\\0tag:' .. ARGV[1]
local live = {}
for _, key in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local kind, tags, _, leased = inspect(key)
  if kind == 'lease' or leased or (kind ~= 'none' and has(tags, ARGV[1])) then live[#live + 1] = key
  else redis.call('ZREM', idx, key) end
end
return live`),

  // KEYS: key → remaining ms, -1 for none, -2 when absent or only leased
  ecTtl: script(`
local kind = inspect(KEYS[1])
if kind == 'none' or kind == 'lease' then return -2 end
return redis.call('PTTL', KEYS[1])`),

  // KEYS: key → {type, data, remaining ms (-1: none), tags JSON} of the whole value, {} when absent or leased
  ecRead: script(`
local kind, tags, payload = inspect(KEYS[1])
local data
if kind == 'string' then data = payload
elseif kind == 'hash' then data = redis.call('HGETALL', KEYS[1])
elseif kind == 'set' then data = redis.call('SMEMBERS', KEYS[1])
elseif kind == 'zset' then data = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
elseif kind == 'list' then data = redis.call('LRANGE', KEYS[1], 0, -1)
else return {} end
return {kind, data, redis.call('PTTL', KEYS[1]), (#tags > 0 and cjson.encode(tags)) or '[]'}`),

  // KEYS: key; ARGV: type, ttl ms or '', tags JSON, items... → replaces the key's value; no items: removed
  ecWrite: script(`
local key, kind, ttl = KEYS[1], ARGV[1], ARGV[2]
local old, oldTags = inspect(key)
if old ~= 'none' then remove(key, old, oldTags) end
if #ARGV < 4 then return 0 end
local items = {}
for i = 4, #ARGV do items[#items + 1] = ARGV[i] end
if kind == 'string' then redis.call('SET', key, items[1])
else
  local command = ({ hash = 'HSET', set = 'SADD', sorted_set = 'ZADD', list = 'RPUSH' })[kind]
  -- unpack has a stack limit: add in chunks (even-sized, so field/value and score/member pairs stay whole)
  for from = 1, #items, 1000 do
    redis.call(command, key, unpack(items, from, math.min(from + 999, #items)))
  end
end
if ttl ~= '' then redis.call('PEXPIRE', key, ttl) end
local tags = cjson.decode(ARGV[3])
if #tags > 0 then
  if kind ~= 'string' then
    if ttl == '' then redis.call('SET', '\\0kt:' .. key, ARGV[3]) else redis.call('SET', '\\0kt:' .. key, ARGV[3], 'PX', ttl) end
  end
  index_tags(key, tags, ttl)
end
return 1`)
} as const
