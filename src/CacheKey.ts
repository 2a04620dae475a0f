/**
 * Cache keys: non-empty, at most 512 UTF-8 bytes, and free of control characters. Control characters are
 * reserved so that the toolkit's own bookkeeping (leases, tag indexes) can never collide with a user's key.
 */
import { Schema } from "effect"

/** The largest key, in UTF-8 bytes. */
export const maxBytes = 512

/** Length of a string in UTF-8 bytes, without allocating an encoder buffer. */
export const utf8Length = (s: string): number => {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

const isControl = (c: number): boolean => c < 0x20 || (c >= 0x7f && c <= 0x9f)

/** Why a string is not a valid key, or `undefined` when it is one. Cheap enough for the hot path. */
export const validate = (key: string): string | undefined => {
  if (key.length === 0) return "a key must not be empty"
  for (let i = 0; i < key.length; i++) {
    if (isControl(key.charCodeAt(i))) return "a key must not contain control characters"
  }
  // Every UTF-16 unit is at most 3 UTF-8 bytes, so short keys skip the byte count.
  if (key.length * 3 > maxBytes && utf8Length(key) > maxBytes) return `a key must be at most ${maxBytes} bytes`
  return undefined
}

/** A key that passes {@link validate}. */
export const CacheKey = Schema.String.pipe(
  Schema.check(Schema.makeFilter((key: string) => validate(key) ?? true)),
  Schema.brand("CacheKey")
)
export type CacheKey = typeof CacheKey.Type

/** A string rejected as a key, with the reason. */
export class InvalidKeyError extends Schema.TaggedError<InvalidKeyError>()("InvalidKeyError", {
  key: Schema.String,
  message: Schema.String
}) {}
