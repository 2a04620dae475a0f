/**
 * Acknowledgement of SQS deliveries = DeleteMessage, batched: a worker deletes whatever acks are waiting (up to 10)
 * in one DeleteMessageBatch, so an idle consumer waits for nothing and a busy one saves requests. Each ack completes
 * only when its own entry was deleted (or fails with a `BusError`); closing the scope deletes what is still pending,
 * within a bound, before the queue goes, and fails the acks it could not delete.
 */
import type { SQSClient } from "@aws-sdk/client-sqs"
import { type Cause, Deferred, Effect, Fiber, Queue } from "effect"
import { BusError } from "../../src/InvalidationBus.ts"
import * as AwsCalls from "./AwsCalls.ts"

/** How long closing waits for pending acknowledgements to be deleted. */
const drainTimeoutMs = 10_000
/** SQS deletes at most 10 messages per DeleteMessageBatch. */
const maxBatchEntries = 10

interface PendingAck {
  readonly receiptHandle: string
  readonly done: Deferred.Deferred<void, BusError>
}

const closed = (message: string) => new BusError({ operation: "ack", message })

type DeleteResult = Effect.Success<ReturnType<typeof AwsCalls.deleteMessageBatch>>

/** Completes each ack of a deleted batch: succeeded, or failed with its entry's own error. */
const settle = (batch: ReadonlyArray<PendingAck>, result: DeleteResult) => {
  const failed = new Map((result.Failed ?? []).map((f) => [f.Id, f]))
  return Effect.forEach(
    batch,
    (a, i) => {
      const failure = failed.get(String(i))
      return failure === undefined
        ? Deferred.succeed(a.done, undefined)
        : Deferred.fail(
            a.done,
            new BusError({
              operation: "DeleteMessageBatch",
              message: `ack failed: ${failure.Code ?? "error"} ${failure.Message ?? ""}`.trim(),
              cause: failure
            })
          )
    },
    { discard: true }
  )
}

const failAll = (acks: Iterable<PendingAck>, error: BusError) =>
  Effect.forEach(acks, (a) => Deferred.fail(a.done, error), { discard: true })

/**
 * Starts the ack worker of `queueUrl` in the current scope and returns `ack(receiptHandle)`, which completes when
 * that message was deleted.
 */
export const make = Effect.fnUntraced(function* (sqs: SQSClient, queueUrl: string) {
  const pending = yield* Queue.unbounded<PendingAck, Cause.Done>()

  const flush = (batch: ReadonlyArray<PendingAck>) =>
    AwsCalls.deleteMessageBatch(
      sqs,
      queueUrl,
      batch.map((a) => a.receiptHandle)
    ).pipe(
      Effect.matchEffect({ onFailure: (error) => failAll(batch, error), onSuccess: (result) => settle(batch, result) }),
      Effect.onInterrupt(() => failAll(batch, closed("the bus closed")))
    )

  // takeBetween fails with Done once the queue has ended and is drained: that ends the worker.
  const worker = yield* Queue.takeBetween(pending, 1, maxBatchEntries).pipe(
    Effect.flatMap(flush),
    Effect.forever,
    Effect.catch(() => Effect.void),
    Effect.forkScoped
  )
  yield* Effect.addFinalizer(() =>
    Queue.end(pending).pipe(
      Effect.andThen(Fiber.join(worker)),
      Effect.timeoutOption(drainTimeoutMs),
      Effect.andThen(Fiber.interrupt(worker)),
      Effect.andThen(Queue.clear(pending)),
      Effect.flatMap((left) => failAll(left, closed("the bus closed"))),
      Effect.ignore
    )
  )

  return (receiptHandle: string): Effect.Effect<void, BusError> =>
    Effect.suspend(() => {
      const done = Deferred.makeUnsafe<void, BusError>()
      return Queue.offer(pending, { receiptHandle, done }).pipe(
        Effect.flatMap((accepted) => (accepted ? Deferred.await(done) : Effect.fail(closed("the bus is closed"))))
      )
    })
})
