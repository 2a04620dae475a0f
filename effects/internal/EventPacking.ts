/**
 * Splitting coalesced targets into v2 events that stay within a message budget: at most `maxTargets` targets and
 * about `maxBytes` of JSON per event, in the order the targets were issued. A single target larger than the budget
 * still travels alone (the schema bounds a target far below SNS's 256 KiB).
 */
import type { Target } from "../../src/InvalidationEvent.ts"

/** The per-event budget. */
export interface Budget {
  readonly maxTargets: number
  readonly maxBytes: number
}

/** Room left for an event's envelope (ids, epoch, seq, timestamp) around its targets. */
export const envelopeBytes = 512

/** The UTF-8 length of `text` (without Node's Buffer: this module imports only effect). */
const utf8Length = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code < 0xdc00) {
      bytes += 4 // a surrogate pair: one 4-byte character
      i++
    } else bytes += 3
  }
  return bytes
}

/** The JSON size of `target` inside an event's `targets` list, its separator included. */
export const sizeOf = (target: Target): number => utf8Length(JSON.stringify(target)) + 1

/** Groups `items` (each with its target's size) into consecutive runs that fit the budget. */
export const pack = <A extends { readonly size: number }>(items: ReadonlyArray<A>, budget: Budget): Array<Array<A>> => {
  const groups: Array<Array<A>> = []
  let current: Array<A> = []
  let bytes = envelopeBytes
  for (const item of items) {
    if (current.length > 0 && (current.length >= budget.maxTargets || bytes + item.size > budget.maxBytes)) {
      groups.push(current)
      current = []
      bytes = envelopeBytes
    }
    current.push(item)
    bytes += item.size
  }
  if (current.length > 0) groups.push(current)
  return groups
}
