// examples/UserService.test.ts — the same program in a unit test, on the memory layer: no Redis, no network
import { assert, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import * as Cache from "embedded-cache/effects/Cache"
import * as CacheLayers from "embedded-cache/layers/CacheLayers"
import { renameUser, User, userById } from "./UserService.ts"

it.effect("a cached user expires after its TTL", () =>
  Effect.gen(function* () {
    yield* userById(1)
    assert.deepStrictEqual(yield* Cache.get("user:1", User), Option.some({ id: 1, name: "ada" }))
    yield* TestClock.adjust("10 minutes") // TestClock drives the memory store's TTLs
    assert.deepStrictEqual(yield* Cache.get("user:1", User), Option.none())
  }).pipe(Effect.provide(CacheLayers.layerMemory()))
)

it.effect("renaming a user drops the cached copy", () =>
  Effect.gen(function* () {
    yield* userById(1)
    assert.deepStrictEqual(yield* renameUser(1, "grace"), { _tag: "Deleted", removed: 1 })
    assert.deepStrictEqual(yield* Cache.get("user:1", User), Option.none())
  }).pipe(Effect.provide(CacheLayers.layerMemory()))
)
