/**
 * The configuration contract read from the environment (names and defaults as DESIGN.md states them), validated
 * with Effect `Config`: an invalid value fails at startup with one message naming the variable. Later
 * capabilities (bus, HTTP, sources) add their variables here.
 */
import { Config, Duration, Effect, Option, Schema } from "effect"
import { AppendFsync, EvictionPolicy, parseBytes, Persistence } from "./EmbeddedRedis.ts"
import * as Ttl from "./Ttl.ts"

/** Which store the instance runs on. `auto` = embedded when `redis-server` is on PATH, else memory. */
export const StoreKind = Schema.Literals(["auto", "embedded", "external", "memory"])
export type StoreKind = typeof StoreKind.Type

/** How instances are kept coherent: not at all, or over SNS → per-instance SQS. */
export const BusKind = Schema.Literals(["none", "sns-sqs"])

const QueuePrefix = Schema.String.pipe(Schema.check(Schema.isPattern(/^[A-Za-z0-9_-]{1,40}$/)))

/** A setting that is invalid only in combination with others, named by its variable. */
export class InvalidConfigError extends Schema.TaggedError<InvalidConfigError>()("InvalidConfigError", {
  variable: Schema.String,
  message: Schema.String
}) {}

const MemorySizeText = Schema.String.pipe(
  Schema.check(
    Schema.makeFilter(
      (size: string) => parseBytes(size) !== undefined || "expected bytes or a size with a unit, such as 256mb"
    )
  )
)

const Seconds = Schema.NumberFromString.pipe(
  Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: Ttl.maxSeconds }))
)

const Count = Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)))

/** Whole seconds where 0 means "off". */
const SecondsOrOff = Schema.NumberFromString.pipe(
  Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: Ttl.maxSeconds }))
)

/** Whole milliseconds where 0 means "none", at most a day. */
const MillisOrNone = Schema.NumberFromString.pipe(
  Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 86_400_000 }))
)

/** A fraction of a TTL, 0 ≤ f < 1, where 0 means "off". */
const FractionOrOff = Schema.NumberFromString.pipe(
  Schema.check(Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMaximum: true }))
)

/** The instance and store settings. */
export const CacheConfig = Config.all({
  /**
   * Identity on the bus, in stats and in the default data dir; the host name when unset (filled in by the runner,
   * which knows it), so a restart of the same instance finds its data. A second process on one host sets its own.
   */
  instanceId: Config.option(Config.NonEmptyString("CACHE_INSTANCE_ID")),
  /** The embedded server's directory; `.embedded-cache/<instance>` when unset. */
  dataDir: Config.option(Config.NonEmptyString("CACHE_DATA_DIR")),
  store: Config.schema(StoreKind, "CACHE_STORE").pipe(Config.withDefault("auto" as const)),
  redisUrl: Config.option(Config.NonEmptyString("CACHE_REDIS_URL")),
  maxmemory: Config.schema(MemorySizeText, "CACHE_MAXMEMORY").pipe(Config.withDefault("256mb")),
  evictionPolicy: Config.schema(EvictionPolicy, "CACHE_EVICTION_POLICY").pipe(
    Config.withDefault("allkeys-lru" as const)
  ),
  persistence: Config.schema(Persistence, "CACHE_PERSISTENCE").pipe(Config.withDefault("none" as const)),
  appendfsync: Config.schema(AppendFsync, "CACHE_APPENDFSYNC").pipe(Config.withDefault("everysec" as const)),
  defaultTtlSeconds: Config.schema(Seconds, "CACHE_DEFAULT_TTL").pipe(Config.withDefault(3600)),
  /** Entries of the in-process L1; 0 (the default) turns it off. */
  l1MaxEntries: Config.schema(Count, "CACHE_L1_MAX_ENTRIES").pipe(Config.withDefault(0)),
  /** Bytes of JSON text the L1 holds at most (`64mb`, or bytes); unbounded when unset. */
  l1MaxBytes: Config.option(Config.schema(MemorySizeText, "CACHE_L1_MAX_BYTES")),
  /** Seconds an entry lives in the L1 at most (never longer than in the store); unbounded when unset. */
  l1TtlSeconds: Config.option(Config.schema(Seconds, "CACHE_L1_TTL")),
  /** Seconds past its TTL a loaded entry may still answer when its load fails; 0 (the default) turns fail-safe off. */
  failSafeMaxStaleSeconds: Config.schema(SecondsOrOff, "CACHE_FAIL_SAFE_MAX_STALE").pipe(Config.withDefault(0)),
  /** Seconds a stale answer is repeated before the failed source is tried again (fail-safe only). */
  failSafeThrottleSeconds: Config.schema(Seconds, "CACHE_FAIL_SAFE_THROTTLE").pipe(Config.withDefault(30)),
  /** Milliseconds after which a stale copy answers and the load finishes in the background; 0 or unset: none. */
  sourceSoftTimeoutMs: Config.schema(MillisOrNone, "CACHE_SOURCE_SOFT_TIMEOUT_MS").pipe(Config.withDefault(0)),
  /** Milliseconds after which a load is abandoned; 0 or unset: none. */
  sourceTimeoutMs: Config.schema(MillisOrNone, "CACHE_SOURCE_TIMEOUT_MS").pipe(Config.withDefault(0)),
  /** The fraction of its TTL after which a hit refreshes an entry in the background; 0 (the default) is off. */
  eagerRefresh: Config.schema(FractionOrOff, "CACHE_EAGER_REFRESH").pipe(Config.withDefault(0)),
  /** Seconds "not in the source" is remembered; 0 (the default) is off. */
  negativeTtlSeconds: Config.schema(SecondsOrOff, "CACHE_NEGATIVE_TTL").pipe(Config.withDefault(0)),
  bus: Config.schema(BusKind, "CACHE_BUS").pipe(Config.withDefault("none" as const)),
  snsTopicArn: Config.option(Config.NonEmptyString("CACHE_SNS_TOPIC_ARN")),
  snsTopicName: Config.option(Config.NonEmptyString("CACHE_SNS_TOPIC_NAME")),
  sqsQueueUrl: Config.option(Config.NonEmptyString("CACHE_SQS_QUEUE_URL")),
  sqsQueuePrefix: Config.schema(QueuePrefix, "CACHE_SQS_QUEUE_PREFIX").pipe(Config.withDefault("embedded-cache")),
  /** Long-poll wait of a receive, 0–20 s: with the visibility timeout, how long a restart waits out its backlog. */
  sqsWaitSeconds: Config.schema(
    Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 20 }))),
    "CACHE_SQS_WAIT_SECONDS"
  ).pipe(Config.withDefault(20)),
  /** Visibility timeout of a created queue, seconds: how long an unacknowledged delivery stays hidden. */
  sqsVisibilitySeconds: Config.schema(
    Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 43_200 }))),
    "CACHE_SQS_VISIBILITY_TIMEOUT"
  ).pipe(Config.withDefault(30))
})
export type CacheConfig = Config.Success<typeof CacheConfig>

/** The L1 bounds `CacheOptions.l1` takes, from the `CACHE_L1_*` settings; undefined when the L1 is off. */
export const l1Options = (
  config: Pick<CacheConfig, "l1MaxEntries" | "l1MaxBytes" | "l1TtlSeconds">
): { readonly maxEntries: number; readonly maxBytes?: number; readonly ttl?: Duration.Duration } | undefined => {
  if (config.l1MaxEntries === 0) return undefined
  const maxBytes = Option.getOrUndefined(Option.map(config.l1MaxBytes, parseBytes))
  const ttl = Option.getOrUndefined(Option.map(config.l1TtlSeconds, Duration.seconds))
  return {
    maxEntries: config.l1MaxEntries,
    ...(maxBytes === undefined ? {} : { maxBytes }),
    ...(ttl === undefined ? {} : { ttl })
  }
}

/** The settings of the fail-safe family, as `loadOptions` reads them. */
export type LoadSettings = Pick<
  CacheConfig,
  | "failSafeMaxStaleSeconds"
  | "failSafeThrottleSeconds"
  | "sourceSoftTimeoutMs"
  | "sourceTimeoutMs"
  | "eagerRefresh"
  | "negativeTtlSeconds"
>

/** The fail-safe family's `CacheOptions` (fail-safe, source timeouts, eager refresh, negative TTL); absent when off. */
export interface LoadOptions {
  readonly failSafe?: { readonly maxStale: Duration.Duration; readonly throttle: Duration.Duration }
  readonly sourceTimeouts?: { readonly soft?: Duration.Duration; readonly hard?: Duration.Duration }
  readonly eagerRefresh?: number
  readonly negativeTtl?: Duration.Duration
}

/**
 * The fail-safe family's `CacheOptions` from `CACHE_FAIL_SAFE_*`, `CACHE_SOURCE_*TIMEOUT_MS`, `CACHE_EAGER_REFRESH`
 * and `CACHE_NEGATIVE_TTL`, leaving out what is off. A soft timeout not below the hard one is refused.
 */
export const loadOptions = (config: LoadSettings): Effect.Effect<LoadOptions, InvalidConfigError> => {
  const soft = config.sourceSoftTimeoutMs
  const hard = config.sourceTimeoutMs
  if (soft > 0 && hard > 0 && soft >= hard) {
    return Effect.fail(
      new InvalidConfigError({
        variable: "CACHE_SOURCE_SOFT_TIMEOUT_MS",
        message:
          `CACHE_SOURCE_SOFT_TIMEOUT_MS=${soft} must be below CACHE_SOURCE_TIMEOUT_MS=${hard}: past the soft ` +
          "timeout a stale copy answers while the load goes on, up to the hard timeout"
      })
    )
  }
  return Effect.succeed({
    ...(config.failSafeMaxStaleSeconds === 0
      ? {}
      : {
          failSafe: {
            maxStale: Duration.seconds(config.failSafeMaxStaleSeconds),
            throttle: Duration.seconds(config.failSafeThrottleSeconds)
          }
        }),
    ...(soft === 0 && hard === 0
      ? {}
      : {
          sourceTimeouts: {
            ...(soft === 0 ? {} : { soft: Duration.millis(soft) }),
            ...(hard === 0 ? {} : { hard: Duration.millis(hard) })
          }
        }),
    ...(config.eagerRefresh === 0 ? {} : { eagerRefresh: config.eagerRefresh }),
    ...(config.negativeTtlSeconds === 0 ? {} : { negativeTtl: Duration.seconds(config.negativeTtlSeconds) })
  })
}

/** Where `serve` loads from on a miss (`GET ?load=true`) and when warming. */
export const SourceKind = Schema.Literals(["none", "http", "sql", "file"])
export type SourceKind = typeof SourceKind.Type

/** How much `serve` logs: Effect's log levels, in lower case (`warning` is accepted for `warn`). */
export const LogLevelName = Schema.Literals([
  "all",
  "trace",
  "debug",
  "info",
  "warn",
  "warning",
  "error",
  "fatal",
  "none"
])
export type LogLevelName = typeof LogLevelName.Type

const logLevels = {
  all: "All",
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  warning: "Warn",
  error: "Error",
  fatal: "Fatal",
  none: "None"
} as const

/** Effect's log level (the value of `References.MinimumLogLevel`) of a `CACHE_LOG_LEVEL` name. */
export const logLevelOf = (name: LogLevelName): (typeof logLevels)[LogLevelName] => logLevels[name]

/** The logging settings: the minimum level (`CACHE_LOG_LEVEL`) and the per-request access log (`CACHE_ACCESS_LOG`). */
export const LogConfig = Config.all({
  level: Config.schema(LogLevelName, "CACHE_LOG_LEVEL").pipe(Config.withDefault("info" as const)),
  accessLog: Config.Boolean("CACHE_ACCESS_LOG").pipe(Config.withDefault(false))
})
export type LogConfig = Config.Success<typeof LogConfig>

const PortNumber = Schema.NumberFromString.pipe(
  Schema.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 65535 }))
)

/** Which keys a warm-up loads: only those missing, or every key (refreshing present ones). */
export const WarmMode = Schema.Literals(["missing", "refresh"])
export type WarmMode = typeof WarmMode.Type

const PositiveInt = Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThan(0)))

/** The settings of the `serve` sidecar: its REST API, its data source and its startup warm-up. */
export const ServiceConfig = Config.all({
  httpHost: Config.String("CACHE_HTTP_HOST").pipe(Config.withDefault("127.0.0.1")),
  /** 0 picks a free port; the startup log line shows the one bound. */
  httpPort: Config.schema(PortNumber, "CACHE_HTTP_PORT").pipe(Config.withDefault(8080)),
  /** When set, `/api/v1/*` requires `Authorization: Bearer <token>`. */
  apiToken: Config.option(Config.Redacted("CACHE_API_TOKEN")),
  maxBodyBytes: Config.schema(PositiveInt, "CACHE_MAX_BODY_BYTES").pipe(Config.withDefault(1_048_576)),
  source: Config.schema(SourceKind, "CACHE_SOURCE").pipe(Config.withDefault("none" as const)),
  /** A file of keys (one per line, `#` comments) warmed at startup; readiness waits for it. */
  warmKeysFile: Config.option(Config.NonEmptyString("CACHE_WARM_KEYS_FILE")),
  warmTimeoutSeconds: Config.schema(Seconds, "CACHE_WARM_TIMEOUT").pipe(Config.withDefault(60)),
  /** A cron expression (process time zone) on which the keys of `CACHE_WARM_KEYS_FILE` are warmed again. */
  warmSchedule: Config.option(Config.NonEmptyString("CACHE_WARM_SCHEDULE")),
  /** The mode of the startup and scheduled warm-ups; unset: `missing` at startup, `refresh` on the schedule. */
  warmMode: Config.option(Config.schema(WarmMode, "CACHE_WARM_MODE"))
})
export type ServiceConfig = Config.Success<typeof ServiceConfig>

/**
 * The modes of the sidecar's warm-ups: `CACHE_WARM_MODE` for both when set; otherwise the startup warm fills what
 * is missing (an empty or restored store) and the scheduled re-warm refreshes present keys too, which is what a
 * schedule is for.
 */
export const warmModesOf = (
  service: Pick<ServiceConfig, "warmMode">
): { readonly startup: WarmMode; readonly scheduled: WarmMode } => ({
  startup: Option.getOrElse(service.warmMode, () => "missing" as const),
  scheduled: Option.getOrElse(service.warmMode, () => "refresh" as const)
})
