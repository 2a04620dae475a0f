/**
 * Reading what the store holds with a caller's schema: an entry that no longer decodes (the schema changed, another
 * tool wrote it) is deleted, counted and logged, and reads as a miss — never a crash. A stamped entry (see
 * `Freshness`) reads as its value while it is fresh, and as a miss (left in place) once it is not.
 */
import { Effect, Exit, Option } from "effect"
import type { CacheStore } from "../../src/CacheStore.ts"
import type { Counters } from "./CacheCounters.ts"
import type { Codec } from "./Codec.ts"
import * as Freshness from "./Freshness.ts"

/** Decoding of stored entries for one cache. */
export interface StoredEntry {
  /** Deletes, counts and logs an entry that no longer decodes. */
  readonly undecodable: (key: string) => Effect.Effect<void>
  /**
   * The stored text decoded with `codec`; none (after `undecodable`) when it does not decode, and none when it is a
   * stamped entry past its freshness or a negative one.
   */
  readonly decode: <A>(key: string, text: string, codec: Codec<A>) => Effect.Effect<Option.Option<A>>
}

/** Decoding over `store`, counting into `counters`. */
export const make = (store: CacheStore["Service"], counters: Counters, now: () => number): StoredEntry => {
  const undecodable = (key: string): Effect.Effect<void> => {
    counters.decodeFailures++
    return Effect.logWarning("cached entry no longer decodes; deleted and treated as a miss").pipe(
      Effect.annotateLogs({ key }),
      Effect.andThen(Effect.ignore(store.delete([key])))
    )
  }
  return {
    undecodable,
    decode: (key, text, codec) => {
      const stamped = Freshness.parse(text)
      // A throttled fail-safe copy counts as a value here (it is fresh until its throttle ends).
      if (stamped !== undefined && (stamped.stamp.kind === "negative" || now() >= stamped.stamp.freshUntil)) {
        return Effect.succeed(Option.none())
      }
      const decoded = codec.decode(stamped === undefined ? text : stamped.json)
      return Exit.isSuccess(decoded)
        ? Effect.succeed(Option.some(decoded.value))
        : Effect.as(undecodable(key), Option.none())
    }
  }
}
