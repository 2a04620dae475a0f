/**
 * The REST API assembled for `HttpRouter.serve`: the contract (`CacheApi.ts`) with its handlers, its middleware,
 * the OpenAPI document, the docs page and the guard in front of all of them. Its requirements are in its type:
 * `Cache`, `Stats` and `Readiness`; the data source comes from `InstanceSource` (none by default).
 */
import { Layer } from "effect"
import { HttpApiBuilder, HttpApiSwagger } from "effect/http-api"
import { CacheApi, docsPath, openApiPath } from "./CacheApi.ts"
import * as Guard from "./Guard.ts"
import * as Handlers from "./Handlers.ts"

/** What the routes are configured with: the guard's options and the handlers'. */
export interface ApiOptions extends Guard.GuardOptions, Handlers.HandlerOptions {}

/**
 * Every route of the API — `/` (an index of the others), `/api/v1/cache/*`, `/healthz`, `/readyz`, `/metrics`,
 * `/openapi.json`, `/docs` — with the guard, for `HttpRouter.serve`.
 */
export const layerRoutes = (options: ApiOptions = {}) =>
  Layer.mergeAll(
    HttpApiBuilder.layer(CacheApi, { openapiPath: openApiPath }).pipe(
      Layer.provide([Handlers.layerCacheHandlers(options), Handlers.layerSystemHandlers]),
      Layer.provide([Guard.layerAuthorization(options), Guard.layerRequestErrors])
    ),
    HttpApiSwagger.layer(CacheApi, { path: docsPath }),
    // A plain GET of an entry is answered by the guard from the cache, without the endpoint's schema work.
    Guard.layerGuard(options, Handlers.entryAnswer)
  )
