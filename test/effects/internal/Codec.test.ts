import { assert, describe, it } from "@effect/vitest"
import { Cause, Exit, Schema } from "effect"
import { codecFor } from "../../../effects/internal/Codec.ts"

const User = Schema.Struct({ name: Schema.String, age: Schema.Int })

/** The failure message of an Exit, or undefined when it succeeded. */
const failureMessage = <A>(exit: Exit.Exit<A, Schema.SchemaError>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const error = Cause.squash(exit.cause)
  return error instanceof Error ? error.message : String(error)
}

describe("Codec", () => {
  it("encodes a value to JSON text and decodes it back to an equal value", () => {
    const codec = codecFor(User)
    const text = codec.encode({ name: "ada", age: 36 })
    assert.isTrue(Exit.isSuccess(text))
    assert.deepStrictEqual(JSON.parse(Exit.isSuccess(text) ? text.value : ""), { name: "ada", age: 36 })
    const back = codec.decode(Exit.isSuccess(text) ? text.value : "")
    assert.deepStrictEqual(back, Exit.succeed({ name: "ada", age: 36 }))
  })

  it("decodes a source's JSON value as it is", () => {
    assert.deepStrictEqual(codecFor(User).decodeValue({ name: "bo", age: 1 }), Exit.succeed({ name: "bo", age: 1 }))
    assert.isTrue(Exit.isFailure(codecFor(User).decodeValue({ name: "bo" })))
  })

  it("a value that does not decode fails with the same SchemaError message as Schema.fromJsonString", () => {
    const text = JSON.stringify({ name: 7, age: 1.5 })
    const got = codecFor(User).decode(text)
    const expected = Schema.decodeUnknownExit(Schema.fromJsonString(User))(text)
    assert.isTrue(Exit.isFailure(got))
    assert.isDefined(failureMessage(expected))
    assert.strictEqual(failureMessage(got), failureMessage(expected))
  })

  it("text that is not JSON fails, with the message Schema.fromJsonString gives", () => {
    const got = codecFor(User).decode("{not json")
    const expected = Schema.decodeUnknownExit(Schema.fromJsonString(User))("{not json")
    assert.isTrue(Exit.isFailure(got))
    assert.isDefined(failureMessage(expected))
    assert.strictEqual(failureMessage(got), failureMessage(expected))
  })

  it("a value the schema cannot encode fails instead of producing text", () => {
    const bad = { name: 1, age: 2 } as unknown as typeof User.Type
    const got = codecFor(User).encode(bad)
    const expected = Schema.encodeUnknownExit(Schema.fromJsonString(User))(bad)
    assert.isTrue(Exit.isFailure(got))
    assert.isDefined(failureMessage(expected))
    assert.strictEqual(failureMessage(got), failureMessage(expected))
  })

  it("builds one codec per schema object and reuses it", () => {
    assert.strictEqual(codecFor(User), codecFor(User))
    const Same = Schema.Struct({ name: Schema.String, age: Schema.Int })
    assert.notStrictEqual(codecFor(Same), codecFor(User))
  })
})
