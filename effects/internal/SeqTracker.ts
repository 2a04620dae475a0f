/**
 * Continuity per publisher: which `seq` numbers arrived, so a missing one can be told from a late one. A seq
 * may arrive out of order (SQS standard queues reorder); one still missing after `gapTimeoutMs`, or with more
 * than `maxAhead` later events already here, is a gap: an invalidation this instance will never see. A
 * publisher first heard from past its seq 1 has its earlier seqs counted as missing too: if they were sent
 * before this instance subscribed they never come, and nothing tells that apart from a loss. A v2 publisher names its
 * boot (`epoch`): a new epoch restarts its tracking; a late event of an epoch it already left is not tracked.
 */

interface Source {
  /** The publisher's boot (v2), or undefined (v1). */
  readonly epoch: string | undefined
  /** Epochs this publisher has left, most recent last (bounded). */
  readonly retired: ReadonlyArray<string>
  /** Every seq up to this one has arrived (0: not even the first). */
  contiguous: number
  /** Seqs above `contiguous` that arrived. */
  readonly ahead: Set<number>
  /** When the oldest missing seq was first noticed missing. */
  missingSince: number | undefined
}

/**
 * What an arrival means for continuity: a new epoch (v2), or a seq 1 after seq 1 was already accounted for (v1), is a
 * restart.
 */
export type Arrival = "tracked" | "restarted"

/** Epochs remembered per publisher, so a late event of an old boot is not taken for another restart. */
const retiredEpochs = 8

/** Tracks the seq of every publisher this instance hears from. */
export class SeqTracker {
  private readonly sources = new Map<string, Source>()
  private readonly gapTimeoutMs: number
  private readonly maxAhead: number

  constructor(options: { readonly gapTimeoutMs: number; readonly maxAhead: number }) {
    this.gapTimeoutMs = options.gapTimeoutMs
    this.maxAhead = options.maxAhead
  }

  /** Records `seq` of `epoch` (undefined for v1) from `source` at `now`. */
  arrived(source: string, seq: number, now: number, epoch?: string): Arrival {
    let state = this.sources.get(source)
    let arrival: Arrival = "tracked"
    let retired: ReadonlyArray<string> = []
    if (state !== undefined && epoch !== undefined && state.retired.includes(epoch)) return arrival
    const restarted =
      epoch !== undefined
        ? state !== undefined && state.epoch !== epoch
        : state !== undefined && seq === 1 && state.contiguous >= 1
    if (restarted) {
      if (state!.epoch !== undefined) retired = [...state!.retired, state!.epoch].slice(-retiredEpochs)
      this.sources.delete(source)
      state = undefined
      arrival = "restarted"
    }
    if (state === undefined) {
      state = { epoch, retired, contiguous: 0, ahead: new Set(), missingSince: undefined }
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
