import { Effect } from "effect"
import * as MemoryBus from "../../../layers/bus/MemoryBus.ts"
import * as InvalidationBusSuite from "../../suites/InvalidationBusSuite.ts"

InvalidationBusSuite.suite(
  "MemoryBus",
  (ids) =>
    Effect.map(MemoryBus.makeHub({ instances: ids, mode: "auto", visibilityTimeoutMs: 200 }), (hub) =>
      ids.map((id) => hub.bus(id))
    ),
  { redeliveryWithinMs: 2000 }
)
