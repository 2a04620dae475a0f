/**
 * Three instances, each with its own real embedded redis-server, kept coherent over a real SNS/SQS protocol
 * peer (fauxqs on 127.0.0.1): mixed key, pattern and tag invalidations end in the state of applying each
 * event once everywhere; a message sent twice is applied once; a malformed one ends in the dead-letter queue
 * while valid ones keep flowing. Prints the publish→apply lag.
 */
import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema } from "effect"
import { Cache } from "../../../effects/Cache.ts"
import { SyncConsumer } from "../../../effects/SyncConsumer.ts"
import * as CacheLayers from "../../../layers/CacheLayers.ts"
import * as EmbeddedRedisServer from "../../../layers/store/EmbeddedRedisServer.ts"
import * as RedisStore from "../../../layers/store/RedisStore.ts"
import * as SnsSqsBus from "../../../layers/bus/SnsSqsBus.ts"
import { defaults } from "../../../src/EmbeddedRedis.ts"
import * as Glob from "../../../src/Glob.ts"
import { InvalidationBus } from "../../../src/InvalidationBus.ts"
import type { Target } from "../../../src/InvalidationEvent.ts"
import * as Fauxqs from "../../utils/Fauxqs.ts"
import * as Poll from "../../utils/Poll.ts"
import * as TempDir from "../../utils/TempDir.ts"

const Value = Schema.Struct({ key: Schema.String, version: Schema.Number })
const keys = Array.from({ length: 120 }, (_, i) => `${["user", "order", "item"][i % 3]}:${i}`)
const tagsOf = (key: string) => [`shard-${Number(key.split(":")[1]) % 5}`, key.split(":")[0]!]

const covered = (target: Target) =>
  target.invalidation_type === "key"
    ? [target.key]
    : target.invalidation_type === "pattern"
      ? keys.filter((key) => Glob.matches(target.pattern, key))
      : keys.filter((key) => tagsOf(key).some((tag) => target.tags.includes(tag)))

const instance = (fauxqs: Fauxqs.Fauxqs, instanceId: string) =>
  Effect.gen(function* () {
    const dir = yield* TempDir.make
    const bus = yield* SnsSqsBus.make({
      endpoint: fauxqs.endpoint,
      region: fauxqs.region,
      credentials: fauxqs.credentials,
      instanceId,
      topicName: "cache-invalidation",
      visibilityTimeoutSeconds: 1,
      maxReceiveCount: 2,
      waitTimeSeconds: 1
    })
    const context = yield* Layer.build(
      CacheLayers.layerSynced({
        store: RedisStore.layerEmbedded().pipe(Layer.provide(EmbeddedRedisServer.layer(defaults(dir)))),
        bus: Layer.succeed(InvalidationBus, bus)
      })
    )
    return {
      bus,
      context,
      run: <A, E>(effect: Effect.Effect<A, E, Cache | SyncConsumer>) => Effect.provide(effect, context)
    }
  })

const stats = SyncConsumer.use((sync) => sync.stats)

describe("sync over SNS/SQS with three instances", () => {
  it.live(
    "1,000 mixed invalidations leave every instance as if each event was applied once",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const nodes = yield* Effect.forEach(["node-a", "node-b", "node-c"], (id) => instance(fauxqs, id))
        const source = new Map(keys.map((key) => [key, 1]))
        for (const node of nodes) {
          yield* node.run(
            Cache.use((cache) =>
              Effect.forEach(
                keys,
                (key) =>
                  cache.getOrLoad(
                    key,
                    Effect.sync(() => ({ key, version: source.get(key)! })),
                    {
                      schema: Value,
                      tags: tagsOf(key)
                    }
                  ),
                { concurrency: 16, discard: true }
              )
            )
          )
        }
        // 1,000 invalidations from random instances; a key covered by any of them must be gone everywhere.
        let seed = 7
        const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
        const published = [0, 0, 0]
        const invalidated = new Set<string>()
        const lags: Array<number> = []
        for (let i = 0; i < 1000; i++) {
          const kind = random(3)
          const target: Target =
            kind === 0
              ? { invalidation_type: "key", key: keys[random(keys.length)]! }
              : kind === 1
                ? { invalidation_type: "pattern", pattern: `${["user", "order", "item"][random(3)]}:${random(10)}*` }
                : { invalidation_type: "tag", tags: [`shard-${random(5)}`] }
          for (const key of covered(target)) {
            source.set(key, source.get(key)! + 1)
            invalidated.add(key)
          }
          const from = random(3)
          if (i % 10 === 0) {
            // A sampled event: wait until the peers are idle, then time publish→apply on both.
            const peers = nodes.filter((_, n) => n !== from)
            const expected = (n: number) => published.reduce((sum, count, m) => (m === n ? sum : sum + count), 0)
            const peerIndexes = [0, 1, 2].filter((n) => n !== from)
            for (const n of peerIndexes) {
              yield* Poll.until(
                Effect.map(nodes[n]!.run(stats), (s) => s.applied === expected(n)),
                {
                  timeoutMs: 30_000,
                  what: "the peers are idle",
                  intervalMs: 1
                }
              )
            }
            published[from]!++
            const start = performance.now()
            yield* nodes[from]!.run(Cache.use((cache) => cache.invalidate(target)))
            for (const [k, peer] of peers.entries()) {
              yield* Poll.until(
                Effect.map(peer.run(stats), (s) => s.applied === expected(peerIndexes[k]!)),
                {
                  timeoutMs: 30_000,
                  what: "the sampled event is applied",
                  intervalMs: 1
                }
              )
              lags.push(performance.now() - start)
            }
          } else {
            published[from]!++
            yield* nodes[from]!.run(Cache.use((cache) => cache.invalidate(target)))
          }
        }
        for (const [n, node] of nodes.entries()) {
          const fromOthers = published.reduce((sum, count, m) => (m === n ? sum : sum + count), 0)
          yield* Poll.until(
            Effect.map(node.run(stats), (s) => s.applied === fromOthers),
            {
              timeoutMs: 60_000,
              what: `${node.bus.instanceId} applied ${fromOthers} events`,
              intervalMs: 20
            }
          )
        }
        for (const node of nodes) {
          const present = yield* node.run(
            Cache.use((cache) => Effect.filter(keys, (key) => Effect.map(cache.get(key, Value), Option.isSome)))
          )
          assert.deepStrictEqual(
            present,
            keys.filter((key) => !invalidated.has(key))
          )
          const s = yield* node.run(stats)
          assert.strictEqual(s.flushes, 0)
          assert.strictEqual(s.duplicates, 0)
        }
        lags.sort((a, b) => a - b)
        const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!.toFixed(1)
        console.log(`publish→apply lag over fauxqs (${lags.length} samples): p50 ${at(0.5)} ms, p99 ${at(0.99)} ms`)
      }).pipe(Effect.scoped),
    180_000
  )

  it.live(
    "applies an event sent twice once, and moves a malformed message to the DLQ while valid ones flow",
    () =>
      Effect.gen(function* () {
        const fauxqs = yield* Fauxqs.make()
        const [, b] = yield* Effect.forEach(["node-a", "node-b"], (id) => instance(fauxqs, id))
        const sqs = new SQSClient({ endpoint: fauxqs.endpoint, region: fauxqs.region, credentials: fauxqs.credentials })
        const send = (body: string) =>
          Effect.promise(() => sqs.send(new SendMessageCommand({ QueueUrl: b!.bus.queueUrl, MessageBody: body })))
        // As another service would publish it, straight onto the queue (SQS SendMessage).
        const event = (seq: number, key: string) =>
          JSON.stringify({
            version: 1,
            event_id: crypto.randomUUID(),
            source_instance: "another-service",
            seq,
            timestamp: Date.now(),
            invalidation_type: "key",
            key
          })
        yield* b!.run(Cache.use((cache) => cache.set("doubled", "v", { schema: Schema.String })))
        const twice = event(1, "doubled")
        yield* send(twice)
        yield* send(twice)
        yield* send("{ this is not an event")
        yield* send(event(2, "after-the-bad-one"))
        yield* Poll.until(
          Effect.map(b!.run(stats), (s) => s.applied === 2 && s.duplicates === 1),
          {
            timeoutMs: 10_000,
            what: "both valid events applied and the copy skipped",
            intervalMs: 10
          }
        )
        assert.isFalse(yield* b!.run(Cache.use((cache) => cache.exists("doubled"))))
        // Never acknowledged: after maxReceiveCount (2) receives the queue moves it to the dead-letter queue.
        let inDlq = false
        yield* Poll.until(
          Effect.promise(async () => {
            const reply = await sqs.send(new ReceiveMessageCommand({ QueueUrl: b!.bus.dlqUrl!, WaitTimeSeconds: 1 }))
            inDlq ||= (reply.Messages ?? []).some((m) => m.Body === "{ this is not an event")
            return inDlq
          }),
          { timeoutMs: 20_000, what: "the malformed message is in the DLQ", intervalMs: 10 }
        )
        const s = yield* b!.run(stats)
        assert.isAtLeast(s.malformed, 2)
        assert.strictEqual(s.flushes, 0)
        sqs.destroy()
      }).pipe(Effect.scoped),
    60_000
  )
})
