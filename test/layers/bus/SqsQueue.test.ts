/**
 * SqsQueue's naming, without AWS: the name a created queue gets for an instance id, and its DLQ's name, within
 * SQS's limits. Provisioning, adoption and the heartbeat run against fauxqs in SnsSqsBus.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqsQueue from "../../../layers/bus/SqsQueue.ts"

describe("SqsQueue.queueName", () => {
  it("keeps a valid id as it is and hashes one that had to change or be shortened", () => {
    assert.strictEqual(SqsQueue.queueName("embedded-cache", "web-1"), "embedded-cache-web-1")
    const long = SqsQueue.queueName("embedded-cache", "x".repeat(200))
    assert.isAtMost(long.length, 76)
    assert.notStrictEqual(SqsQueue.queueName("p", "a.b"), SqsQueue.queueName("p", "a_b"))
    assert.isAtMost(SqsQueue.dlqName(long).length, 80)
  })
})
