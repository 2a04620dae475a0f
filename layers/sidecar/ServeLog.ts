/**
 * What `serve` says about itself: one line once the REST API listens (the chosen store with its socket and data dir,
 * persistence, bus, source and the bound address — the real port when 0 was asked), one line once it has stopped,
 * and one line, not a stack trace, for each way a start can fail (a port in use, a data dir that cannot be written,
 * a missing redis-server, a data dir locked by another process, an invalid setting).
 */
import { Cause, Effect, Exit, Layer, Option } from "effect"
import { HttpServer } from "effect/http"
import * as path from "node:path"
import type * as CacheConfig from "../../src/CacheConfig.ts"
import * as DataDir from "../store/DataDir.ts"
import * as SqsQueue from "../bus/SqsQueue.ts"
import type * as StoreChoice from "../store/StoreChoice.ts"

/** What the startup line reports, as chosen from the configuration. */
export interface Facts {
  readonly instanceId: string
  readonly store: StoreChoice.StoreChoice
  readonly config: CacheConfig.CacheConfig
  readonly service: CacheConfig.ServiceConfig
}

/** A Redis URL without its password. */
const redactUrl = (connection: string): string => {
  try {
    const url = new URL(connection)
    if (url.password !== "") url.password = "***"
    return url.toString()
  } catch {
    return connection // a unix socket path
  }
}

/** The store, in words: its kind and where its data lives. */
export const describeStore = (store: StoreChoice.StoreChoice): string => {
  switch (store._tag) {
    case "memory":
      return "store memory (in process, nothing persisted)"
    case "external":
      return `store external (${redactUrl(store.connection)})`
    case "embedded": {
      const paths = DataDir.pathsOf(path.resolve(store.server.dataDir))
      return `store embedded (socket ${paths.socket}, data dir ${paths.dataDir}, persistence ${store.server.persistence})`
    }
  }
}

/** The bus, in words: none, or the topic and this instance's queue. */
const describeBus = (facts: Facts): string => {
  const { config, instanceId } = facts
  if (config.bus === "none") return "bus none"
  const topic = Option.getOrElse(config.snsTopicArn, () => Option.getOrElse(config.snsTopicName, () => "?"))
  const queue = Option.getOrElse(config.sqsQueueUrl, () => SqsQueue.queueName(config.sqsQueuePrefix, instanceId))
  return `bus sns-sqs (topic ${topic}, queue ${queue})`
}

/** Logs the startup line once the server listens; needs the bound `HttpServer`. */
export const layerStartupLine = (facts: Facts): Layer.Layer<never, never, HttpServer.HttpServer> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const server = yield* HttpServer.HttpServer
      const address = HttpServer.formatAddress(server.address)
      const source = `source ${facts.service.source}`
      yield* Effect.logInfo(
        `embedded-cache ${facts.instanceId} serving ${address}: ${describeStore(facts.store)}, ${describeBus(facts)}, ${source}`
      ).pipe(
        Effect.annotateLogs({
          event: "started",
          listen: address,
          store: facts.store._tag,
          bus: facts.config.bus,
          source: facts.service.source
        })
      )
    })
  )

/** Logs the one shutdown line after every finalizer ran, when `serve` stopped on a signal (not on a failure). */
export const logStopped = (instanceId: string, startedAt: number) => (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)
    ? Effect.logInfo(
        `embedded-cache ${instanceId} stopped after ${Math.round((Date.now() - startedAt) / 1000)} s`
      ).pipe(Effect.annotateLogs({ event: "stopped" }))
    : Effect.void

/** A Node error's `code`, if it has one. */
const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined

/** Any text on one line. */
const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/** The message of a failure that stopped `serve` from starting, on one line, with what to do about it. */
export const describeFailure = (error: unknown, service?: CacheConfig.ServiceConfig): string => {
  const tagged = error as { readonly _tag?: string; readonly message?: string; readonly cause?: unknown }
  switch (tagged._tag) {
    case "ServeError": {
      const where = service === undefined ? "the REST API's address" : `${service.httpHost}:${service.httpPort}`
      const code = codeOf(tagged.cause)
      if (code === "EADDRINUSE") {
        return `cannot listen on ${where}: the port is in use by another process (set CACHE_HTTP_PORT to a free port, or stop that process)`
      }
      if (code === "EACCES") return `cannot listen on ${where}: permission denied (use a port above 1023)`
      if (code === "EADDRNOTAVAIL") return `cannot listen on ${where}: no such local address (check CACHE_HTTP_HOST)`
      const cause = tagged.cause instanceof Error ? tagged.cause.message : String(tagged.cause)
      return `cannot listen on ${where}: ${oneLine(cause)}`
    }
    case "ConfigError": {
      // "SchemaError(Expected … at ["CACHE_X"])" → "CACHE_X: Expected …"
      const text = oneLine(tagged.message ?? "").replace(/^SchemaError\((.*)\)$/, "$1")
      const located = /^(.*) at \["([^"]+)"\]$/.exec(text)
      return located === null ? `invalid configuration: ${text}` : `invalid ${located[2]}: ${located[1]}`
    }
    case "InvalidConfigError": {
      const { variable, message } = error as { readonly variable: string; readonly message: string }
      return message.includes(variable) ? message : `${variable}: ${message}`
    }
    case "RedisServerError": {
      const { reason, message } = error as { readonly reason: string; readonly message: string }
      if (reason === "Locked") {
        return (
          `${oneLine(message)} (a running sidecar?): stop it, or give this process its own CACHE_INSTANCE_ID ` +
          `(or CACHE_DATA_DIR)`
        )
      }
      if (reason === "BinaryNotFound") return `CACHE_STORE=embedded: ${oneLine(message)}`
      if (message.startsWith("the socket path")) return `${oneLine(message)} (CACHE_DATA_DIR)`
      if (message.startsWith("cannot create the data dir") || message.startsWith("cannot write")) {
        return `${oneLine(message)} (set CACHE_DATA_DIR to a writable directory)`
      }
      return oneLine(message)
    }
    default: {
      const message = oneLine(tagged.message ?? "")
      if (message !== "") return tagged._tag === undefined ? message : `${tagged._tag}: ${message}`
      return oneLine(String(error))
    }
  }
}
