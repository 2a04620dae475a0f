/**
 * The README's first example, kept compiling and passing: the same program on the memory layer, with TestClock.
 */
import { assert, it } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "../effects/Cache.ts"
import * as CacheLayers from "../layers/CacheLayers.ts"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
const loadUser = (id: number) => Effect.succeed({ id, name: "ada" })
const saveUser = (_id: number, _name: string) => Effect.void

const userById = (id: number) =>
  Cache.getOrLoad(`user:${id}`, loadUser(id), { schema: User, ttl: "10 minutes", tags: ["users"] })

const renameUser = (id: number, name: string) =>
  Effect.gen(function* () {
    yield* saveUser(id, name)
    return yield* Cache.del(`user:${id}`)
  })

it.effect("a cached user expires after its TTL", () =>
  Effect.gen(function* () {
    yield* userById(1)
    assert.deepStrictEqual(yield* Cache.get("user:1", User), Option.some({ id: 1, name: "ada" }))
    yield* TestClock.adjust("10 minutes")
    assert.deepStrictEqual(yield* Cache.get("user:1", User), Option.none())
  }).pipe(Effect.provide(CacheLayers.layerMemory()))
)

it.effect("renaming drops the cached copy", () =>
  Effect.gen(function* () {
    yield* userById(1)
    assert.deepStrictEqual(yield* renameUser(1, "grace"), { _tag: "Deleted", removed: 1 })
    assert.deepStrictEqual(yield* Cache.get("user:1", User), Option.none())
  }).pipe(Effect.provide(CacheLayers.layerMemory()))
)
