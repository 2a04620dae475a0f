/**
 * One load per key per instance at a time: the first caller of a missing key registers a flight, later callers of
 * the key join it. An invalidation that covers a key fences its flight — it is unregistered, so callers arriving
 * after the invalidation start a new load instead of joining one that may be stale. A joiner receives the value
 * decoded with its own schema, never another caller's value cast to its type. A flight covers the store read too: the
 * first caller of a key registers a `Reading` before it asks the store, and a caller arriving meanwhile attaches a
 * flight to it and waits — for the hit the reader found, or for the load it then leads — instead of asking the store
 * again. An invalidation drops the readings it may cover (every reading, for a pattern or tag).
 */
import { Deferred, Exit, Option, type Schema } from "effect"
import * as Glob from "../../src/Glob.ts"
import type { Target } from "../../src/InvalidationEvent.ts"
import type { Codec } from "./Codec.ts"

/** A load's answer as its callers share it: the value, the codec it was read with, and whether it is a stale copy. */
export interface Shared {
  readonly value: unknown
  readonly codec: Codec<any>
  readonly stale: boolean
}

/**
 * A load in flight: `some(shared)` once loaded, none when a getMany batch found the key missing in the source, or
 * the load's failure.
 */
export interface Flight {
  readonly result: Deferred.Deferred<Option.Option<Shared>, unknown>
  /** The tags its fill will carry: a tag invalidation fences it. */
  readonly tags: ReadonlyArray<string>
  /**
   * A refresh of an entry that stays readable meanwhile (eager refresh): callers read the store rather than wait
   * for it. Also set once a load runs on past a soft timeout, so it is counted as a background refresh once.
   */
  background: boolean
  /** The stale copy its leader found (fail-safe): what a caller still waiting at the soft timeout may get. */
  copy: { readonly text: string; readonly shared: Shared } | undefined
}

/** A caller's store read of a key in progress; `flight` is attached by the first caller that waits for it. */
export interface Reading {
  flight: Flight | undefined
  /** Set once the read answered: the reader then completes `flight` itself. */
  answered: boolean
}

/** What a reading's attached flight gets when its reader was interrupted: its callers load by themselves. */
export const abandonedRead: Option.Option<Shared> = Option.some({
  value: undefined,
  codec: undefined as never,
  stale: false
})

/** The value a joiner with `codec` gets: as is from a caller of the same schema, else re-decoded from its JSON. */
export const valueFor = <A>(shared: Shared, codec: Codec<A>): Exit.Exit<A, Schema.SchemaError> => {
  if (shared.codec === codec) return Exit.succeed(shared.value as A)
  const encoded: Exit.Exit<string, Schema.SchemaError> = shared.codec.encode(shared.value)
  return Exit.isSuccess(encoded) ? codec.decode(encoded.value) : Exit.failCause(encoded.cause)
}

/** The flights of one cache. */
export class SingleFlight {
  private readonly flights = new Map<string, Flight>()
  private readonly readings = new Map<string, Reading>()

  /** Registers a store read of `key` by a caller that will lead its load on a miss. */
  beginRead(key: string): Reading {
    const reading: Reading = { flight: undefined, answered: false }
    this.readings.set(key, reading)
    return reading
  }

  /** The store read of `key` in progress, if one is registered (and not fenced). */
  reading(key: string): Reading | undefined {
    return this.readings.size === 0 ? undefined : this.readings.get(key)
  }

  /** Unregisters `reading` unless a later one has taken the key. */
  endRead(key: string, reading: Reading): void {
    if (this.readings.get(key) === reading) this.readings.delete(key)
  }

  /** The flight of `key`, if one is registered. */
  get(key: string): Flight | undefined {
    return this.flights.get(key)
  }

  /** Registers a new flight for `key`, carrying `tags`. */
  start(key: string, tags: ReadonlyArray<string>): Flight {
    const flight: Flight = { result: Deferred.makeUnsafe(), tags, background: false, copy: undefined }
    this.flights.set(key, flight)
    return flight
  }

  /** Unregisters `flight` unless a later one (after a fence) has taken the key. */
  end(key: string, flight: Flight): void {
    if (this.flights.get(key) === flight) this.flights.delete(key)
  }

  /** Fences the flight of `key`. */
  fence(key: string): void {
    this.flights.delete(key)
    if (this.readings.size > 0) this.readings.delete(key)
  }

  /** Fences every flight `target` covers. */
  fenceTarget(target: Target): void {
    switch (target.invalidation_type) {
      case "key":
        return this.fence(target.key)
      case "pattern":
        for (const key of this.flights.keys()) if (Glob.matches(target.pattern, key)) this.flights.delete(key)
        // A reading does not know which stored entry (with which tags) it will find: drop them all.
        this.readings.clear()
        return
      case "tag":
        this.readings.clear()
        for (const [key, flight] of this.flights) {
          if (flight.tags.some((tag) => target.tags.includes(tag))) this.flights.delete(key)
        }
    }
  }

  /** Fences every flight (a flush). */
  clear(): void {
    this.flights.clear()
    this.readings.clear()
  }
}
