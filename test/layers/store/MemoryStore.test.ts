import * as MemoryStore from "../../../layers/store/MemoryStore.ts"
import * as CacheStoreSuite from "../../suites/CacheStoreSuite.ts"

CacheStoreSuite.suite("MemoryStore", MemoryStore.layer, { clock: "test" })
