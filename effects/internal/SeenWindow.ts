/**
 * A bounded memory of event ids: remembers the last `capacity` ids in arrival order and forgets the oldest
 * first, so duplicate detection costs O(1) per event and bounded memory. Size it from the redelivery window
 * (SQS visibility timeout × max receives × event rate).
 */
export class SeenWindow {
  private readonly ids = new Set<string>()
  private readonly capacity: number

  constructor(capacity: number) {
    this.capacity = capacity
  }

  /** Whether `id` was seen within the window. */
  has(id: string): boolean {
    return this.ids.has(id)
  }

  /** Remembers `id`, forgetting the oldest id when full. */
  add(id: string): void {
    this.ids.add(id)
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value!)
  }

  get size(): number {
    return this.ids.size
  }
}
