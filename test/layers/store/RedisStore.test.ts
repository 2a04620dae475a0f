import { Layer } from "effect"
import * as RedisStore from "../../../layers/store/RedisStore.ts"
import * as CacheStoreSuite from "../../suites/CacheStoreSuite.ts"
import * as EmbeddedServer from "../../utils/EmbeddedServer.ts"

// One server for the file; the store layer is memoized, so every test shares one connection.
const store = RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedServer.layer()))

CacheStoreSuite.suite("RedisStore", store, { clock: "live" })
