/**
 * The port of the bus instances use to tell each other what to invalidate: publish events, and receive this
 * instance's deliveries, each acknowledged only after it was applied. Delivery is at least once: a delivery
 * that is not acknowledged comes back (and, with SQS, ends in the dead-letter queue after too many receives).
 */
import { Context, type Effect, Schema, type Stream } from "effect"
import type { InvalidationEvent } from "./InvalidationEvent.ts"

/** A failed bus operation. */
export class BusError extends Schema.TaggedError<BusError>()("BusError", {
  operation: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** One delivery of one message to this instance. */
export interface Delivery {
  /** The raw message body: an event's JSON text, or anything a foreign publisher put there. */
  readonly body: string
  /** How many times this message has been received, this delivery included. */
  readonly receiveCount: number
  /** Removes the message from this instance's queue; call it only after the event was applied. */
  readonly ack: Effect.Effect<void, BusError>
}

/** The bus, as one instance sees it. */
export class InvalidationBus extends Context.Service<
  InvalidationBus,
  {
    /** This instance's identity on the bus; its own events are not delivered back to it. */
    readonly instanceId: string
    /**
     * Whether this instance's queue was created at this start (so nothing published before now reached it):
     * when the store kept data from an earlier run, continuity cannot be shown.
     */
    readonly queueCreated: boolean
    /**
     * How long a message can stay invisible after a consumer that received it died without acknowledging it (a
     * receive's wait plus the visibility timeout), in milliseconds: what a restart waits out before its backlog is
     * complete.
     */
    readonly heldAtMostMs: number
    /** Publishes events to every other instance (batched where the transport can). */
    readonly publish: (events: ReadonlyArray<InvalidationEvent>) => Effect.Effect<void, BusError>
    /**
     * This instance's deliveries, one non-empty batch per receive (SQS: up to 10 messages per long poll, several
     * polls in flight), so a consumer can apply and acknowledge a batch together; the stream runs until its scope
     * closes.
     */
    readonly deliveries: Stream.Stream<ReadonlyArray<Delivery>, BusError>
    /**
     * When the bus last answered this instance (a successful receive, even an empty one), in `Clock` epoch
     * milliseconds; undefined before the first. The sync consumer flushes when it stays silent too long.
     */
    readonly lastContact: Effect.Effect<number | undefined>
  }
>()("embedded-cache/InvalidationBus") {}
