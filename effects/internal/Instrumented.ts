/**
 * The instrumenting `Cache`: a wrapper that delegates every call to the real cache and records its operation and
 * duration in a `Recorder`. It reads the `Clock` once before and once after each call, whether the call succeeds,
 * fails or is interrupted, and changes nothing about the call's result; members it does not know pass through.
 */
import type { Clock } from "effect"
import { Effect } from "effect"
import { Cache } from "../Cache.ts"
import type { Operation } from "../StatsSnapshot.ts"
import type { Recorder } from "./Recorder.ts"

/** A `Cache` that delegates to `inner` and records, per call, its operation and duration in `recorder`. */
export const instrument = (inner: Cache["Service"], recorder: Recorder, clock: Clock.Clock): Cache["Service"] => {
  const timed = <A, E, R>(operation: Operation, run: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
    const stats = recorder.byOperation[operation]
    return Effect.suspend(() => {
      const start = clock.monotonicTimeNanosUnsafe()
      return Effect.flatMap(Effect.exit(run()), (exit) => {
        const end = clock.monotonicTimeNanosUnsafe()
        recorder.add(stats, Number(end - start) / 1e6, end)
        return exit
      })
    })
  }
  return Cache.of({
    ...inner,
    get: (key, schema) => timed("get", () => inner.get(key, schema)),
    set: (key, value, options) => timed("set", () => inner.set(key, value, options)),
    delete: (key) => timed("delete", () => inner.delete(key)),
    exists: (key) => timed("read", () => inner.exists(key)),
    ttl: (key) => timed("read", () => inner.ttl(key)),
    getOrLoad: (key, load, options) => timed("getOrLoad", () => inner.getOrLoad(key, load, options)),
    getMany: (keys, options) => timed("getMany", () => inner.getMany(keys, options)),
    read: (key) => timed("read", () => inner.read(key)),
    readEntry: (key) => timed("read", () => inner.readEntry(key)),
    write: (key, value, options) => timed("write", () => inner.write(key, value, options)),
    hashSet: (key, fields, options) => timed("write", () => inner.hashSet(key, fields, options)),
    hashGet: (key, field) => timed("read", () => inner.hashGet(key, field)),
    setAdd: (key, members, options) => timed("write", () => inner.setAdd(key, members, options)),
    setHas: (key, member) => timed("read", () => inner.setHas(key, member)),
    sortedSetAdd: (key, members, options) => timed("write", () => inner.sortedSetAdd(key, members, options)),
    sortedSetRange: (key, start, stop) => timed("read", () => inner.sortedSetRange(key, start, stop)),
    listPush: (key, values, options) => timed("write", () => inner.listPush(key, values, options)),
    listRange: (key, start, stop) => timed("read", () => inner.listRange(key, start, stop)),
    invalidate: (target) => timed("invalidate", () => inner.invalidate(target))
  })
}
