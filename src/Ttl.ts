/**
 * Time-to-live. The API takes TTLs as Effect `Duration` inputs; stores work in whole milliseconds; the REST
 * contract speaks seconds with `-1` for "no expiry". Conversions live here so every edge rounds the same way.
 */
import { Duration, Schema } from "effect"

/** The longest TTL accepted: Redis keeps expiry times in signed 64-bit milliseconds; ten years is plenty. */
export const maxSeconds = 10 * 365 * 24 * 3600

/** A TTL in whole seconds, as the REST contract and the configuration take it. */
export const TtlSeconds = Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 1, maximum: maxSeconds })))
export type TtlSeconds = typeof TtlSeconds.Type

/** A TTL as the API takes it: any Effect Duration input ("10 minutes", millis, a Duration). */
export type Input = Duration.Input

/**
 * Whole milliseconds of a TTL given as a Duration input. `undefined` and an infinite duration mean no expiry;
 * anything shorter than a millisecond becomes one millisecond (Redis refuses a zero expiry).
 */
export const toMillis = (ttl: Duration.Input | undefined): number | undefined => {
  if (ttl === undefined) return undefined
  const ms = Duration.toMillis(ttl)
  return Number.isFinite(ms) ? Math.max(1, Math.ceil(ms)) : undefined
}

/** The REST view of a remaining TTL: whole seconds rounded up, `-1` when the entry never expires. */
export const toSeconds = (remainingMs: number | undefined): number =>
  remainingMs === undefined || remainingMs < 0 ? -1 : Math.ceil(remainingMs / 1000)
