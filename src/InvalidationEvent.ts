/**
 * The invalidation event, version 1: what instances publish to each other (and what other services may
 * publish onto the topic). `seq` is per publisher and increases by one per event, for gap detection; the
 * timestamp is informational (lag metrics) and never decides validity.
 */
import { Schema } from "effect"
import { CacheKey } from "./CacheKey.ts"

const Common = {
  version: Schema.Literal(1),
  /** Unique per event; deliveries of the same event share it, so duplicates are recognised. */
  event_id: Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(128))),
  /** The publishing instance. */
  source_instance: Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(256))),
  /** The publisher's sequence number: 1, 2, 3, … without gaps. */
  seq: Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(1))),
  /** Publish time in epoch milliseconds, by the publisher's clock. */
  timestamp: Schema.Finite
}

/** A glob pattern as Redis's MATCH takes it. */
export const Pattern = Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(1024)))

/** A tag. */
export const Tag = Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(256)))

/** Invalidates one key. */
export const KeyInvalidation = Schema.Struct({ ...Common, invalidation_type: Schema.Literal("key"), key: CacheKey })

/** Invalidates every key matching a glob; `all` must be true for a pattern that matches everything. */
export const PatternInvalidation = Schema.Struct({
  ...Common,
  invalidation_type: Schema.Literal("pattern"),
  pattern: Pattern,
  all: Schema.optionalKey(Schema.Boolean)
})

/** Invalidates every entry carrying any of the tags. */
export const TagInvalidation = Schema.Struct({
  ...Common,
  invalidation_type: Schema.Literal("tag"),
  tags: Schema.NonEmptyArray(Tag)
})

/** An invalidation event of any of the three types. */
export const InvalidationEvent = Schema.Union([KeyInvalidation, PatternInvalidation, TagInvalidation])
export type InvalidationEvent = typeof InvalidationEvent.Type

/** The event as JSON text, the wire format on the bus. */
export const InvalidationEventJson = Schema.fromJsonString(InvalidationEvent)

/** What an event invalidates, without its envelope: what local programs take and publishers wrap. */
export type Target =
  | { readonly invalidation_type: "key"; readonly key: string }
  | { readonly invalidation_type: "pattern"; readonly pattern: string; readonly all?: boolean }
  | { readonly invalidation_type: "tag"; readonly tags: ReadonlyArray<string> }

/** A pattern refused: it matches every key and `all` was not set, or it is empty. */
export class InvalidPatternError extends Schema.TaggedError<InvalidPatternError>()("InvalidPatternError", {
  pattern: Schema.String,
  message: Schema.String
}) {}
