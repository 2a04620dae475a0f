/**
 * Continuity per publisher: which `seq` numbers arrived, so a missing one can be told from a late one. A seq
 * may arrive out of order (SQS standard queues reorder); one still missing after `gapTimeoutMs`, or with more
 * than `maxAhead` later events already here, is a gap: an invalidation this instance will never see. A
 * publisher first heard from past its seq 1 has its earlier seqs counted as missing too: if they were sent
 * before this instance subscribed they never come, and nothing tells that apart from a loss.
 */

interface Source {
  /** Every seq up to this one has arrived (0: not even the first). */
  contiguous: number
  /** Seqs above `contiguous` that arrived. */
  readonly ahead: Set<number>
  /** When the oldest missing seq was first noticed missing. */
  missingSince: number | undefined
}

/** What an arrival means for continuity: a seq 1 after seq 1 was already accounted for is a restart. */
export type Arrival = "tracked" | "restarted"

/** Tracks the seq of every publisher this instance hears from. */
export class SeqTracker {
  private readonly sources = new Map<string, Source>()
  private readonly gapTimeoutMs: number
  private readonly maxAhead: number

  constructor(options: { readonly gapTimeoutMs: number; readonly maxAhead: number }) {
    this.gapTimeoutMs = options.gapTimeoutMs
    this.maxAhead = options.maxAhead
  }

  /** Records `seq` from `source` at `now`. */
  arrived(source: string, seq: number, now: number): Arrival {
    let state = this.sources.get(source)
    let arrival: Arrival = "tracked"
    if (state !== undefined && seq === 1 && state.contiguous >= 1) {
      this.sources.delete(source)
      state = undefined
      arrival = "restarted"
    }
    if (state === undefined) {
      state = { contiguous: 0, ahead: new Set(), missingSince: undefined }
      this.sources.set(source, state)
    }
    if (seq <= state.contiguous) return arrival
    state.ahead.add(seq)
    while (state.ahead.delete(state.contiguous + 1)) state.contiguous++
    if (state.ahead.size === 0) state.missingSince = undefined
    else state.missingSince ??= now
    return arrival
  }

  /** The publishers with a gap at `now`; their tracking skips past it (after a flush nothing older matters). */
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
