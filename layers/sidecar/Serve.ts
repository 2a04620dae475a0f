/**
 * The `serve` sidecar as one layer, built from the configuration (`src/CacheConfig.ts`): the store (embedded
 * redis-server, external Redis or memory), the bus when instances are synchronised, the cache instrumented for
 * stats, the data source, the startup warm-up that readiness waits for, the scheduled re-warm
 * (`CACHE_WARM_SCHEDULE`), and the REST API. Closing the layer stops accepting requests, drains those in flight,
 * stops the consumer and the schedule, and shuts the embedded server down. `run` is `embedded-cache serve`: the
 * layer at `CACHE_LOG_LEVEL`, one log line when it listens and one when it has stopped, one-line start failures.
 */
import { Context, Deferred, Duration, Effect, Layer, Option, References } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { spawnSync } from "node:child_process"
import * as Cache from "../../effects/Cache.ts"
import * as Stats from "../../effects/Stats.ts"
import * as SyncConsumer from "../../effects/SyncConsumer.ts"
import * as Warm from "../../effects/Warm.ts"
import * as WarmSchedule from "../../effects/WarmSchedule.ts"
import * as CacheConfig from "../../src/CacheConfig.ts"
import { DataSource, InstanceSource } from "../../src/DataSource.ts"
import * as CacheLayers from "../CacheLayers.ts"
import * as FileDataSource from "../source/FileDataSource.ts"
import * as HttpDataSource from "../source/HttpDataSource.ts"
import * as HttpServer from "../http/HttpServer.ts"
import * as Readiness from "../http/Readiness.ts"
import * as PendingFile from "../store/PendingFile.ts"
import * as StoreChoice from "../store/StoreChoice.ts"
import * as CliOutput from "./CliOutput.ts"
import * as KeysFile from "./KeysFile.ts"
import * as ServeLog from "./ServeLog.ts"
import * as SnsSqsBus from "../bus/SnsSqsBus.ts"
import * as SqlDataSource from "../source/SqlDataSource.ts"

/** Whether `redis-server` can be run from PATH. */
export const redisServerOnPath = (): boolean => spawnSync("redis-server", ["--version"]).status === 0

/**
 * This instance's identity: `CACHE_INSTANCE_ID`, else the host name — stable across restarts, so the default data
 * dir (and the SQS queue) of the same instance on the same host is found again. A second process on one host sets
 * its own (the data dir lock refuses it otherwise).
 */
export const instanceIdOf = (config: CacheConfig.CacheConfig): string =>
  Option.getOrElse(config.instanceId, () => os.hostname())

/** The embedded server's data dir: `CACHE_DATA_DIR`, else `.embedded-cache/<instance>`. */
export const dataDirOf = (config: CacheConfig.CacheConfig, instanceId: string): string =>
  Option.getOrElse(config.dataDir, () => path.join(".embedded-cache", instanceId))

/** The store the configuration asks for, resolving `auto` (embedded when `redis-server` is on PATH). */
export const storeChoiceOf = Effect.fnUntraced(function* (
  config: CacheConfig.CacheConfig,
  instanceId: string
): Effect.fn.Return<StoreChoice.StoreChoice, CacheConfig.InvalidConfigError> {
  let kind = config.store
  if (kind === "auto") {
    kind = redisServerOnPath() ? "embedded" : "memory"
    if (kind === "memory") yield* Effect.logWarning("redis-server is not on PATH: using the in-process memory store")
  }
  switch (kind) {
    case "memory":
      return { _tag: "memory" } satisfies StoreChoice.StoreChoice
    case "external":
      if (Option.isNone(config.redisUrl)) {
        return yield* new CacheConfig.InvalidConfigError({
          variable: "CACHE_REDIS_URL",
          message: "CACHE_STORE=external needs CACHE_REDIS_URL (a redis:// URL or a unix socket path)"
        })
      }
      return { _tag: "external", connection: config.redisUrl.value } satisfies StoreChoice.StoreChoice
    default:
      return {
        _tag: "embedded",
        server: {
          dataDir: dataDirOf(config, instanceId),
          maxmemory: config.maxmemory,
          evictionPolicy: config.evictionPolicy,
          persistence: config.persistence,
          appendfsync: config.appendfsync
        }
      } satisfies StoreChoice.StoreChoice
  }
})

/** The store layer the configuration asks for (the embedded server comes with it). */
export const storeFromConfig = Effect.fnUntraced(function* (config: CacheConfig.CacheConfig, instanceId: string) {
  return StoreChoice.layer(yield* storeChoiceOf(config, instanceId))
})

/** The bus layer the configuration asks for, if any. */
export const busFromConfig = Effect.fnUntraced(function* (config: CacheConfig.CacheConfig, instanceId: string) {
  if (config.bus === "none") return undefined
  if (Option.isNone(config.snsTopicArn) && Option.isNone(config.snsTopicName)) {
    return yield* new CacheConfig.InvalidConfigError({
      variable: "CACHE_SNS_TOPIC_ARN",
      message: "CACHE_BUS=sns-sqs needs CACHE_SNS_TOPIC_ARN or CACHE_SNS_TOPIC_NAME"
    })
  }
  return SnsSqsBus.layer({
    instanceId,
    topicArn: Option.getOrUndefined(config.snsTopicArn),
    topicName: Option.getOrUndefined(config.snsTopicName),
    queueUrl: Option.getOrUndefined(config.sqsQueueUrl),
    queuePrefix: config.sqsQueuePrefix,
    waitTimeSeconds: config.sqsWaitSeconds,
    visibilityTimeoutSeconds: config.sqsVisibilitySeconds,
    // An instance that persists its data resumes from its queue's backlog after a restart, without a flush.
    keepQueue: config.persistence !== "none"
  })
})

/** The data source each `CACHE_SOURCE` names, configured from its own variables. */
const sourceLayers = {
  http: HttpDataSource.layerConfig,
  sql: SqlDataSource.layerConfig,
  file: FileDataSource.layerConfig
} as const

/** Whether the startup warm-up is over (finished, failed or timed out). */
export class StartupWarm extends Context.Service<StartupWarm, { readonly done: Effect.Effect<boolean> }>()(
  "embedded-cache/StartupWarm"
) {}

/**
 * Warms the keys of `CACHE_WARM_KEYS_FILE` in the background, bounded by `CACHE_WARM_TIMEOUT`, in the startup mode
 * (`CACHE_WARM_MODE`, default `missing`).
 */
const layerStartupWarm = (service: CacheConfig.ServiceConfig, ttlSeconds: number) =>
  Layer.effect(
    StartupWarm,
    Effect.gen(function* () {
      const finished = yield* Deferred.make<void>()
      const done = Effect.map(Deferred.isDone(finished), (isDone) => isDone)
      if (Option.isNone(service.warmKeysFile)) {
        yield* Deferred.succeed(finished, undefined)
        return StartupWarm.of({ done })
      }
      const keys = yield* KeysFile.read(service.warmKeysFile.value).pipe(
        Effect.mapError(
          (error) => new CacheConfig.InvalidConfigError({ variable: "CACHE_WARM_KEYS_FILE", message: error.message })
        )
      )
      const source = yield* InstanceSource
      if (Option.isNone(source)) {
        return yield* new CacheConfig.InvalidConfigError({
          variable: "CACHE_WARM_KEYS_FILE",
          message: "warming keys at startup needs a data source: set CACHE_SOURCE (and CACHE_SOURCE_URL)"
        })
      }
      yield* Warm.warm(keys, {
        ttl: Duration.seconds(ttlSeconds),
        mode: CacheConfig.warmModesOf(service).startup
      }).pipe(
        Effect.provideService(DataSource, source.value),
        Effect.tap((report) =>
          Effect.logInfo("startup warm-up finished").pipe(
            Effect.annotateLogs({ ...report, failures: report.failures.length })
          )
        ),
        Effect.timeoutOrElse({
          duration: Duration.seconds(service.warmTimeoutSeconds),
          orElse: () => Effect.logWarning("startup warm-up timed out; serving anyway")
        }),
        Effect.ensuring(Deferred.succeed(finished, undefined)),
        Effect.forkScoped
      )
      return StartupWarm.of({ done })
    })
  )

/**
 * Re-warms the keys of `CACHE_WARM_KEYS_FILE` (read again at every run) on the cron `CACHE_WARM_SCHEDULE`, when
 * set, in the scheduled mode (`CACHE_WARM_MODE`, default `refresh`: present keys are reloaded too); runs never
 * overlap (a tick during a run is skipped and counted).
 */
const layerScheduledWarm = (service: CacheConfig.ServiceConfig, ttlSeconds: number) =>
  Layer.unwrap(
    Effect.gen(function* () {
      if (Option.isNone(service.warmSchedule)) return Layer.empty
      if (Option.isNone(service.warmKeysFile)) {
        return yield* new CacheConfig.InvalidConfigError({
          variable: "CACHE_WARM_SCHEDULE",
          message: "a warm-up schedule needs the keys to warm: set CACHE_WARM_KEYS_FILE"
        })
      }
      const source = yield* InstanceSource
      if (Option.isNone(source)) {
        return yield* new CacheConfig.InvalidConfigError({
          variable: "CACHE_WARM_SCHEDULE",
          message: "a warm-up schedule needs a data source: set CACHE_SOURCE (and CACHE_SOURCE_URL)"
        })
      }
      const keys = KeysFile.read(service.warmKeysFile.value)
      // Built for its effect only: the running schedule needs no consumer in the sidecar.
      return Layer.effectDiscard(
        Layer.build(
          WarmSchedule.layerCron(service.warmSchedule.value, {
            keys,
            ttl: Duration.seconds(ttlSeconds),
            mode: CacheConfig.warmModesOf(service).scheduled
          }).pipe(Layer.provide(Layer.succeed(DataSource, source.value)))
        )
      )
    })
  )

/**
 * The sidecar, from the configuration in context; once its REST API listens it logs the startup line
 * (`ServeLog.layerStartupLine`). Per-request access log lines only with `CACHE_ACCESS_LOG=true`.
 */
export const layer = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* CacheConfig.CacheConfig
    const service = yield* CacheConfig.ServiceConfig
    const logging = yield* CacheConfig.LogConfig
    const instanceId = instanceIdOf(config)
    yield* Effect.annotateLogsScoped({ instance: instanceId })
    const choice = yield* storeChoiceOf(config, instanceId)
    const store = StoreChoice.layer(choice)
    const bus = yield* busFromConfig(config, instanceId)
    const cacheOptions: Cache.CacheOptions = {
      defaultTtl: Duration.seconds(config.defaultTtlSeconds),
      l1: CacheConfig.l1Options(config),
      ...(yield* CacheConfig.loadOptions(config))
    }
    // The built source is also the `InstanceSource` the REST API and the warm-ups load through.
    const source =
      service.source === "none"
        ? Layer.empty
        : Layer.effect(InstanceSource, Effect.map(Effect.service(DataSource), Option.some)).pipe(
            Layer.provideMerge(sourceLayers[service.source])
          )
    const startup = layerStartupWarm(service, config.defaultTtlSeconds)
    const scheduled = layerScheduledWarm(service, config.defaultTtlSeconds)
    const http = HttpServer.layer({
      host: service.httpHost,
      port: service.httpPort,
      apiToken: Option.getOrUndefined(service.apiToken),
      maxBodyBytes: service.maxBodyBytes,
      instanceId,
      sourceName: service.source === "none" ? undefined : service.source,
      logRequests: logging.accessLog
    })
    const startupLine = ServeLog.layerStartupLine({ instanceId, store: choice, config, service })
    // Invalidations the store could not apply are recorded beside the data they guard, when it persists.
    const journal = choice._tag === "embedded" ? PendingFile.layerFor(choice.server) : Layer.empty
    const plain = Stats.layerInstrumented({ instanceId }).pipe(
      Layer.provideMerge(Cache.layer(cacheOptions).pipe(Layer.provide(journal), Layer.provideMerge(store)))
    )
    const warmDone = Effect.map(Effect.service(StartupWarm), (warm) => warm.done)
    const plainReadiness = Layer.unwrap(
      Effect.map(warmDone, (startupDone) => Readiness.layerReadinessFromStore({ startupDone }))
    )
    // Synced: the stats report the consumer, and readiness also waits until a restart has caught up with its peers
    // (the synced layer is one value, so providing it twice builds it once).
    const synced =
      bus === undefined
        ? undefined
        : Stats.layerInstrumentedSynced({ instanceId }).pipe(
            Layer.provideMerge(
              CacheLayers.layerSynced({ store, bus, cache: cacheOptions }).pipe(Layer.provide(journal))
            )
          )
    const instrumented = synced ?? plain
    const readiness =
      synced === undefined
        ? plainReadiness
        : Layer.unwrap(
            Effect.zipWith(warmDone, Effect.service(SyncConsumer.SyncConsumer), (startupDone, consumer) =>
              Readiness.layerReadinessFromStore({ startupDone, caughtUp: consumer.caughtUp })
            )
          ).pipe(Layer.provide(synced))
    return startupLine.pipe(
      Layer.provideMerge(http),
      Layer.provide(readiness),
      Layer.provideMerge(startup),
      Layer.provideMerge(scheduled),
      Layer.provideMerge(source),
      Layer.provideMerge(instrumented)
    )
  })
)

/**
 * Runs the sidecar until SIGTERM/SIGINT at the level `CACHE_LOG_LEVEL` asks for, logging one line once everything
 * has stopped; a failed start becomes one line naming the cause (`ServeLog.describeFailure`), with exit code 1.
 */
export const run = Effect.gen(function* () {
  const startedAt = Date.now()
  const logging = yield* CacheConfig.LogConfig
  const config = yield* CacheConfig.CacheConfig
  const service = yield* CacheConfig.ServiceConfig
  return yield* Layer.launch(layer).pipe(
    Effect.onExit(ServeLog.logStopped(instanceIdOf(config), startedAt)),
    Effect.catch((error) => CliOutput.failWith(ServeLog.describeFailure(error, service))),
    Effect.annotateLogs({ instance: instanceIdOf(config) }),
    Effect.provideService(References.MinimumLogLevel, CacheConfig.logLevelOf(logging.level))
  )
}).pipe(Effect.catchTag("ConfigError", (error) => CliOutput.failWith(ServeLog.describeFailure(error))))
