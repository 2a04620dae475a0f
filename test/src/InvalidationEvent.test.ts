import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { epochOf, InvalidationEventJson, kindOf, targetsOf } from "../../src/InvalidationEvent.ts"

const decode = Schema.decodeUnknownExit(InvalidationEventJson)
const envelope = { event_id: "e-1", source_instance: "a", seq: 3, timestamp: 1 }

describe("InvalidationEvent", () => {
  it("decodes a v1 event as one target, without an epoch", () => {
    const exit = decode(JSON.stringify({ ...envelope, version: 1, invalidation_type: "key", key: "user:1" }))
    assert.strictEqual(exit._tag, "Success")
    if (exit._tag !== "Success") return
    assert.deepStrictEqual(targetsOf(exit.value), [{ invalidation_type: "key", key: "user:1" }])
    assert.isUndefined(epochOf(exit.value))
    assert.strictEqual(kindOf(exit.value), "key")
  })

  it("decodes a v2 event with its targets in order and its epoch", () => {
    const targets = [
      { invalidation_type: "key", key: "user:1" },
      { invalidation_type: "pattern", pattern: "order:*" },
      { invalidation_type: "tag", tags: ["t1", "t2"] },
      { invalidation_type: "pattern", pattern: "*", all: true }
    ]
    const exit = decode(JSON.stringify({ ...envelope, version: 2, epoch: "boot-1", targets }))
    assert.strictEqual(exit._tag, "Success")
    if (exit._tag !== "Success") return
    assert.deepStrictEqual(targetsOf(exit.value) as ReadonlyArray<unknown>, targets)
    assert.strictEqual(epochOf(exit.value), "boot-1")
    assert.strictEqual(kindOf(exit.value), "mixed")
  })

  it("refuses a v2 event without targets, without an epoch, or with an invalid target", () => {
    const v2 = { ...envelope, version: 2, epoch: "boot-1", targets: [{ invalidation_type: "key", key: "k" }] }
    assert.strictEqual(decode(JSON.stringify(v2))._tag, "Success")
    for (const broken of [
      { ...v2, targets: [] },
      { ...v2, epoch: undefined },
      { ...v2, epoch: "" },
      { ...v2, targets: [{ invalidation_type: "key", key: "" }] },
      { ...v2, targets: [{ invalidation_type: "tag", tags: [] }] },
      { ...v2, targets: [{ invalidation_type: "colour" }] },
      // A v1 body claiming version 2 (no targets list) is not a v2 event.
      { ...envelope, version: 2, epoch: "boot-1", invalidation_type: "key", key: "k" }
    ]) {
      assert.strictEqual(decode(JSON.stringify(broken))._tag, "Failure", JSON.stringify(broken))
    }
  })

  it("encodes a v2 event to JSON that decodes to the same event", () => {
    const body = { ...envelope, version: 2, epoch: "boot-1", targets: [{ invalidation_type: "tag", tags: ["t"] }] }
    const event = Schema.decodeUnknownSync(InvalidationEventJson)(JSON.stringify(body))
    const text = Schema.encodeSync(InvalidationEventJson)(event)
    assert.deepStrictEqual(JSON.parse(text), body)
    assert.deepStrictEqual(Schema.decodeUnknownSync(InvalidationEventJson)(text), event)
  })
})
