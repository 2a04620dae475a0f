import { assert, describe, it } from "@effect/vitest"
import { SeenWindow } from "../../../effects/internal/SeenWindow.ts"

describe("SeenWindow", () => {
  it("remembers the last `capacity` ids", () => {
    const seen = new SeenWindow(3)
    for (const id of ["a", "b", "c"]) seen.add(id)
    assert.isTrue(seen.has("a") && seen.has("b") && seen.has("c"))
    assert.isFalse(seen.has("d"))
    assert.strictEqual(seen.size, 3)
  })

  it("forgets the oldest id first when full, and never holds more than `capacity`", () => {
    const seen = new SeenWindow(3)
    for (const id of ["a", "b", "c", "d"]) seen.add(id)
    assert.isFalse(seen.has("a"))
    assert.isTrue(seen.has("b") && seen.has("c") && seen.has("d"))
    seen.add("e")
    assert.isFalse(seen.has("b"))
    assert.isTrue(seen.has("c") && seen.has("d") && seen.has("e"))
    assert.strictEqual(seen.size, 3)
  })

  it("adding an id it already holds does not evict anything", () => {
    const seen = new SeenWindow(2)
    seen.add("a")
    seen.add("b")
    seen.add("b")
    assert.isTrue(seen.has("a") && seen.has("b"))
    assert.strictEqual(seen.size, 2)
  })
})
