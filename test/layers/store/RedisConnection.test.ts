import { assert, describe, it } from "@effect/vitest"
import { Watchdog } from "../../../layers/store/RedisConnection.ts"

/** A watchdog with `pending` commands issued and none answered, ticked from `from` to `to` every `step` ms. */
const ticking = (watchdog: Watchdog, from: number, to: number, step: number): boolean => {
  let fired = false
  for (let now = from; now <= to; now += step) fired = watchdog.stuck(now) || fired
  return fired
}

describe("the command-timeout watchdog", () => {
  it("fires once commands have waited longer than the timeout with no reply", () => {
    const watchdog = new Watchdog(1000, 0)
    watchdog.issued = 3
    assert.isFalse(ticking(watchdog, 250, 750, 250), "not before the timeout")
    assert.isTrue(ticking(watchdog, 1000, 1250, 250))
  })

  it("does not fire while replies keep arriving, nor with nothing pending", () => {
    const watchdog = new Watchdog(1000, 0)
    for (let now = 250; now <= 5000; now += 250) {
      watchdog.issued += 10
      watchdog.completed += 10
      assert.isFalse(watchdog.stuck(now))
    }
    assert.isFalse(ticking(watchdog, 5250, 9000, 250), "idle: nothing pending")
  })

  it("takes a stall of this process (a late tick) for what it is, not for a hung server", () => {
    const watchdog = new Watchdog(1000, 0)
    watchdog.issued = 5
    assert.isFalse(watchdog.stuck(250))
    // The event loop was blocked for 3 s: the timer runs before the replies waiting on the socket are read.
    assert.isFalse(watchdog.stuck(3250), "a late tick restarts the wait")
    assert.isFalse(ticking(watchdog, 3500, 4000, 250))
    assert.isTrue(ticking(watchdog, 4250, 4500, 250), "a server still silent a full timeout later is hung")
  })
})
