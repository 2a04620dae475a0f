/**
 * The domain of embedded-cache: keys, values, TTLs, and the ports (`CacheStore`, `DataSource`, `EmbeddedRedis`)
 * that adapters in `layers/` implement. Importing it loads only `effect`.
 */
export * as CacheConfig from "./CacheConfig.ts"
export * as CacheKey from "./CacheKey.ts"
export * as CacheStore from "./CacheStore.ts"
export * as CacheValue from "./CacheValue.ts"
export * as DataSource from "./DataSource.ts"
export * as EmbeddedRedis from "./EmbeddedRedis.ts"
export * as Glob from "./Glob.ts"
export * as Ttl from "./Ttl.ts"
