import { assert, describe, it } from "@effect/vitest"
import { SeqTracker } from "../../../effects/internal/SeqTracker.ts"

const tracker = () => new SeqTracker({ gapTimeoutMs: 1000, maxAhead: 3 })

/** The publishers reported lost at `now` (their reasons checked by the tests that care). */
const lostSources = (t: SeqTracker, now: number) => t.lost(now).map((lost) => lost.source)

describe("SeqTracker", () => {
  it("in-order seqs leave no gap, however long after", () => {
    const t = tracker()
    for (let seq = 1; seq <= 5; seq++) assert.strictEqual(t.arrived("p", seq, seq), "tracked")
    assert.deepStrictEqual(lostSources(t, 1_000_000), [])
  })

  it("an out-of-order arrival that fills the hole in time is not a gap", () => {
    const t = tracker()
    t.arrived("p", 1, 0)
    t.arrived("p", 3, 10)
    t.arrived("p", 4, 20)
    assert.deepStrictEqual(lostSources(t, 500), [])
    t.arrived("p", 2, 900)
    assert.deepStrictEqual(lostSources(t, 5000), [])
  })

  it("a hole still open after gapTimeout is reported once, then tracking skips past it", () => {
    const t = tracker()
    t.arrived("p", 1, 0)
    t.arrived("p", 3, 100)
    assert.deepStrictEqual(lostSources(t, 1099), [])
    assert.deepStrictEqual(lostSources(t, 1100), ["p"])
    assert.deepStrictEqual(lostSources(t, 5000), [])
    // Skipped past: the late seq 2 and the next seq 4 open no new gap.
    t.arrived("p", 2, 5000)
    t.arrived("p", 4, 5001)
    assert.deepStrictEqual(lostSources(t, 100_000), [])
  })

  it("a hole with more than maxAhead later events is a gap before gapTimeout", () => {
    const t = tracker()
    t.arrived("p", 1, 0)
    for (const seq of [3, 4, 5]) t.arrived("p", seq, 0)
    assert.deepStrictEqual(lostSources(t, 1), [], "maxAhead later events are still tolerated")
    t.arrived("p", 6, 0)
    assert.deepStrictEqual(lostSources(t, 1), ["p"])
    assert.deepStrictEqual(lostSources(t, 2), [])
    t.arrived("p", 7, 3)
    assert.deepStrictEqual(lostSources(t, 100_000), [])
  })

  it("a publisher first heard past seq 1 counts its earlier seqs as missing", () => {
    const t = tracker()
    t.arrived("late", 5, 0)
    assert.deepStrictEqual(lostSources(t, 999), [])
    assert.deepStrictEqual(lostSources(t, 1000), ["late"])
  })

  it("tracks each publisher apart", () => {
    const t = tracker()
    t.arrived("a", 1, 0)
    t.arrived("b", 2, 0)
    t.arrived("a", 2, 0)
    assert.deepStrictEqual(lostSources(t, 2000), ["b"])
  })

  it("seq 1 again after seq 1 was accounted for is a restart, and tracking starts over", () => {
    const t = tracker()
    assert.strictEqual(t.arrived("p", 1, 0), "tracked")
    t.arrived("p", 2, 0)
    t.arrived("p", 3, 0)
    assert.strictEqual(t.arrived("p", 1, 10), "restarted")
    assert.strictEqual(t.arrived("p", 2, 10), "tracked")
    assert.deepStrictEqual(lostSources(t, 100_000), [])
  })

  it("seq 1 arriving late into a hole is not a restart", () => {
    const t = tracker()
    t.arrived("p", 2, 0)
    assert.strictEqual(t.arrived("p", 1, 10), "tracked")
    assert.deepStrictEqual(lostSources(t, 100_000), [])
  })
})

describe("SeqTracker with epochs (v2)", () => {
  it("a new epoch after a graceful stop (its last seq announced and all arrived) loses nothing", () => {
    const t = tracker()
    t.arrived("p", 1, 0, "boot-1")
    t.arrived("p", 2, 1, "boot-1")
    t.arrived("p", 3, 2, "boot-1", true)
    assert.strictEqual(t.arrived("p", 1, 3, "boot-2"), "tracked")
    t.arrived("p", 2, 4, "boot-2")
    assert.deepStrictEqual(t.lost(1_000_000), [])
  })

  it("a new epoch that arrives before the old one's last events waits for them", () => {
    const t = tracker()
    t.arrived("p", 1, 0, "boot-1")
    t.arrived("p", 1, 1, "boot-2")
    t.arrived("p", 3, 2, "boot-1", true)
    assert.deepStrictEqual(t.lost(500), [], "within the gap timeout the old epoch may still complete")
    t.arrived("p", 2, 600, "boot-1")
    assert.deepStrictEqual(t.lost(1_000_000), [])
  })

  it("an old epoch that never announced its end (a crash) is lost once the gap timeout passes", () => {
    const t = tracker()
    t.arrived("p", 1, 0, "boot-1")
    t.arrived("p", 2, 0, "boot-1")
    t.arrived("p", 1, 100, "boot-2")
    assert.deepStrictEqual(t.lost(1099), [])
    assert.deepStrictEqual(t.lost(1100), [{ source: "p", reason: "publisher-restart" }])
    assert.deepStrictEqual(t.lost(1_000_000), [], "reported once")
    assert.strictEqual(t.arrived("p", 3, 2000, "boot-1"), "tracked", "a straggler of the lost epoch is ignored")
    assert.deepStrictEqual(t.lost(1_000_000), [])
  })

  it("seqs of one epoch arriving out of order across concurrent polls leave no gap once all arrived", () => {
    const t = tracker()
    for (const seq of [2, 1, 5, 3, 4]) t.arrived("p", seq, seq, "boot-1")
    assert.deepStrictEqual(t.lost(1_000_000), [])
  })

  it("an epoch first heard past seq 1 counts its earlier seqs as missing", () => {
    const t = tracker()
    t.arrived("p", 7, 0, "boot-1")
    assert.deepStrictEqual(t.lost(999), [])
    assert.deepStrictEqual(t.lost(1000), [{ source: "p", reason: "seq-gap" }])
  })

  it("a restart resumes from the snapshot: the next seq continues, a hole since is a gap, and nothing else is", () => {
    const before = tracker()
    for (let seq = 1; seq <= 4; seq++) before.arrived("p", seq, seq, "boot-1")
    before.arrived("q", 1, 0, "boot-9")
    const snapshot = before.snapshot()
    assert.deepStrictEqual(snapshot, [
      { source: "p", epoch: "boot-1", contiguous: 4 },
      { source: "q", epoch: "boot-9", contiguous: 1 }
    ])
    const after = tracker()
    after.restore(JSON.parse(JSON.stringify(snapshot)), 10)
    after.arrived("p", 5, 20, "boot-1")
    after.arrived("q", 3, 20, "boot-9")
    assert.deepStrictEqual(after.lost(2000), [{ source: "q", reason: "seq-gap" }])
  })

  it("a restored publisher that restarted while this instance was down completes its old epoch or loses it", () => {
    const after = tracker()
    after.restore([{ source: "p", epoch: "boot-1", contiguous: 4 }], 0)
    after.arrived("p", 5, 10, "boot-1", true)
    after.arrived("p", 1, 20, "boot-2")
    assert.deepStrictEqual(after.lost(1_000_000), [], "boot-1 ended gracefully at 5 and all of it arrived")
    const crashed = tracker()
    crashed.restore([{ source: "p", epoch: "boot-1", contiguous: 4 }], 0)
    crashed.arrived("p", 1, 20, "boot-2")
    assert.deepStrictEqual(crashed.lost(2000), [{ source: "p", reason: "publisher-restart" }])
  })
})
