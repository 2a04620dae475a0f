/**
 * The programs of embedded-cache over its ports. Importing it loads only `effect` and `src/`; adapters are
 * imported one by one from `embedded-cache/layers/*`.
 */
export * as Cache from "./Cache.ts"
