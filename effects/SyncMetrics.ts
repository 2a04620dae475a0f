/**
 * The sync metrics, as Effect `Metric`s (exported to Prometheus by the service): events published, received,
 * applied, duplicate, own, malformed, flushes by reason, and the publish→apply lag.
 */
import { Effect, Metric } from "effect"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

export const eventsPublished = counter("cache_sync_events_published_total", "invalidation events published")
export const eventsPublishFailed = counter(
  "cache_sync_events_publish_failed_total",
  "invalidation events given up after retries"
)
export const eventsReceived = counter("cache_sync_events_received_total", "deliveries received from the bus")
export const eventsApplied = counter("cache_sync_events_applied_total", "events applied to this instance")
export const eventsDuplicate = counter("cache_sync_events_duplicate_total", "deliveries of an already applied event")
export const eventsOwn = counter("cache_sync_events_own_total", "deliveries of this instance's own events")
export const eventsMalformed = counter("cache_sync_events_malformed_total", "deliveries that are not a valid event")
export const flushes = counter("cache_sync_flushes_total", "flushes because continuity could not be shown")
/** Publish→apply lag in milliseconds (publisher's clock to this one's; informational). */
export const lag = Metric.histogram("cache_sync_lag_ms", {
  description: "milliseconds from publish to apply",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 2, count: 16 })
})

/** Counts `n` published events. */
export const published = (n: number) => Metric.update(eventsPublished, n)
/** Counts `n` events given up. */
export const publishFailed = (n: number) => Metric.update(eventsPublishFailed, n)
/** Why continuity was lost. */
export type FlushReason = "queue-created" | "seq-gap" | "silence" | "publisher-restart"

/** Counts one flush, labelled with its reason. */
export const flushed = (reason: FlushReason) =>
  Metric.update(Metric.withAttributes(flushes, { reason }), 1).pipe(Effect.asVoid)
