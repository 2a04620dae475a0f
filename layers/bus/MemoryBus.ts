/**
 * An in-process `InvalidationBus`: a hub shared by simulated instances, each with its own inbox, with the
 * failure modes of a real queue at hand. In `auto` mode a published event is delivered at once to every
 * other instance; in `manual` mode it is held until the test delivers, duplicates, reorders (delivers out of
 * order) or drops it. A receive hands out what is ready, up to `maxMessages` per batch, as an SQS long poll does;
 * a delivery not acknowledged within the visibility timeout is delivered again, with a higher receive count.
 */
import { Clock, Effect, Layer, Queue, Schema, type Scope, Stream } from "effect"
import { type Delivery, InvalidationBus } from "../../src/InvalidationBus.ts"
import { InvalidationEventJson } from "../../src/InvalidationEvent.ts"

/** A message waiting in (or travelling to) one instance's inbox. */
export interface HeldMessage {
  readonly id: number
  readonly body: string
}

interface Inbox {
  readonly ready: Queue.Queue<HeldMessage>
  readonly held: Array<HeldMessage>
  readonly receives: Map<number, number>
  readonly unacked: Set<number>
  connected: boolean
  lastContact: number | undefined
}

/** How the hub delivers. */
export interface HubOptions {
  /** The instances on the hub. */
  readonly instances: ReadonlyArray<string>
  readonly mode: "auto" | "manual"
  /** Redelivery delay of an unacknowledged delivery, in milliseconds (Clock time). Default 30 s. */
  readonly visibilityTimeoutMs?: number | undefined
  /** Messages per receive batch at most. Default 10 (SQS's limit). */
  readonly maxMessages?: number | undefined
  /** Runs when a delivery is acknowledged, before the ack returns: tests check what must hold by then. */
  readonly onAck?: ((instanceId: string, body: string) => Effect.Effect<void>) | undefined
}

/** The shared hub, with the knobs a test turns. */
export interface MemoryHub {
  /** Messages held for `instanceId` (manual mode), in publish order. */
  readonly held: (instanceId: string) => ReadonlyArray<HeldMessage>
  /** Delivers the held message at `index` now (delivering a later one first is a reorder). */
  readonly deliver: (instanceId: string, index: number) => Effect.Effect<void>
  /** Delivers the held messages at `indexes` (in that order) at once, so one receive hands them out as one batch. */
  readonly deliverAll: (instanceId: string, indexes: ReadonlyArray<number>) => Effect.Effect<void>
  /** Holds a second copy of the message at `index` (a duplicate delivery, later). */
  readonly duplicate: (instanceId: string, index: number) => Effect.Effect<void>
  /** Loses the held message at `index`. */
  readonly drop: (instanceId: string, index: number) => Effect.Effect<void>
  /** Puts a raw body on `instanceId`'s queue, as a foreign publisher (or SQS SendMessage) would. */
  readonly send: (instanceId: string, body: string) => Effect.Effect<void>
  /** Cuts an instance off (its receives stop answering) or reconnects it. */
  readonly setConnected: (instanceId: string, connected: boolean) => Effect.Effect<void>
  /** Deliveries made to `instanceId` and not acknowledged yet. */
  readonly unacked: (instanceId: string) => number
  /** The bus of one instance on this hub. */
  readonly bus: (instanceId: string, options?: { readonly queueCreated?: boolean }) => InvalidationBus["Service"]
}

const encodeEvent = Schema.encodeSync(InvalidationEventJson)

/** Makes a hub; redelivery timers run in the scope. */
export const makeHub = (options: HubOptions): Effect.Effect<MemoryHub, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const inboxes = new Map<string, Inbox>()
    const visibilityMs = options.visibilityTimeoutMs ?? 30_000
    let nextId = 0

    for (const instanceId of options.instances) {
      inboxes.set(instanceId, {
        ready: yield* Queue.unbounded<HeldMessage>(),
        held: [],
        receives: new Map(),
        unacked: new Set(),
        connected: true,
        lastContact: undefined
      })
    }
    const inboxOf = (instanceId: string): Inbox => {
      const inbox = inboxes.get(instanceId)
      if (inbox === undefined) throw new Error(`${instanceId} is not on this hub`)
      return inbox
    }

    const enqueue = (inbox: Inbox, message: HeldMessage) =>
      options.mode === "auto" ? Queue.offer(inbox.ready, message) : Effect.sync(() => void inbox.held.push(message))

    const take = (inbox: Inbox, index: number): HeldMessage | undefined => inbox.held.splice(index, 1)[0]

    const deliver = (instanceId: string, inbox: Inbox, message: HeldMessage): Effect.Effect<Delivery> =>
      Effect.gen(function* () {
        const receiveCount = (inbox.receives.get(message.id) ?? 0) + 1
        inbox.receives.set(message.id, receiveCount)
        inbox.unacked.add(message.id)
        // Not acknowledged in time: back on the queue, as SQS makes it visible again.
        yield* Effect.sleep(visibilityMs).pipe(
          Effect.andThen(
            Effect.suspend(() => (inbox.unacked.has(message.id) ? Queue.offer(inbox.ready, message) : Effect.void))
          ),
          Effect.forkIn(scope)
        )
        return {
          body: message.body,
          receiveCount,
          ack: Effect.suspend(() => {
            inbox.unacked.delete(message.id)
            return options.onAck?.(instanceId, message.body) ?? Effect.void
          })
        }
      })

    const receive = (instanceId: string, inbox: Inbox): Effect.Effect<ReadonlyArray<Delivery>> =>
      Effect.gen(function* () {
        const messages = yield* Queue.takeBetween(inbox.ready, 1, options.maxMessages ?? 10)
        inbox.lastContact = yield* Clock.currentTimeMillis
        return yield* Effect.forEach(messages, (message) => deliver(instanceId, inbox, message))
      }).pipe(Effect.annotateLogs({ instance: instanceId }))

    return {
      held: (instanceId) => inboxOf(instanceId).held,
      deliver: (instanceId, index) =>
        Effect.suspend(() => {
          const inbox = inboxOf(instanceId)
          const message = take(inbox, index)
          return message === undefined ? Effect.void : Effect.asVoid(Queue.offer(inbox.ready, message))
        }),
      deliverAll: (instanceId, indexes) =>
        Effect.suspend(() => {
          const inbox = inboxOf(instanceId)
          const chosen = [...new Set(indexes)].flatMap((i) => (inbox.held[i] === undefined ? [] : [inbox.held[i]]))
          for (const message of chosen) inbox.held.splice(inbox.held.indexOf(message), 1)
          return Effect.asVoid(Queue.offerAll(inbox.ready, chosen))
        }),
      duplicate: (instanceId, index) =>
        Effect.sync(() => {
          const inbox = inboxOf(instanceId)
          const message = inbox.held[index]
          if (message !== undefined) inbox.held.push({ id: nextId++, body: message.body })
        }),
      drop: (instanceId, index) => Effect.sync(() => void take(inboxOf(instanceId), index)),
      send: (instanceId, body) => Effect.asVoid(enqueue(inboxOf(instanceId), { id: nextId++, body })),
      setConnected: (instanceId, connected) => Effect.sync(() => void (inboxOf(instanceId).connected = connected)),
      unacked: (instanceId) => inboxOf(instanceId).unacked.size,
      bus: (instanceId, busOptions) => {
        const inbox = inboxOf(instanceId)
        return InvalidationBus.of({
          instanceId,
          queueCreated: busOptions?.queueCreated ?? false,
          heldAtMostMs: visibilityMs,
          publish: (events) =>
            Effect.forEach(
              events,
              (event) => {
                const body = encodeEvent(event)
                return Effect.forEach(
                  [...inboxes].filter(([id]) => id !== instanceId),
                  ([, other]) => enqueue(other, { id: nextId++, body }),
                  { discard: true }
                )
              },
              { discard: true }
            ),
          deliveries: Stream.fromEffectRepeat(
            Effect.suspend(() => (inbox.connected ? receive(instanceId, inbox) : Effect.never))
          ),
          lastContact: Effect.suspend(() =>
            inbox.connected
              ? Effect.map(Clock.currentTimeMillis, (now) => (inbox.lastContact = now))
              : Effect.succeed(inbox.lastContact)
          )
        })
      }
    }
  })

/** The bus of `instanceId` on `hub`. */
export const layer = (hub: MemoryHub, instanceId: string, options?: { readonly queueCreated?: boolean }) =>
  Layer.succeed(InvalidationBus, hub.bus(instanceId, options))
