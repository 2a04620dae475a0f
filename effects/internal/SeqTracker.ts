/**
 * Continuity per publisher boot: which `seq` numbers of each (publisher, epoch) arrived, so a missing one can be told
 * from a late one. A seq may arrive out of order (SQS standard queues reorder, several polls run at once); one still
 * missing after `gapTimeoutMs`, or with more than `maxAhead` later events already here, is a gap: an invalidation this
 * instance will never see.
 *
 * A new epoch (v2) is a new publisher, not a gap. The epoch it replaces must be complete: a publisher that stops
 * gracefully announces its last seq (a `final` event), and once every seq up to it arrived the old epoch is done — no
 * flush. An old epoch still incomplete when a newer one appears (its publisher crashed, and what it had not
 * published is lost) gets `gapTimeoutMs` for its stragglers, then counts as lost (`publisher-restart`). A v1 publisher
 * (no epochs) starting over at seq 1 is a restart at once, as before.
 *
 * An epoch first heard past its seq 1 has its earlier seqs counted missing: if they were sent before this instance
 * subscribed they never come, and nothing tells that apart from a loss. The state is a plain snapshot, so the
 * consumer keeps it in its store and a restart with persisted data resumes instead of counting everything missing.
 */

/** One (publisher, epoch)'s continuity as kept across restarts. */
export interface EpochSnapshot {
  readonly source: string
  /** The publisher's boot, `""` for a v1 publisher. */
  readonly epoch: string
  /** Every seq up to this one has arrived. */
  readonly contiguous: number
  /** The last seq the publisher announced, when it stopped gracefully. */
  readonly final?: number | undefined
}

interface EpochState {
  contiguous: number
  readonly ahead: Set<number>
  /** When the oldest missing seq (or, superseded, the epoch's incompleteness) was first noticed. */
  missingSince: number | undefined
  final: number | undefined
  /** A newer epoch of the same publisher has appeared: this one must complete, or counts as lost. */
  superseded: boolean
}

/** Why continuity was lost for a publisher. */
export type Loss = "seq-gap" | "publisher-restart"

/** A publisher whose continuity was lost. */
export interface Lost {
  readonly source: string
  readonly reason: Loss
}

/** What an arrival means: a v1 publisher starting over at seq 1 is a restart (continuity lost at once). */
export type Arrival = "tracked" | "restarted"

/** Epochs remembered per publisher once done, so a late duplicate of an old boot is not taken for a new one. */
const retiredPerSource = 16

const keyOf = (source: string, epoch: string) => `${source}\u0000${epoch}`

/** Tracks the seqs of every publisher boot this instance hears from. */
export class SeqTracker {
  private readonly epochs = new Map<string, EpochState>()
  /** Per publisher, its live epochs (in the order first heard). */
  private readonly live = new Map<string, Array<string>>()
  /** Per publisher, its last done epochs (bounded): a late duplicate of one is ignored. */
  private readonly done = new Map<string, Array<string>>()
  private readonly gapTimeoutMs: number
  private readonly maxAhead: number

  constructor(options: { readonly gapTimeoutMs: number; readonly maxAhead: number }) {
    this.gapTimeoutMs = options.gapTimeoutMs
    this.maxAhead = options.maxAhead
  }

  /** Records `seq` of `epoch` (undefined for v1) from `source` at `now`; `final` marks a graceful stop's last seq. */
  arrived(source: string, seq: number, now: number, epoch?: string, final?: boolean): Arrival {
    const key = keyOf(source, epoch ?? "")
    if (this.done.get(source)?.includes(key) === true) return "tracked"
    let state = this.epochs.get(key)
    let arrival: Arrival = "tracked"
    if (state !== undefined && epoch === undefined && seq === 1 && state.contiguous >= 1) {
      this.epochs.delete(key)
      this.live.set(
        source,
        (this.live.get(source) ?? []).filter((k) => k !== key)
      )
      state = undefined
      arrival = "restarted"
    }
    if (state === undefined) state = this.open(source, key, 0, now, epoch !== undefined)
    if (final === true) state.final = seq
    if (seq > state.contiguous) {
      state.ahead.add(seq)
      while (state.ahead.delete(state.contiguous + 1)) state.contiguous++
      if (state.ahead.size > 0) state.missingSince ??= now
      else if (!state.superseded) state.missingSince = undefined
    }
    if (state.superseded && state.final !== undefined && state.contiguous >= state.final) this.retire(source, key)
    return arrival
  }

  /** Starts tracking an epoch from `contiguous`; a new v2 epoch supersedes the publisher's older ones. */
  private open(source: string, key: string, contiguous: number, now: number, supersedes: boolean): EpochState {
    const state: EpochState = {
      contiguous,
      ahead: new Set(),
      missingSince: undefined,
      final: undefined,
      superseded: false
    }
    const keys = this.live.get(source) ?? []
    if (supersedes) {
      for (const older of keys) {
        const old = this.epochs.get(older)!
        old.superseded = true
        old.missingSince ??= now
        if (old.final !== undefined && old.contiguous >= old.final) this.retire(source, older)
      }
    }
    this.live.set(source, [...(this.live.get(source) ?? []), key])
    this.epochs.set(key, state)
    return state
  }

  /** Stops tracking an epoch that is done (or lost), remembering it so a late duplicate is ignored. */
  private retire(source: string, key: string) {
    this.epochs.delete(key)
    this.live.set(
      source,
      (this.live.get(source) ?? []).filter((k) => k !== key)
    )
    this.done.set(source, [...(this.done.get(source) ?? []), key].slice(-retiredPerSource))
  }

  /** The publishers whose continuity is lost at `now`; their tracking moves past the loss. */
  lost(now: number): ReadonlyArray<Lost> {
    const found: Array<Lost> = []
    for (const [key, state] of this.epochs) {
      if (state.missingSince === undefined) continue
      if (now - state.missingSince < this.gapTimeoutMs && state.ahead.size <= this.maxAhead) continue
      const source = key.slice(0, key.indexOf("\u0000"))
      if (state.superseded) {
        found.push({ source, reason: "publisher-restart" })
        this.retire(source, key)
        continue
      }
      found.push({ source, reason: "seq-gap" })
      state.contiguous = Math.max(state.contiguous, ...state.ahead)
      state.ahead.clear()
      state.missingSince = undefined
    }
    return found
  }

  /** Whether any tracked epoch has a seq missing (or, superseded, has not completed yet). */
  missing(): boolean {
    for (const state of this.epochs.values()) if (state.missingSince !== undefined) return true
    return false
  }

  /** What to keep across a restart: each live epoch's contiguous seq (and announced last seq), oldest first. */
  snapshot(): ReadonlyArray<EpochSnapshot> {
    const out: Array<EpochSnapshot> = []
    for (const keys of this.live.values()) {
      for (const key of keys) {
        const state = this.epochs.get(key)!
        const at = key.indexOf("\u0000")
        out.push({
          source: key.slice(0, at),
          epoch: key.slice(at + 1),
          contiguous: state.contiguous,
          ...(state.final === undefined ? {} : { final: state.final })
        })
      }
    }
    return out
  }

  /**
   * Resumes from a snapshot taken before a restart, at `now`: a publisher's last epoch is tracked on; its older ones
   * (superseded, not yet complete) get the gap timeout from now to complete.
   */
  restore(snapshot: ReadonlyArray<EpochSnapshot>, now: number): void {
    for (const epoch of snapshot) {
      this.open(epoch.source, keyOf(epoch.source, epoch.epoch), epoch.contiguous, now, epoch.epoch !== "")
      if (epoch.final !== undefined) this.epochs.get(keyOf(epoch.source, epoch.epoch))!.final = epoch.final
    }
  }
}
