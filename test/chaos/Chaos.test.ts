/**
 * A smoke of the chaos suite inside `npm test`: the baseline scenario for 8 s through the same runner as
 * `npm run chaos` (three real `serve` instances on fauxqs, the versioned source, recorded traffic, the checker). It
 * pins that a healthy cluster shows no stale read past the bound and that the suite's result line is well formed.
 */
import { assert, describe, it } from "@effect/vitest"
import { check, formatLine, linePattern } from "./checker.ts"
import { runScenario, scenarios } from "./scenarios.ts"
import { emptyHistory } from "./traffic.ts"

/** A read by i1 of key k. */
const read = (start: number, version: number) => ({
  instance: "i1",
  key: "k",
  start,
  end: start + 1,
  status: 200,
  version
})

describe("chaos suite", () => {
  it("the checker flags a read starting past the bound with an older version, and only that one", () => {
    const history = emptyHistory()
    history.obligations.push({ instance: "i0", key: "k", at: 1000, version: 3, kind: "delete" })
    history.reads.push(read(500, 2), read(1500, 2), read(2500, 3), read(2600, 2))
    const verdict = check(history, 1000, ["i0", "i1"])
    assert.deepStrictEqual(
      verdict.violations.map((v) => v.read.start),
      [2600]
    )
    assert.deepStrictEqual(
      [...verdict.maxStaleMs],
      [
        ["i0", 0],
        ["i1", 1600]
      ]
    )
  })

  it("a healthy cluster under concurrent reads and invalidations answers no value older than a returned invalidation", async () => {
    const baseline = scenarios.find((scenario) => scenario.name === "baseline")!
    const result = await runScenario(baseline, 8)
    const line = formatLine(result)
    assert.match(line, linePattern)
    assert.isAbove(result.reads, 100, line)
    assert.isAbove(result.history.obligations.length, 10, line)
    assert.strictEqual(result.violations, 0, line)
    assert.strictEqual(result.status5xx, 0, line)
    assert.isTrue(result.passed, line)
  }, 60_000)
})
