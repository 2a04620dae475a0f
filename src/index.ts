/**
 * The domain of embedded-cache: keys, values, TTLs, configuration, invalidation events, and the ports
 * (`CacheStore`, `DataSource`, `EmbeddedRedis`, `InvalidationBus`) that adapters in `layers/` implement.
 * Importing it loads only `effect`.
 */
export * as CacheConfig from "./CacheConfig.ts"
export * as CacheKey from "./CacheKey.ts"
export * as CacheStore from "./CacheStore.ts"
export * as CacheValue from "./CacheValue.ts"
export * as DataSource from "./DataSource.ts"
export * as EmbeddedRedis from "./EmbeddedRedis.ts"
export * as Glob from "./Glob.ts"
export * as InvalidationBus from "./InvalidationBus.ts"
export * as InvalidationEvent from "./InvalidationEvent.ts"
export * as Ttl from "./Ttl.ts"
