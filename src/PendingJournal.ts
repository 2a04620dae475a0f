/**
 * Where the cache records the invalidations its store could not apply yet, so they outlive the process: a restart whose
 * store kept its data (persistence) applies them before serving that data. The default records nothing — right for a
 * store that loses its data with the process (memory, no persistence).
 */
import { Context, Effect } from "effect"

/** What is pending: keys, or everything (a pattern or tag invalidation failed, or too many keys piled up). */
export interface PendingRecord {
  readonly keys: ReadonlyArray<string>
  readonly everything: boolean
}

/** The journal of pending invalidations. */
export interface PendingJournalShape {
  /** Records what is pending now; `undefined` when nothing is. */
  readonly save: (pending: PendingRecord | undefined) => Effect.Effect<void>
  /** What was pending when the journal was last saved (by this process or a previous one). */
  readonly load: Effect.Effect<PendingRecord | undefined>
}

/** The journal a cache records into; by default none (nothing survives the process, nothing needs to). */
export const PendingJournal = Context.Reference<PendingJournalShape>("embedded-cache/PendingJournal", {
  defaultValue: () => ({ save: () => Effect.void, load: Effect.succeed(undefined) })
})
