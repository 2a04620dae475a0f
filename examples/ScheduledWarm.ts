// examples/ScheduledWarm.ts — re-warm keys on a schedule from a data source; run it: `node examples/ScheduledWarm.ts`
import { Effect, Layer, Schedule } from "effect"
import * as WarmSchedule from "embedded-cache/effects/WarmSchedule"
import * as CacheLayers from "embedded-cache/layers/CacheLayers"
import * as FileDataSource from "embedded-cache/layers/source/FileDataSource"
import * as path from "node:path"

// The source of truth: a JSON file of key → value (in production: HttpDataSource, SqlDataSource or your own).
const Source = FileDataSource.layer(path.join(import.meta.dirname, "data", "users.json"))

// Every 200 ms here; in production a cron expression: WarmSchedule.layerCron("*/15 * * * *", { keys }).
const Warming = WarmSchedule.layer({
  keys: ["user:1", "user:2", "user:3"],
  schedule: Schedule.spaced("200 millis"),
  ttl: "1 hour"
})

const program = Effect.gen(function* () {
  const schedule = yield* WarmSchedule.WarmSchedule
  // Watch three runs go by, then leave: closing the layer's scope stops the schedule.
  yield* schedule.runs.pipe(Effect.repeat({ until: (runs) => runs >= 3, schedule: Schedule.spaced("20 millis") }))
  const last = yield* schedule.lastRun
  console.log("runs:", yield* schedule.runs, "last:", last._tag === "Some" ? last.value.report : undefined)
})

await Effect.runPromise(
  program.pipe(Effect.provide(Warming.pipe(Layer.provideMerge(Layer.merge(CacheLayers.layerMemory(), Source)))))
)
