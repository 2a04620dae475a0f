// examples/UserService.ts — an Effect service that caches users; run it: `node examples/UserService.ts`
import { Effect, Schema } from "effect"
import * as Cache from "embedded-cache/effects/Cache"
import * as RedisCache from "embedded-cache/layers/RedisCache"
import { EmbeddedRedis } from "embedded-cache"

export const User = Schema.Struct({ id: Schema.Number, name: Schema.String })

const loadUser = (id: number) => Effect.succeed({ id, name: "ada" }) // your database read
const saveUser = (_id: number, _name: string) => Effect.void // your database write

// A miss loads once (concurrent callers share the load) and writes back unless the key was deleted meanwhile.
export const userById = (id: number) =>
  Cache.getOrLoad(`user:${id}`, loadUser(id), { schema: User, ttl: "10 minutes", tags: ["users"] })

// Write to the database, then drop the cached copy (a load of it still in flight is fenced, never written back).
export const renameUser = (id: number, name: string) =>
  Effect.gen(function* () {
    yield* saveUser(id, name)
    return yield* Cache.del(`user:${id}`)
  })

// Production: a supervised redis-server in ./.embedded-cache/app, shut down with the layer.
export const Live = RedisCache.layerEmbedded({
  server: { ...EmbeddedRedis.defaults(".embedded-cache/app"), maxmemory: "512mb", evictionPolicy: "allkeys-lru" }
})

if (import.meta.main) {
  const program = Effect.gen(function* () {
    const first = yield* userById(1) // a miss: loaded and cached
    const again = yield* userById(1) // a hit
    const renamed = yield* renameUser(1, "grace")
    return { first, again, renamed }
  })
  console.log(await Effect.runPromise(program.pipe(Effect.provide(Live))))
}
