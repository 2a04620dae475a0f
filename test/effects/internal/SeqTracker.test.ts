import { assert, describe, it } from "@effect/vitest"
import { SeqTracker } from "../../../effects/internal/SeqTracker.ts"

const tracker = () => new SeqTracker({ gapTimeoutMs: 1000, maxAhead: 3 })

describe("SeqTracker", () => {
  it("in-order seqs leave no gap, however long after", () => {
    const t = tracker()
    for (let seq = 1; seq <= 5; seq++) assert.strictEqual(t.arrived("p", seq, seq), "tracked")
    assert.deepStrictEqual(t.gaps(1_000_000), [])
  })

  it("an out-of-order arrival that fills the hole in time is not a gap", () => {
    const t = tracker()
    t.arrived("p", 1, 0)
    t.arrived("p", 3, 10)
    t.arrived("p", 4, 20)
    assert.deepStrictEqual(t.gaps(500), [])
    t.arrived("p", 2, 900)
    assert.deepStrictEqual(t.gaps(5000), [])
  })

  it("a hole still open after gapTimeout is reported once, then tracking skips past it", () => {
    const t = tracker()
    t.arrived("p", 1, 0)
    t.arrived("p", 3, 100)
    assert.deepStrictEqual(t.gaps(1099), [])
    assert.deepStrictEqual(t.gaps(1100), ["p"])
    assert.deepStrictEqual(t.gaps(5000), [])
    // Skipped past: the late seq 2 and the next seq 4 open no new gap.
    t.arrived("p", 2, 5000)
    t.arrived("p", 4, 5001)
    assert.deepStrictEqual(t.gaps(100_000), [])
  })

  it("a hole with more than maxAhead later events is a gap before gapTimeout", () => {
    const t = tracker()
    t.arrived("p", 1, 0)
    for (const seq of [3, 4, 5]) t.arrived("p", seq, 0)
    assert.deepStrictEqual(t.gaps(1), [], "maxAhead later events are still tolerated")
    t.arrived("p", 6, 0)
    assert.deepStrictEqual(t.gaps(1), ["p"])
    assert.deepStrictEqual(t.gaps(2), [])
    t.arrived("p", 7, 3)
    assert.deepStrictEqual(t.gaps(100_000), [])
  })

  it("a publisher first heard past seq 1 counts its earlier seqs as missing", () => {
    const t = tracker()
    t.arrived("late", 5, 0)
    assert.deepStrictEqual(t.gaps(999), [])
    assert.deepStrictEqual(t.gaps(1000), ["late"])
  })

  it("tracks each publisher apart", () => {
    const t = tracker()
    t.arrived("a", 1, 0)
    t.arrived("b", 2, 0)
    t.arrived("a", 2, 0)
    assert.deepStrictEqual(t.gaps(2000), ["b"])
  })

  it("seq 1 again after seq 1 was accounted for is a restart, and tracking starts over", () => {
    const t = tracker()
    assert.strictEqual(t.arrived("p", 1, 0), "tracked")
    t.arrived("p", 2, 0)
    t.arrived("p", 3, 0)
    assert.strictEqual(t.arrived("p", 1, 10), "restarted")
    assert.strictEqual(t.arrived("p", 2, 10), "tracked")
    assert.deepStrictEqual(t.gaps(100_000), [])
  })

  it("seq 1 arriving late into a hole is not a restart", () => {
    const t = tracker()
    t.arrived("p", 2, 0)
    assert.strictEqual(t.arrived("p", 1, 10), "tracked")
    assert.deepStrictEqual(t.gaps(100_000), [])
  })
})

describe("SeqTracker with epochs (v2)", () => {
  it("a new epoch of a publisher is a restart, not a gap", () => {
    const t = tracker()
    assert.strictEqual(t.arrived("p", 1, 0, "boot-1"), "tracked")
    assert.strictEqual(t.arrived("p", 2, 1, "boot-1"), "tracked")
    assert.strictEqual(t.arrived("p", 1, 2, "boot-2"), "restarted")
    assert.strictEqual(t.arrived("p", 2, 3, "boot-2"), "tracked")
    assert.deepStrictEqual(t.gaps(1_000_000), [])
  })

  it("a late event of an epoch the publisher left is neither a restart nor a gap", () => {
    const t = tracker()
    t.arrived("p", 1, 0, "boot-1")
    t.arrived("p", 1, 1, "boot-2")
    assert.strictEqual(t.arrived("p", 2, 2, "boot-1"), "tracked")
    assert.strictEqual(t.arrived("p", 2, 3, "boot-2"), "tracked")
    assert.deepStrictEqual(t.gaps(1_000_000), [])
  })

  it("seqs of one epoch arriving out of order across concurrent polls leave no gap once all arrived", () => {
    const t = tracker()
    for (const seq of [2, 1, 5, 3, 4]) t.arrived("p", seq, seq, "boot-1")
    assert.deepStrictEqual(t.gaps(1_000_000), [])
  })
})
