/**
 * Freshness: an entry's logical expiry, apart from how long the store keeps it. With fail-safe, eager refresh or
 * negative caching on, the cache writes each string it loads or sets with a stamp in front of its JSON text —
 * `\u0002<fresh until>,<stale until>,<written at>,<kind>\u0000<JSON>` (epoch ms; an empty field is never) — and the
 * store keeps it until `stale until`, so a stale copy exists to fall back on. The store sees one string: any write,
 * delete or invalidation of the key removes the stamp with the value, so a stale copy never outlives an
 * invalidation. JSON text never starts with a control character, so a stamped string is never mistaken for one.
 *
 * Kinds: `value` (loaded or set), `stale` (a fail-safe copy answered after a failed load; fresh until the throttle
 * ends, so the source is not asked again before) and `negative` (the source does not have the key; no JSON).
 */
import { Duration } from "effect"
import type { WriteOptions } from "../../src/CacheStore.ts"
import type * as Ttl from "../../src/Ttl.ts"

/** What a stamped entry is. */
export type Kind = "value" | "stale" | "negative"

/** The stamp of an entry. */
export interface Stamp {
  /** Until when (epoch ms) it is answered without a load; `Infinity` for never expiring. */
  readonly freshUntil: number
  /** Until when it may stand in for a failed load (fail-safe); the store keeps it until then. */
  readonly staleUntil: number
  /** When the value was loaded or set: eager refresh starts at a fraction of `freshUntil - writtenAt`. */
  readonly writtenAt: number
  readonly kind: Kind
}

/** A stored string split into its stamp and JSON text. */
export interface Stamped {
  readonly stamp: Stamp
  readonly json: string
}

const marker = 2
const kindCodes: Record<Kind, string> = { value: "v", stale: "s", negative: "n" }

const field = (ms: number): string => (ms === Infinity ? "" : String(ms))
const parseField = (text: string): number => (text === "" ? Infinity : Number(text))

/** `json` with `stamp` in front. */
export const format = (stamp: Stamp, json: string): string =>
  `\u0002${field(stamp.freshUntil)},${field(stamp.staleUntil)},${stamp.writtenAt},${kindCodes[stamp.kind]}\u0000${json}`

/** The stamp and JSON of a stamped string; undefined for one that is not (one character read) or is malformed. */
export const parse = (text: string): Stamped | undefined => {
  if (text.charCodeAt(0) !== marker) return undefined
  const end = text.indexOf("\u0000", 1)
  if (end < 0) return undefined
  const fields = text.slice(1, end).split(",")
  if (fields.length !== 4) return undefined
  const kind = fields[3] === "v" ? "value" : fields[3] === "s" ? "stale" : fields[3] === "n" ? "negative" : undefined
  const freshUntil = parseField(fields[0]!)
  const staleUntil = parseField(fields[1]!)
  const writtenAt = Number(fields[2])
  if (kind === undefined || Number.isNaN(freshUntil) || Number.isNaN(staleUntil) || Number.isNaN(writtenAt)) {
    return undefined
  }
  return { stamp: { freshUntil, staleUntil, writtenAt, kind }, json: text.slice(end + 1) }
}

/** Whether an entry with `stamp` is a fresh value at `now` (not stale, not negative). */
export const isFreshValue = (stamp: Stamp, now: number): boolean => stamp.kind === "value" && now < stamp.freshUntil

/** Whether an entry with `stamp` is a negative entry still fresh at `now`. */
export const isFreshNegative = (stamp: Stamp, now: number): boolean =>
  stamp.kind === "negative" && now < stamp.freshUntil

/** The freshness `stamp` has left from `from` in milliseconds, as TTLs are answered: -1 for never expiring. */
export const remainingMs = (stamp: Stamp, from: number): number =>
  stamp.freshUntil === Infinity ? -1 : stamp.freshUntil - from

/** How a cache treats freshness, from its options. */
export interface Policy {
  /** Whether entries are written stamped at all. */
  readonly stamps: boolean
  /** How long past its TTL an entry may stand in for a failed load; 0: fail-safe off. */
  readonly maxStaleMs: number
  /** How long a stale copy answered after a failed load is answered before the source is tried again. */
  readonly throttleMs: number
  readonly softTimeoutMs: number | undefined
  readonly hardTimeoutMs: number | undefined
  /** The fraction of the TTL after which a hit starts a background refresh; undefined: off. */
  readonly eagerRefresh: number | undefined
  /** TTL of negative entries; 0: off. */
  readonly negativeTtlMs: number
}

/** A positive, finite duration in whole ms; undefined for none or 0 (off: `Ttl.toMillis` would round 0 up to 1 ms). */
const positive = (input: Ttl.Input | undefined): number | undefined => {
  const ms = input === undefined ? 0 : Duration.toMillis(input)
  return ms > 0 && Number.isFinite(ms) ? Math.ceil(ms) : undefined
}

/** The policy of the options; everything off when none is set. */
export const policy = (options: {
  readonly failSafe?: { readonly maxStale: Ttl.Input; readonly throttle?: Ttl.Input | undefined } | undefined
  readonly sourceTimeouts?: { readonly soft?: Ttl.Input | undefined; readonly hard?: Ttl.Input | undefined } | undefined
  readonly eagerRefresh?: number | undefined
  readonly negativeTtl?: Ttl.Input | undefined
}): Policy => {
  const maxStaleMs = positive(options.failSafe?.maxStale) ?? 0
  const eager = options.eagerRefresh
  const eagerRefresh = eager !== undefined && eager > 0 && eager < 1 ? eager : undefined
  const negativeTtlMs = positive(options.negativeTtl) ?? 0
  return {
    stamps: maxStaleMs > 0 || eagerRefresh !== undefined || negativeTtlMs > 0,
    maxStaleMs,
    throttleMs: positive(options.failSafe?.throttle) ?? 30_000,
    softTimeoutMs: positive(options.sourceTimeouts?.soft),
    hardTimeoutMs: positive(options.sourceTimeouts?.hard),
    eagerRefresh,
    negativeTtlMs
  }
}

/**
 * The stored text and write options of a value written at `now` with `options`: stamped, and kept `maxStaleMs` longer,
 * when the policy stamps; `json` and `options` as they are otherwise.
 */
export const stored = (
  policy: Policy,
  json: string,
  now: number,
  options: WriteOptions
): { readonly text: string; readonly options: WriteOptions } => {
  if (!policy.stamps) return { text: json, options }
  const ttlMs = options.ttlMs
  const freshUntil = ttlMs === undefined ? Infinity : now + ttlMs
  const stamp: Stamp = { freshUntil, staleUntil: freshUntil + policy.maxStaleMs, writtenAt: now, kind: "value" }
  return {
    text: format(stamp, json),
    options: { ttlMs: ttlMs === undefined ? undefined : ttlMs + policy.maxStaleMs, tags: options.tags }
  }
}

/** When a hit on a value with `stamp` should start a background refresh (epoch ms); `Infinity` for never. */
export const refreshAt = (policy: Policy, stamp: Stamp): number =>
  policy.eagerRefresh === undefined || stamp.kind !== "value" || stamp.freshUntil === Infinity
    ? Infinity
    : stamp.writtenAt + policy.eagerRefresh * (stamp.freshUntil - stamp.writtenAt)
