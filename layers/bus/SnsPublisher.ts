/**
 * Publishing invalidation events to the SNS topic: each event is encoded once to its JSON wire form with the message
 * attributes consumers filter on (`source_instance`, `invalidation_type` — a v2 event's common target type, or
 * `mixed`); one event is one Publish, more are chunked into PublishBatch requests within SNS's limits (10 entries,
 * 256 KiB). A publish succeeds only when every event was accepted; otherwise it fails with a `BusError` naming the
 * events that were not.
 */
import type { MessageAttributeValue, PublishBatchRequestEntry, SNSClient } from "@aws-sdk/client-sns"
import { Effect, Schema } from "effect"
import { BusError } from "../../src/InvalidationBus.ts"
import { type InvalidationEvent, InvalidationEventJson, kindOf } from "../../src/InvalidationEvent.ts"
import * as AwsCalls from "./AwsCalls.ts"

/** SNS caps a message, and a whole PublishBatch, at 256 KiB; leave room for attributes. */
const maxBatchBytes = 240 * 1024
const maxBatchEntries = 10

interface Encoded {
  readonly event: InvalidationEvent
  readonly body: string
}

const encodeEvent = Schema.encodeSync(InvalidationEventJson)

/** The message attributes an event is published with; subscription filter policies match on them. */
const messageAttributes = (event: InvalidationEvent): Record<string, MessageAttributeValue> => ({
  source_instance: { DataType: "String", StringValue: event.source_instance },
  invalidation_type: { DataType: "String", StringValue: kindOf(event) }
})

const encode = (events: ReadonlyArray<InvalidationEvent>) =>
  Effect.try({
    try: () => events.map((event): Encoded => ({ event, body: encodeEvent(event) })),
    catch: (cause) =>
      new BusError({ operation: "publish", message: `an event does not encode: ${AwsCalls.describe(cause)}`, cause })
  })

/** Splits encoded events into PublishBatch requests: at most 10 entries and about 240 KiB each. */
const chunk = <A extends { readonly body: string }>(items: ReadonlyArray<A>): Array<Array<A>> => {
  const chunks: Array<Array<A>> = []
  let current: Array<A> = []
  let bytes = 0
  for (const item of items) {
    const size = Buffer.byteLength(item.body)
    if (current.length > 0 && (current.length === maxBatchEntries || bytes + size > maxBatchBytes)) {
      chunks.push(current)
      current = []
      bytes = 0
    }
    current.push(item)
    bytes += size
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

const publishBatch = Effect.fnUntraced(function* (sns: SNSClient, topicArn: string, items: ReadonlyArray<Encoded>) {
  const entries: Array<PublishBatchRequestEntry> = items.map((item, i) => ({
    Id: String(i),
    Message: item.body,
    MessageAttributes: messageAttributes(item.event)
  }))
  const result = yield* AwsCalls.publishBatch(sns, topicArn, entries)
  const failed = result.Failed ?? []
  if (failed.length > 0) {
    const listed = failed.map((f) => {
      const event = items[Number(f.Id)]?.event
      return `${event?.event_id ?? `entry ${f.Id}`}: ${f.Code ?? "error"} ${f.Message ?? ""}`.trim()
    })
    return yield* new BusError({
      operation: "PublishBatch",
      message: `${failed.length} of ${items.length} events were not published: ${listed.join("; ")}`,
      cause: failed
    })
  }
})

/** The bus's `publish` for `topicArn`: nothing for no events, one Publish for one, PublishBatches (4 at a time) for more. */
export const make =
  (sns: SNSClient, topicArn: string) =>
  (events: ReadonlyArray<InvalidationEvent>): Effect.Effect<void, BusError> => {
    if (events.length === 0) return Effect.void
    return Effect.flatMap(encode(events), (items) =>
      items.length === 1
        ? AwsCalls.publish(sns, topicArn, items[0]!.body, messageAttributes(items[0]!.event))
        : Effect.forEach(chunk(items), (batch) => publishBatch(sns, topicArn, batch), { concurrency: 4, discard: true })
    )
  }
