/**
 * The five data types an entry can hold and their value shapes, as the REST contract spells them:
 * string, hash (object of strings), set and list (arrays of strings), sorted_set (array of {member, score}).
 */
import { Schema } from "effect"

/** The name of a data type. */
export const DataType = Schema.Literals(["string", "hash", "set", "sorted_set", "list"])
export type DataType = typeof DataType.Type

/** A sorted-set member with its score. */
export const ScoredMember = Schema.Struct({ member: Schema.String, score: Schema.Finite })
export type ScoredMember = typeof ScoredMember.Type

/** A string entry. */
export const StringValue = Schema.Struct({ type: Schema.Literal("string"), value: Schema.String })
/** A hash entry: field → string. */
export const HashValue = Schema.Struct({
  type: Schema.Literal("hash"),
  value: Schema.Record(Schema.String, Schema.String)
})
/** A set entry: distinct members, unordered. */
export const SetValue = Schema.Struct({ type: Schema.Literal("set"), value: Schema.Array(Schema.String) })
/** A sorted-set entry, ordered by score. */
export const SortedSetValue = Schema.Struct({ type: Schema.Literal("sorted_set"), value: Schema.Array(ScoredMember) })
/** A list entry, in order. */
export const ListValue = Schema.Struct({ type: Schema.Literal("list"), value: Schema.Array(Schema.String) })

/** A value of any of the five data types, tagged by `type`. */
export const CacheValue = Schema.Union([StringValue, HashValue, SetValue, SortedSetValue, ListValue])
export type CacheValue = typeof CacheValue.Type
