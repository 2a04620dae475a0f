/**
 * Continuity per publisher: which `seq` numbers arrived, so a missing one can be told from a late one. A seq
 * may arrive out of order (SQS standard queues reorder); one still missing after `gapTimeoutMs`, or with more
 * than `maxAhead` later events already here, is a gap: an invalidation this instance will never see.
 */

interface Source {
  /** Every seq up to this one has arrived. */
  contiguous: number
  /** Seqs above `contiguous` that arrived. */
  readonly ahead: Set<number>
  /** When the oldest missing seq was first noticed missing. */
  missingSince: number | undefined
}

/** What an arrival means for continuity. */
export type Arrival = "in-order" | "restarted"

/** Tracks the seq of every publisher this instance hears from. */
export class SeqTracker {
  private readonly sources = new Map<string, Source>()
  private readonly gapTimeoutMs: number
  private readonly maxAhead: number

  constructor(options: { readonly gapTimeoutMs: number; readonly maxAhead: number }) {
    this.gapTimeoutMs = options.gapTimeoutMs
    this.maxAhead = options.maxAhead
  }

  /**
   * Records `seq` from `source` at `now`. The first event of a publisher starts its tracking (what it sent
   * before this instance subscribed never reached this queue); a publisher that starts over at 1 restarted.
   */
  arrived(source: string, seq: number, now: number): Arrival {
    const state = this.sources.get(source)
    if (state === undefined || (seq === 1 && state.contiguous > 1)) {
      this.sources.set(source, { contiguous: seq, ahead: new Set(), missingSince: undefined })
      return state === undefined ? "in-order" : "restarted"
    }
    if (seq <= state.contiguous) return "in-order"
    state.ahead.add(seq)
    while (state.ahead.delete(state.contiguous + 1)) state.contiguous++
    if (state.ahead.size === 0) state.missingSince = undefined
    else state.missingSince ??= now
    return "in-order"
  }

  /**
   * The publishers with a gap at `now`; their tracking skips past it (after a flush nothing older matters).
   */
  gaps(now: number): ReadonlyArray<string> {
    const found: Array<string> = []
    for (const [source, state] of this.sources) {
      if (state.missingSince === undefined) continue
      if (now - state.missingSince < this.gapTimeoutMs && state.ahead.size <= this.maxAhead) continue
      found.push(source)
      state.contiguous = Math.max(...state.ahead)
      state.ahead.clear()
      state.missingSince = undefined
    }
    return found
  }
}
