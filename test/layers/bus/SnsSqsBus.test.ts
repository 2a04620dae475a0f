/**
 * SnsSqsBus against a real SNS/SQS protocol peer: the fauxqs emulator, in process on 127.0.0.1, one per test.
 * The bus contract suite, then what only this adapter does: the AWS resources it creates (and removes), the
 * dead-letter queue, pre-provisioned and adopted queues, the orphan sweeper, and a consumer that survives
 * network failures and stops its long poll at once when interrupted.
 */
import {
  CreateTopicCommand,
  GetSubscriptionAttributesCommand,
  ListSubscriptionsByTopicCommand,
  SNSClient,
  SubscribeCommand
} from "@aws-sdk/client-sns"
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueueTagsCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
  TagQueueCommand
} from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Schema, Scope, Stream } from "effect"
import * as net from "node:net"
import * as QueueSweeper from "../../../layers/bus/QueueSweeper.ts"
import * as SnsSqsBus from "../../../layers/bus/SnsSqsBus.ts"
import * as SqsQueue from "../../../layers/bus/SqsQueue.ts"
import { InvalidationEvent } from "../../../src/InvalidationEvent.ts"
import * as InvalidationBusSuite from "../../suites/InvalidationBusSuite.ts"
import * as Fauxqs from "../../utils/Fauxqs.ts"
import * as Poll from "../../utils/Poll.ts"

const topicName = "invalidation"

const connection = (fauxqs: Fauxqs.Fauxqs) => ({
  endpoint: fauxqs.endpoint,
  region: fauxqs.region,
  credentials: fauxqs.credentials
})

/** Plain SDK clients on the emulator, for setting things up and reading them back. */
const clients = (fauxqs: Fauxqs.Fauxqs) =>
  Effect.acquireRelease(
    Effect.sync(() => ({ sqs: new SQSClient(connection(fauxqs)), sns: new SNSClient(connection(fauxqs)) })),
    ({ sns, sqs }) =>
      Effect.sync(() => {
        sqs.destroy()
        sns.destroy()
      })
  )

const aws = <A>(f: () => Promise<A>) => Effect.promise(f)

/** Whether the queue `name` exists. */
const queueExists = (sqs: SQSClient, name: string) =>
  aws(() =>
    sqs.send(new GetQueueUrlCommand({ QueueName: name })).then(
      () => true,
      (error: Error) => (error.name === "QueueDoesNotExist" ? false : Promise.reject(error))
    )
  )

const topicArnOf = (sns: SNSClient) =>
  aws(() => sns.send(new CreateTopicCommand({ Name: topicName }))).pipe(Effect.map((r) => r.TopicArn!))

const subscriptionsTo = (sns: SNSClient, topicArn: string, queueArn: string) =>
  aws(() => sns.send(new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }))).pipe(
    Effect.map((r) => (r.Subscriptions ?? []).filter((s) => s.Endpoint === queueArn))
  )

const tagsOf = (sqs: SQSClient, queueUrl: string) =>
  aws(() => sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }))).pipe(Effect.map((r) => r.Tags ?? {}))

const attributesOf = (sqs: SQSClient, queueUrl: string) =>
  aws(() => sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }))).pipe(
    Effect.map((r) => r.Attributes ?? {})
  )

/** `n` invalidation events from `source`. */
const events = InvalidationBusSuite.events

// ---------------------------------------------------------------------------------------------------------------
// the contract

InvalidationBusSuite.suite(
  "SnsSqsBus over fauxqs",
  (ids) =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      return yield* Effect.forEach(ids, (instanceId) =>
        SnsSqsBus.make({ ...connection(fauxqs), instanceId, topicName, visibilityTimeoutSeconds: 1 })
      )
    }),
  // Visibility timeout 1 s; fauxqs makes an expired delivery visible within 20 ms and wakes the long poll.
  { redeliveryWithinMs: 3000 }
)

// ---------------------------------------------------------------------------------------------------------------
// a TCP proxy in front of fauxqs, to cut the network and to watch requests

interface Proxy {
  readonly endpoint: string
  /** ReceiveMessage requests that went through. */
  readonly receives: () => number
  /** Connections the client side closed. */
  readonly clientCloses: () => number
  /** Resets every open connection and every new one, until `heal`. */
  readonly cut: () => void
  readonly heal: () => void
}

const makeProxy = (fauxqs: Fauxqs.Fauxqs) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly proxy: Proxy; readonly server: net.Server }>((resume) => {
      let receives = 0
      let clientCloses = 0
      let broken = false
      const open = new Set<net.Socket>()
      const server = net.createServer((client) => {
        if (broken) return void client.resetAndDestroy()
        const upstream = net.connect(fauxqs.port, fauxqs.host)
        open.add(client)
        client.on("data", (chunk: Buffer) => {
          if (chunk.includes("AmazonSQS.ReceiveMessage")) receives++
          upstream.write(chunk)
        })
        upstream.pipe(client)
        client.on("close", () => {
          clientCloses++
          open.delete(client)
          upstream.destroy()
        })
        upstream.on("close", () => client.destroy())
        client.on("error", () => upstream.destroy())
        upstream.on("error", () => client.destroy())
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as net.AddressInfo
        resume(
          Effect.succeed({
            server,
            proxy: {
              endpoint: `http://127.0.0.1:${port}`,
              receives: () => receives,
              clientCloses: () => clientCloses,
              cut: () => {
                broken = true
                for (const socket of open) socket.resetAndDestroy()
              },
              heal: () => {
                broken = false
              }
            }
          })
        )
      })
    }),
    ({ server }) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  ).pipe(Effect.map(({ proxy }) => proxy))

// ---------------------------------------------------------------------------------------------------------------

describe("SnsSqsBus", () => {
  it.live(
    "creates a DLQ, a queue redriving to it after maxReceiveCount, a policy admitting only the topic, and a raw subscription without the instance's own events",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const { sns, sqs } = yield* clients(fauxqs)
        const bus = yield* SnsSqsBus.make({
          ...connection(fauxqs),
          instanceId: "host.example:42",
          topicName,
          maxReceiveCount: 4,
          visibilityTimeoutSeconds: 7,
          tags: { team: "cache" }
        })
        assert.isTrue(bus.queueCreated)
        const name = SqsQueue.queueName(SqsQueue.defaultQueuePrefix, "host.example:42")
        assert.match(name, /^embedded-cache-host_example_42-[0-9a-f]{8}$/) // sanitised, so suffixed with a hash
        assert.isTrue(bus.queueUrl.endsWith(`/${name}`))
        assert.isTrue(bus.dlqUrl!.endsWith(`/${name}-dlq`))

        const queue = yield* attributesOf(sqs, bus.queueUrl)
        const dlq = yield* attributesOf(sqs, bus.dlqUrl!)
        assert.strictEqual(queue.QueueArn, bus.queueArn)
        assert.strictEqual(queue.VisibilityTimeout, "7")
        const redrive = JSON.parse(queue.RedrivePolicy!)
        assert.strictEqual(redrive.deadLetterTargetArn, dlq.QueueArn)
        assert.strictEqual(Number(redrive.maxReceiveCount), 4)
        const policy = JSON.parse(queue.Policy!)
        assert.deepStrictEqual(policy.Statement, [
          {
            Sid: "AllowInvalidationTopic",
            Effect: "Allow",
            Principal: { Service: "sns.amazonaws.com" },
            Action: "sqs:SendMessage",
            Resource: bus.queueArn,
            Condition: { ArnEquals: { "aws:SourceArn": bus.topicArn } }
          }
        ])

        const tags = yield* tagsOf(sqs, bus.queueUrl)
        assert.strictEqual(tags[SqsQueue.tagKeys.instance], "host.example:42")
        assert.strictEqual(tags[SqsQueue.tagKeys.role], "queue")
        assert.strictEqual(tags.team, "cache")
        assert.isAbove(Number(tags[SqsQueue.tagKeys.heartbeat]), Date.now() - 60_000)
        assert.isAbove(Number(tags[SqsQueue.tagKeys.created]), Date.now() - 60_000)
        assert.strictEqual((yield* tagsOf(sqs, bus.dlqUrl!))[SqsQueue.tagKeys.role], "dlq")

        const subscriptions = yield* subscriptionsTo(sns, bus.topicArn, bus.queueArn)
        assert.deepStrictEqual(
          subscriptions.map((s) => s.SubscriptionArn),
          [bus.subscriptionArn]
        )
        const { Attributes: subscription = {} } = yield* aws(() =>
          sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: bus.subscriptionArn! }))
        )
        assert.strictEqual(subscription.Protocol, "sqs")
        assert.strictEqual(subscription.RawMessageDelivery, "true")
        assert.deepStrictEqual(JSON.parse(subscription.FilterPolicy!), {
          source_instance: [{ "anything-but": ["host.example:42"] }]
        })
      })
  )

  it.live("a message that is never acknowledged is received maxReceiveCount times, then lands in the DLQ", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      const { sqs } = yield* clients(fauxqs)
      const bus = yield* SnsSqsBus.make({
        ...connection(fauxqs),
        instanceId: "poison",
        topicName,
        visibilityTimeoutSeconds: 1,
        maxReceiveCount: 2
      })
      const received = yield* InvalidationBusSuite.collect(bus, () => false)
      const body = "not an invalidation event"
      yield* aws(() => sqs.send(new SendMessageCommand({ QueueUrl: bus.queueUrl, MessageBody: body })))
      const deliveries = () => received.received.filter((r) => r.delivery.body === body)
      yield* received.until(() => deliveries().length >= 2, "the message was received twice", 10_000)

      // The third receive attempt finds the count used up and moves the message to the DLQ instead.
      let inDlq: string | undefined
      yield* Poll.until(
        aws(() =>
          sqs.send(new ReceiveMessageCommand({ QueueUrl: bus.dlqUrl!, WaitTimeSeconds: 1, MaxNumberOfMessages: 10 }))
        ).pipe(Effect.map((r) => (inDlq = r.Messages?.[0]?.Body) !== undefined)),
        { timeoutMs: 10_000, what: "the message is in the DLQ" }
      )
      assert.strictEqual(inDlq, body)
      assert.deepStrictEqual(
        deliveries().map((r) => r.delivery.receiveCount),
        [1, 2]
      )
    })
  )

  it.live(
    "a pre-provisioned queue is used as it is: queueCreated is false, nothing is tagged or deleted, and SNS envelopes are unwrapped",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const { sns, sqs } = yield* clients(fauxqs)
        const topicArn = yield* topicArnOf(sns)
        const { QueueUrl: queueUrl } = yield* aws(() => sqs.send(new CreateQueueCommand({ QueueName: "provisioned" })))
        const { QueueArn: queueArn } = yield* attributesOf(sqs, queueUrl!)
        // Provisioned without raw delivery: each body arrives wrapped in an SNS envelope.
        yield* aws(() => sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: "sqs", Endpoint: queueArn! })))
        const publisher = yield* SnsSqsBus.make({ ...connection(fauxqs), instanceId: "publisher", topicArn })

        yield* Effect.scoped(
          Effect.gen(function* () {
            const bus = yield* SnsSqsBus.make({
              ...connection(fauxqs),
              instanceId: "pre",
              topicName,
              queueUrl: queueUrl!
            })
            assert.isFalse(bus.queueCreated)
            assert.strictEqual(bus.queueArn, queueArn)
            assert.isUndefined(bus.dlqUrl)
            const received = yield* InvalidationBusSuite.collect(bus)
            const [event] = events("publisher", 1)
            yield* publisher.publish([event!])
            yield* received.until(
              () => received.of(event!.event_id).some((r) => r.acked),
              "delivered and acked",
              10_000
            )
            assert.deepStrictEqual(received.of(event!.event_id)[0]!.event, event)
          })
        )

        assert.isTrue(yield* queueExists(sqs, "provisioned"))
        assert.deepStrictEqual(yield* tagsOf(sqs, queueUrl!), {})
        assert.lengthOf(yield* subscriptionsTo(sns, topicArn, queueArn!), 1)
      })
  )

  it.live("a queue created at start is unsubscribed and deleted with its DLQ when the layer closes", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      const { sns, sqs } = yield* clients(fauxqs)
      const name = SqsQueue.queueName(SqsQueue.defaultQueuePrefix, "short-lived")
      const bus = yield* Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* SnsSqsBus.make({ ...connection(fauxqs), instanceId: "short-lived", topicName })
          assert.isTrue(bus.queueCreated)
          assert.isTrue(yield* queueExists(sqs, name))
          assert.lengthOf(yield* subscriptionsTo(sns, bus.topicArn, bus.queueArn), 1)
          return bus
        })
      )
      assert.isFalse(yield* queueExists(sqs, name))
      assert.isFalse(yield* queueExists(sqs, SqsQueue.dlqName(name)))
      assert.deepStrictEqual(yield* subscriptionsTo(sns, bus.topicArn, bus.queueArn), [])
    })
  )

  it.live(
    "a subscribed queue left by an earlier run is adopted: queueCreated is false, its settings are brought up to date, and it is kept",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const { sns, sqs } = yield* clients(fauxqs)
        const topicArn = yield* topicArnOf(sns)
        const name = SqsQueue.queueName(SqsQueue.defaultQueuePrefix, "restarted")
        const { QueueUrl: queueUrl } = yield* aws(() => sqs.send(new CreateQueueCommand({ QueueName: name })))
        const { QueueArn: queueArn } = yield* attributesOf(sqs, queueUrl!)
        // Subscribed as an older version might have left it: enveloped, without a filter policy.
        const { SubscriptionArn: subscriptionArn } = yield* aws(() =>
          sns.send(
            new SubscribeCommand({
              TopicArn: topicArn,
              Protocol: "sqs",
              Endpoint: queueArn!,
              ReturnSubscriptionArn: true
            })
          )
        )
        yield* Effect.scoped(
          Effect.gen(function* () {
            const bus = yield* SnsSqsBus.make({ ...connection(fauxqs), instanceId: "restarted", topicName })
            assert.isFalse(bus.queueCreated)
            assert.strictEqual(bus.queueUrl, queueUrl)
            assert.strictEqual(bus.subscriptionArn, subscriptionArn)
            const attributes = yield* attributesOf(sqs, queueUrl!)
            const dlqArn = (yield* attributesOf(sqs, bus.dlqUrl!)).QueueArn
            assert.strictEqual(JSON.parse(attributes.RedrivePolicy!).deadLetterTargetArn, dlqArn)
            assert.include(attributes.Policy!, topicArn)
            assert.strictEqual((yield* tagsOf(sqs, queueUrl!))[SqsQueue.tagKeys.instance], "restarted")
          })
        )
        assert.isTrue(yield* queueExists(sqs, name))
        const { Attributes: attributes = {} } = yield* aws(() =>
          sns.send(new GetSubscriptionAttributesCommand({ SubscriptionArn: subscriptionArn! }))
        )
        assert.strictEqual(attributes.RawMessageDelivery, "true")
        assert.strictEqual(attributes.FilterPolicy, SqsQueue.filterPolicy("restarted"))
      })
  )

  it.live("a queue left without a subscription missed what was published, so it counts as created (queueCreated)", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      const { sqs } = yield* clients(fauxqs)
      const name = SqsQueue.queueName(SqsQueue.defaultQueuePrefix, "half-made")
      yield* aws(() => sqs.send(new CreateQueueCommand({ QueueName: name })))
      const bus = yield* SnsSqsBus.make({ ...connection(fauxqs), instanceId: "half-made", topicName })
      assert.isTrue(bus.queueCreated)
      assert.isDefined(bus.subscriptionArn)
    })
  )

  it.live("a running instance refreshes its queue's heartbeat tag", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      const { sqs } = yield* clients(fauxqs)
      const bus = yield* SnsSqsBus.make({
        ...connection(fauxqs),
        instanceId: "beating",
        topicName,
        heartbeatInterval: "50 millis"
      })
      const first = (yield* tagsOf(sqs, bus.queueUrl))[SqsQueue.tagKeys.heartbeat]
      yield* Poll.until(
        Effect.map(tagsOf(sqs, bus.queueUrl), (tags) => Number(tags[SqsQueue.tagKeys.heartbeat]) > Number(first)),
        { timeoutMs: 5000, what: "the heartbeat tag was refreshed", intervalMs: 20 }
      )
    })
  )

  it.live(
    "the sweeper deletes queues whose heartbeat is stale (with DLQ and subscription) and keeps live, alive and foreign ones",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const { sns, sqs } = yield* clients(fauxqs)
        const prefix = "sweep"
        const start = (instanceId: string) =>
          Effect.gen(function* () {
            const scope = yield* Scope.make()
            const bus = yield* SnsSqsBus.make({
              ...connection(fauxqs),
              instanceId,
              topicName,
              queuePrefix: prefix
            }).pipe(Scope.provide(scope))
            return { bus, scope }
          })
        const ageHeartbeat = (queueUrl: string) =>
          aws(() =>
            sqs.send(
              new TagQueueCommand({
                QueueUrl: queueUrl,
                Tags: { [SqsQueue.tagKeys.heartbeat]: String(Date.now() - 3_600_000) }
              })
            )
          )
        // "dead" crashed an hour ago (its finalizers never ran); "paused" looks as stale but is reported alive.
        const dead = yield* start("dead")
        const paused = yield* start("paused")
        const live = yield* start("live")
        yield* ageHeartbeat(dead.bus.queueUrl)
        yield* ageHeartbeat(paused.bus.queueUrl)
        yield* aws(() => sqs.send(new CreateQueueCommand({ QueueName: `${prefix}-foreign` })))
        // A DLQ whose queue was never created (a crash in between).
        yield* aws(() =>
          sqs.send(
            new CreateQueueCommand({
              QueueName: `${prefix}-ghost-dlq`,
              tags: {
                [SqsQueue.tagKeys.instance]: "ghost",
                [SqsQueue.tagKeys.role]: "dlq",
                [SqsQueue.tagKeys.created]: String(Date.now() - 3_600_000)
              }
            })
          )
        )

        const swept = yield* QueueSweeper.sweepOrphanQueues({
          ...connection(fauxqs),
          prefix,
          olderThan: "10 minutes",
          topicArn: dead.bus.topicArn,
          isAlive: (instanceId) => instanceId === "paused"
        })

        assert.sameMembers(
          swept.map((s) => s.instanceId),
          ["dead", "ghost"]
        )
        const sweptDead = swept.find((s) => s.instanceId === "dead")!
        assert.strictEqual(sweptDead.queueUrl, dead.bus.queueUrl)
        assert.strictEqual(sweptDead.dlqUrl, dead.bus.dlqUrl)
        assert.deepStrictEqual(sweptDead.unsubscribed, [dead.bus.subscriptionArn!])
        const deadName = SqsQueue.queueName(prefix, "dead")
        assert.isFalse(yield* queueExists(sqs, deadName))
        assert.isFalse(yield* queueExists(sqs, SqsQueue.dlqName(deadName)))
        assert.isFalse(yield* queueExists(sqs, `${prefix}-ghost-dlq`))
        assert.deepStrictEqual(yield* subscriptionsTo(sns, dead.bus.topicArn, dead.bus.queueArn), [])
        for (const kept of [
          SqsQueue.queueName(prefix, "paused"),
          SqsQueue.queueName(prefix, "live"),
          `${prefix}-foreign`
        ]) {
          assert.isTrue(yield* queueExists(sqs, kept), `${kept} was deleted`)
        }
        assert.lengthOf(yield* subscriptionsTo(sns, live.bus.topicArn, live.bus.queueArn), 1)

        // The swept instance shutting down after all finds its resources gone, and closes cleanly.
        for (const { scope } of [dead, paused, live]) yield* Scope.close(scope, Exit.void)
        assert.isFalse(yield* queueExists(sqs, SqsQueue.queueName(prefix, "live")))
      })
  )

  it.live(
    "a batch entry SNS rejects fails the publish with a BusError naming that event; the others are published",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const [a, b] = yield* Effect.forEach(["a", "b"], (instanceId) =>
          SnsSqsBus.make({ ...connection(fauxqs), instanceId, topicName })
        )
        const received = yield* InvalidationBusSuite.collect(b!)
        const [small1, small2] = events("a", 2)
        // ~280 KB of tags: more than the 256 KiB SNS takes in one message.
        const huge = Schema.decodeUnknownSync(InvalidationEvent)({
          version: 1,
          event_id: "huge",
          source_instance: "a",
          seq: 3,
          timestamp: Date.now(),
          invalidation_type: "tag",
          tags: Array.from({ length: 1100 }, (_, i) => `${i}-${"x".repeat(240)}`)
        })
        const error = yield* Effect.flip(a!.publish([small1!, huge, small2!]))
        assert.strictEqual(error._tag, "BusError")
        assert.strictEqual(error.operation, "PublishBatch")
        assert.include(error.message, "huge")
        yield* received.until(
          () => received.of(small1!.event_id).length > 0 && received.of(small2!.event_id).length > 0,
          "B received the two small events",
          10_000
        )
      })
  )

  it.live(
    "the consumer keeps polling through a network failure: receive errors are counted and retried, then delivery resumes",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const proxy = yield* makeProxy(fauxqs)
        const publisher = yield* SnsSqsBus.make({ ...connection(fauxqs), instanceId: "publisher", topicName })
        const bus = yield* SnsSqsBus.make({
          ...connection(fauxqs),
          endpoint: proxy.endpoint,
          instanceId: "consumer",
          topicName,
          waitTimeSeconds: 1,
          visibilityTimeoutSeconds: 1
        })
        const received = yield* InvalidationBusSuite.collect(bus)
        const [before, after] = events("publisher", 2)
        yield* publisher.publish([before!])
        yield* received.until(
          () => received.of(before!.event_id).some((r) => r.acked),
          "delivered before the cut",
          10_000
        )

        const errorsBefore = (yield* Metric.value(SnsSqsBus.receiveErrors)).count
        proxy.cut()
        yield* Poll.until(
          Effect.map(Metric.value(SnsSqsBus.receiveErrors), (m) => m.count >= errorsBefore + 2),
          { timeoutMs: 15_000, what: "two receives failed", intervalMs: 10 }
        )
        const contactDuringCut = yield* bus.lastContact
        proxy.heal()
        yield* publisher.publish([after!])
        // A long poll cut mid-wait may still take the message on the emulator's side; it then comes back after the
        // 1 s visibility timeout, so the deadline allows for that.
        yield* received.until(() => received.of(after!.event_id).length > 0, "delivered after the cut", 15_000)
        assert.isAbove((yield* bus.lastContact)!, contactDuringCut!)
      })
  )

  it.live("interrupting the consumer aborts its in-flight long poll at once", () =>
    Effect.gen(function* () {
      const fauxqs = yield* Fauxqs.make()
      const proxy = yield* makeProxy(fauxqs)
      const bus = yield* SnsSqsBus.make({
        ...connection(fauxqs),
        endpoint: proxy.endpoint,
        instanceId: "waiting",
        topicName,
        waitTimeSeconds: 20
      })
      const fiber = yield* bus.deliveries.pipe(Stream.runDrain, Effect.forkChild)
      yield* Poll.until(
        Effect.sync(() => proxy.receives() >= 1),
        { timeoutMs: 5000, what: "a long poll is waiting" }
      )
      const closesBefore = proxy.clientCloses()
      const started = Date.now()
      yield* Fiber.interrupt(fiber)
      const took = Date.now() - started
      assert.isBelow(took, 1000, `interrupting took ${took} ms`)
      // The aborted request's connection is closed by the client, not left waiting out its 20 s.
      yield* Poll.until(
        Effect.sync(() => proxy.clientCloses() > closesBefore),
        {
          timeoutMs: 1000,
          what: "the client closed the long poll's connection"
        }
      )
    })
  )

  it.live("a configuration without a topic, or with an out-of-range setting, fails with a BusError", () =>
    Effect.gen(function* () {
      const noTopic = yield* Effect.flip(SnsSqsBus.make({ instanceId: "x", region: "us-east-1" }))
      assert.strictEqual(noTopic.operation, "configure")
      const badWait = yield* Effect.flip(SnsSqsBus.make({ instanceId: "x", topicName, waitTimeSeconds: 21 }))
      assert.include(badWait.message, "waitTimeSeconds")
      const badPrefix = yield* Effect.flip(SnsSqsBus.make({ instanceId: "x", topicName, queuePrefix: "a.b" }))
      assert.include(badPrefix.message, "queuePrefix")
      const badHeartbeat = yield* Effect.flip(SnsSqsBus.make({ instanceId: "x", topicName, heartbeatInterval: 0 }))
      assert.include(badHeartbeat.message, "heartbeatInterval")
    })
  )
})
