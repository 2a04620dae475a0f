/**
 * A real SNS/SQS protocol peer for tests: the fauxqs emulator, in the test process, listening on 127.0.0.1 only
 * (on a port the OS picks), with all state in memory, stopped when the scope closes. fauxqs's own
 * `startFauxqs` always listens on 0.0.0.0, so its Fastify app is built with `buildApp` and bound here instead.
 */
import { Effect } from "effect"
import { buildApp } from "fauxqs"
import type { AddressInfo } from "node:net"

/** How to reach a running emulator: what an SDK client (or the bus layer) needs. */
export interface Fauxqs {
  readonly endpoint: string
  readonly host: string
  readonly port: number
  readonly region: string
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
}

/** Starts fauxqs on 127.0.0.1:<free port>; closes it (and every connection to it) when the scope closes. */
export const make = (options: { readonly region?: string } = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const region = options.region ?? "us-east-1"
      const app = buildApp({ logger: false, defaultRegion: region })
      await app.listen({ port: 0, host: "127.0.0.1" })
      const { address, port } = app.server.address() as AddressInfo
      return { app, region, address, port }
    }),
    ({ app }) => Effect.promise(() => app.close())
  ).pipe(
    Effect.map(({ address, port, region }): Fauxqs => ({
      endpoint: `http://${address}:${port}`,
      host: address,
      port,
      region,
      credentials: { accessKeyId: "test", secretAccessKey: "test" }
    }))
  )

/** The AWS SDK environment that points a `serve` process (or any SDK client) at `fauxqs`. */
export const awsEnv = (fauxqs: Fauxqs): Record<string, string> => ({
  AWS_ENDPOINT_URL: fauxqs.endpoint,
  AWS_REGION: fauxqs.region,
  AWS_ACCESS_KEY_ID: fauxqs.credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: fauxqs.credentials.secretAccessKey
})
