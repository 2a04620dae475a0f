/**
 * The invalidation event: what instances publish to each other (and what other services may publish onto the
 * topic). Version 1 carries one target; version 2 carries a non-empty list of targets coalesced by the publisher,
 * and the publisher's per-boot `epoch`. Consumers accept both. `seq` is per publisher and increases by one per
 * event (message), for gap detection; the timestamp is informational (lag metrics) and never decides validity.
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

/** A version 1 event of any of the three types: one target per event. */
export const InvalidationEventV1 = Schema.Union([KeyInvalidation, PatternInvalidation, TagInvalidation])
export type InvalidationEventV1 = typeof InvalidationEventV1.Type

/** One target of a version 2 event: a key, a pattern or tags, without the envelope. */
export const TargetSchema = Schema.Union([
  Schema.Struct({ invalidation_type: Schema.Literal("key"), key: CacheKey }),
  Schema.Struct({
    invalidation_type: Schema.Literal("pattern"),
    pattern: Pattern,
    all: Schema.optionalKey(Schema.Boolean)
  }),
  Schema.Struct({ invalidation_type: Schema.Literal("tag"), tags: Schema.NonEmptyArray(Tag) })
])

/**
 * A version 2 event: several targets published together, with the publisher's per-boot epoch. The last event of a
 * publisher that stops gracefully says so (`final: true`, usually with no targets), so peers can tell a boot that
 * ended from one that was lost.
 */
export const InvalidationEventV2 = Schema.Struct({
  ...Common,
  version: Schema.Literal(2),
  /** The publisher's boot: a new epoch is a new publisher (its seq starts again), never a gap. */
  epoch: Schema.String.pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(128))),
  /** What to invalidate, applied together; empty only on a `final` event. */
  targets: Schema.Array(TargetSchema),
  /** This is the publisher's last event of its epoch: it stopped gracefully, and nothing after `seq` follows. */
  final: Schema.optionalKey(Schema.Literal(true))
}).pipe(
  Schema.check(
    Schema.makeFilter(
      (event: { readonly targets: ReadonlyArray<unknown>; readonly final?: true }) =>
        event.targets.length > 0 || event.final === true || "targets must not be empty (except on a final event)"
    )
  )
)
export type InvalidationEventV2 = typeof InvalidationEventV2.Type

/** An invalidation event of either version. */
export const InvalidationEvent = Schema.Union([
  KeyInvalidation,
  PatternInvalidation,
  TagInvalidation,
  InvalidationEventV2
])
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

/** The targets an event carries: its list (v2), or its one target (v1). */
export const targetsOf = (event: InvalidationEvent): ReadonlyArray<Target> => {
  if (event.version === 2) return event.targets
  switch (event.invalidation_type) {
    case "key":
      return [{ invalidation_type: "key", key: event.key }]
    case "pattern":
      return [
        event.all === undefined
          ? { invalidation_type: "pattern", pattern: event.pattern }
          : { invalidation_type: "pattern", pattern: event.pattern, all: event.all }
      ]
    case "tag":
      return [{ invalidation_type: "tag", tags: event.tags }]
  }
}

/** Whether the event is its publisher's last of the epoch (a graceful stop). */
export const isFinal = (event: InvalidationEvent): boolean => event.version === 2 && event.final === true

/** The publisher's epoch of a v2 event; undefined for v1 (which knows no epochs). */
export const epochOf = (event: InvalidationEvent): string | undefined => (event.version === 2 ? event.epoch : undefined)

/** What an event invalidates, for message attributes and logs: its targets' type, or "mixed". */
export const kindOf = (event: InvalidationEvent): string => {
  if (event.version === 1) return event.invalidation_type
  const first = event.targets[0]?.invalidation_type
  if (first === undefined) return "final"
  return event.targets.every((t) => t.invalidation_type === first) ? first : "mixed"
}
