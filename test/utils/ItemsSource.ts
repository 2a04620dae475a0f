/**
 * A real HTTP data source for end-to-end tests: `GET /items/<key>` answers the key's JSON value, 404 when
 * absent, 500 for keys starting with `boom:` (and for every key while `control.failing`). Listens on 127.0.0.1 and
 * closes with the scope; yields the URL template `CACHE_SOURCE_URL` takes. `control.requests` counts requests per key.
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** What a test steers and reads: an outage switch and the requests seen per key. */
export interface Control {
  failing: boolean
  readonly requests: Map<string, number>
}

/** A control with the source up and no requests seen. */
export const control = (): Control => ({ failing: false, requests: new Map() })

/** Serves `items` (read on every request, so a test may change it) and yields `http://127.0.0.1:<port>/items/{key}`. */
export const make = (items: Record<string, unknown>, steer: Control = control()) =>
  Effect.acquireRelease(
    Effect.callback<http.Server>((resume) => {
      const server = http.createServer((request, response) => {
        const key = decodeURIComponent((request.url ?? "").replace(/^\/items\//, ""))
        steer.requests.set(key, (steer.requests.get(key) ?? 0) + 1)
        if (steer.failing || key.startsWith("boom:")) {
          response.writeHead(500).end("boom")
          return
        }
        if (!(key in items)) {
          response.writeHead(404).end()
          return
        }
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(items[key]))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/items/{key}`))
