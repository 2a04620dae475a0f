/**
 * A real redis-server for a test file: spawned by the product's own EmbeddedRedisServer layer in a fresh temp
 * dir (unix socket only, never port 6379), removed with the layer.
 */
import { Effect, Layer } from "effect"
import * as EmbeddedRedisServer from "../../layers/store/EmbeddedRedisServer.ts"
import { defaults, type EmbeddedRedis, type EmbeddedRedisConfig } from "../../src/EmbeddedRedis.ts"
import * as TempDir from "./TempDir.ts"

/** An embedded server in a temp dir, with `overrides` on the production defaults. */
export const layer = (
  overrides: Partial<Omit<EmbeddedRedisConfig, "dataDir">> = {}
): Layer.Layer<EmbeddedRedis, unknown> =>
  Layer.unwrap(Effect.map(TempDir.make, (dir) => EmbeddedRedisServer.layer({ ...defaults(dir), ...overrides })))
