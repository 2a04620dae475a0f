import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { EmbeddedRedis } from "../../src/EmbeddedRedis.ts"
import * as Glob from "../../src/Glob.ts"
import * as EmbeddedServer from "../utils/EmbeddedServer.ts"
import * as Resp from "../utils/Resp.ts"

describe("Glob", () => {
  it("matches the Redis glob forms", () => {
    expect(Glob.matches("user:*", "user:1")).toBe(true)
    expect(Glob.matches("user:*", "users:1")).toBe(false)
    expect(Glob.matches("h?llo", "hello")).toBe(true)
    expect(Glob.matches("h[ae]llo", "hallo")).toBe(true)
    expect(Glob.matches("h[^e]llo", "hello")).toBe(false)
    expect(Glob.matches("h[a-b]llo", "hbllo")).toBe(true)
    expect(Glob.matches("a\\*b", "a*b")).toBe(true)
    expect(Glob.matches("a\\*b", "axb")).toBe(false)
    expect(Glob.matches("*:*:x", "a:b:x")).toBe(true)
  })

  it("recognises the patterns that match every key", () => {
    for (const p of ["*", "**", "?*", "*?*"]) expect(Glob.matchesEverything(p)).toBe(true)
    for (const p of ["?", "??*", "a*", "[a]*", "\\*"]) expect(Glob.matchesEverything(p)).toBe(false)
  })

  it.live("agrees with redis-server's own matcher on generated patterns and keys", () =>
    Effect.gen(function* () {
      const server = yield* EmbeddedRedis
      const alphabet = fc.constantFrom("a", "b", ":", "*", "?", "[", "]", "^", "-", "\\")
      const samples = fc.sample(
        fc.tuple(
          fc.string({ unit: alphabet, maxLength: 6 }),
          fc.string({ unit: fc.constantFrom("a", "b", ":", "-", "*"), minLength: 1, maxLength: 5 })
        ),
        { numRuns: 300, seed: 42 }
      )
      for (const [pattern, key] of samples) {
        yield* Resp.command(server.socketPath, "FLUSHALL")
        yield* Resp.command(server.socketPath, "SET", key, "1")
        const reply = yield* Resp.command(server.socketPath, "SCAN", "0", "MATCH", pattern, "COUNT", "100")
        const redisMatched = JSON.stringify(reply).includes(JSON.stringify(key))
        expect([pattern, key, Glob.matches(pattern, key)]).toEqual([pattern, key, redisMatched])
      }
    }).pipe(Effect.provide(EmbeddedServer.layer()))
  )
})
