// examples/SyncedCache.ts — two instances kept coherent over SNS/SQS; run it with AWS credentials, or against an emulator: `AWS_ENDPOINT_URL=http://127.0.0.1:4566 node examples/SyncedCache.ts`
import { Context, Effect, Layer, Option, Schedule, Schema } from "effect"
import { EmbeddedRedis } from "embedded-cache"
import * as Cache from "embedded-cache/effects/Cache"
import * as CacheLayers from "embedded-cache/layers/CacheLayers"
import * as SnsSqsBus from "embedded-cache/layers/bus/SnsSqsBus"
import * as EmbeddedRedisServer from "embedded-cache/layers/store/EmbeddedRedisServer"
import * as RedisStore from "embedded-cache/layers/store/RedisStore"

// One instance: its own supervised redis-server, publishing its writes on the topic and applying its peers'.
const instance = (id: string) =>
  CacheLayers.layerSynced({
    store: RedisStore.layerEmbedded().pipe(
      Layer.provide(EmbeddedRedisServer.layer(EmbeddedRedis.defaults(`.embedded-cache/${id}`)))
    ),
    bus: SnsSqsBus.layer({ instanceId: id, topicName: "cache-invalidation" })
  })

if (import.meta.main) {
  const program = Effect.gen(function* () {
    // Two instances in one process here; in production each application instance runs one.
    const app1 = yield* Layer.build(instance("app-1"))
    const app2 = yield* Layer.build(instance("app-2"))
    const on = (context: Context.Context<Cache.Cache>) => Effect.provideContext(context)
    const read = Cache.get("user:1", Schema.String)

    yield* Cache.getOrLoad("user:1", Effect.succeed("ada"), { schema: Schema.String }).pipe(on(app2)) // a fill: published to nobody
    console.log("app-2 caches:", yield* read.pipe(on(app2)))

    // A delete (or set, or invalidate by key, pattern or tag) on app-1 is published, and app-2 applies it.
    yield* Cache.del("user:1").pipe(on(app1))
    const after = yield* read.pipe(
      on(app2),
      Effect.repeat({ until: Option.isNone, schedule: Schedule.spaced("10 millis") })
    )
    console.log("app-2 after app-1's delete:", after)
  })
  await Effect.runPromise(Effect.scoped(program))
}
