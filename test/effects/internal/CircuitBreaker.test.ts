import { assert, describe, it } from "@effect/vitest"
import { CircuitBreaker } from "../../../effects/internal/CircuitBreaker.ts"

const breaker = () => new CircuitBreaker({ failureThreshold: 3, resetAfterMs: 1000 })

describe("CircuitBreaker", () => {
  it("opens on the threshold-th consecutive outage and not before", () => {
    const b = breaker()
    assert.isFalse(b.failed(0))
    assert.isFalse(b.failed(1))
    assert.strictEqual(b.state, "closed")
    assert.isTrue(b.failed(2))
    assert.strictEqual(b.state, "open")
    assert.strictEqual(b.opened, 1)
    // Further failures while open do not reopen it or count again.
    assert.isFalse(b.failed(3))
    assert.strictEqual(b.opened, 1)
  })

  it("a success ends the failure streak, so the threshold counts from zero again", () => {
    const b = breaker()
    b.failed(0)
    b.failed(1)
    b.succeeded()
    assert.isFalse(b.failed(2))
    assert.isFalse(b.failed(3))
    assert.strictEqual(b.state, "closed")
    assert.isTrue(b.failed(4))
  })

  it("tells no one to probe before resetAfter, and exactly one caller after it", () => {
    const b = breaker()
    for (let i = 0; i < 3; i++) b.failed(100)
    assert.isFalse(b.shouldProbe(1099))
    assert.strictEqual(b.state, "open")
    assert.isTrue(b.shouldProbe(1100))
    assert.strictEqual(b.state, "probing")
    assert.isFalse(b.shouldProbe(1100))
    assert.isFalse(b.shouldProbe(5000))
  })

  it("a failed probe reopens it and restarts the wait from the probe's time", () => {
    const b = breaker()
    for (let i = 0; i < 3; i++) b.failed(0)
    assert.isTrue(b.shouldProbe(1000))
    b.probed(false, 1500)
    assert.strictEqual(b.state, "open")
    assert.isFalse(b.shouldProbe(2499))
    assert.isTrue(b.shouldProbe(2500))
    assert.strictEqual(b.opened, 1)
  })

  it("a successful probe closes it, and it opens again only after a full new streak", () => {
    const b = breaker()
    for (let i = 0; i < 3; i++) b.failed(0)
    assert.isTrue(b.shouldProbe(1000))
    b.probed(true, 1000)
    assert.strictEqual(b.state, "closed")
    assert.isFalse(b.shouldProbe(10_000))
    assert.isFalse(b.failed(2000))
    assert.isFalse(b.failed(2001))
    assert.isTrue(b.failed(2002))
    assert.strictEqual(b.opened, 2)
  })
})
