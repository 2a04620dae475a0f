// examples/PromiseCache.ts — the cache without Effect: plain Promises; run it: `node examples/PromiseCache.ts`
import { createCache } from "embedded-cache/layers/PromiseCache"

const loadUser = async () => ({ id: 2, name: "grace" }) // your database read

// "memory" needs no Redis; { store: "embedded", dataDir } supervises a redis-server, { store: "external", url } uses yours.
const cache = await createCache({ store: "memory", defaultTtl: 600 })
try {
  await cache.set("user:1", { id: 1, name: "ada" }, { ttl: 60, tags: ["users"] })
  console.log(await cache.get("user:1")) // { id: 1, name: 'ada' }

  // Cache-aside: the loader runs on a miss only, once however many callers ask at the same time.
  console.log(await cache.getOrLoad("user:2", loadUser, { tags: ["users"] }))

  console.log(await cache.invalidateTags(["users"])) // { removed: 2, pending: false }
  console.log(await cache.get("user:1")) // undefined
} finally {
  await cache.close() // disposes the runtime (and stops an embedded redis-server)
}
