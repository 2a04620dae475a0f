/**
 * The one place a store is chosen: in process, a supervised embedded redis-server, or an external Redis. The
 * `serve` sidecar (from its configuration) and the Promise facade (from its options) both build their store here.
 */
import { Layer } from "effect"
import type { CacheStore, CacheStoreError } from "../../src/CacheStore.ts"
import type { EmbeddedRedisConfig, RedisServerError } from "../../src/EmbeddedRedis.ts"
import * as EmbeddedRedisServer from "./EmbeddedRedisServer.ts"
import * as MemoryStore from "./MemoryStore.ts"
import * as RedisStore from "./RedisStore.ts"

/** Which store an instance runs on. */
export type StoreChoice =
  | { readonly _tag: "memory" }
  | { readonly _tag: "external"; readonly connection: string }
  | {
      readonly _tag: "embedded"
      readonly server: EmbeddedRedisConfig
      readonly store?: Omit<RedisStore.RedisStoreOptions, "connection"> | undefined
    }

/** The store `choice` names; an embedded server comes with it (and is shut down with the layer). */
export const layer = (choice: StoreChoice): Layer.Layer<CacheStore, CacheStoreError | RedisServerError> => {
  switch (choice._tag) {
    case "memory":
      return MemoryStore.layer
    case "external":
      return RedisStore.layer({ connection: choice.connection })
    case "embedded":
      return RedisStore.layerEmbedded(choice.store).pipe(Layer.provide(EmbeddedRedisServer.layer(choice.server)))
  }
}
