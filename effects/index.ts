/**
 * The programs of embedded-cache over its ports. Importing it loads only `effect` and `src/`; adapters are
 * imported one by one from `embedded-cache/layers/*`.
 */
export * as Cache from "./Cache.ts"
export * as Metrics from "./SyncMetrics.ts"
export * as Publisher from "./Publisher.ts"
export * as Stats from "./Stats.ts"
export * as SyncConsumer from "./SyncConsumer.ts"
export * as Warm from "./Warm.ts"
