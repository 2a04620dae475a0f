/**
 * A circuit breaker over the store: after `failureThreshold` consecutive outage failures it opens and the cache
 * stops calling the store; after `resetAfterMs` one caller runs the recovery probe, and only a successful probe
 * closes it again. The closed check is a field read, so the hot path pays nothing for it.
 */

/** When to open and when to probe again. */
export interface BreakerOptions {
  readonly failureThreshold: number
  readonly resetAfterMs: number
}

/** The breaker's state: `closed` lets calls through, `open` short-circuits them, `probing` while one recovers. */
export type BreakerState = "closed" | "open" | "probing"

/** Mutable breaker; the cache owns one per store. */
export class CircuitBreaker {
  state: BreakerState = "closed"
  private failures = 0
  private openedAt = 0
  /** How many times it has opened. */
  opened = 0

  readonly options: BreakerOptions

  constructor(options: BreakerOptions) {
    this.options = options
  }

  /** Records a success of a normal call: the failure streak ends. */
  succeeded(): void {
    this.failures = 0
  }

  /** Records an outage failure at `now`; answers true when this failure opened the breaker. */
  failed(now: number): boolean {
    if (this.state !== "closed") return false
    this.failures++
    if (this.failures < this.options.failureThreshold) return false
    this.state = "open"
    this.openedAt = now
    this.opened++
    return true
  }

  /** Whether the caller at `now` should run the recovery probe; at most one caller at a time is told yes. */
  shouldProbe(now: number): boolean {
    if (this.state !== "open" || now - this.openedAt < this.options.resetAfterMs) return false
    this.state = "probing"
    return true
  }

  /** Ends a probe: closes on success, reopens (restarting the wait) on failure. */
  probed(ok: boolean, now: number): void {
    this.failures = 0
    if (ok) this.state = "closed"
    else {
      this.state = "open"
      this.openedAt = now
    }
  }
}
