/**
 * The README's TypeScript examples are the files in `examples/`, character for character: every block whose first
 * line names an example file (`// examples/X.ts — …`) is that file, and every example file is quoted. The examples
 * are type-checked by `tsc -p .`, the unit-test example runs in vitest, and here each runnable program runs with
 * Node against the built package (`dist/`, which `npm test` builds first) and exits 0 — so docs and tested code
 * cannot drift.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import * as Fauxqs from "./utils/Fauxqs.ts"

const root = path.resolve(import.meta.dirname, "..")
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")

/** The README's ```ts blocks that quote an example file, by the file they name. */
const quoted = new Map(
  [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].flatMap((match) => {
    const body = match[1]!
    const named = /^\/\/ (examples\/[\w./-]+\.ts)\b/.exec(body)
    return named === null ? [] : [[named[1]!, body] as const]
  })
)

const exampleFiles = fs
  .readdirSync(path.join(root, "examples"))
  .filter((file) => file.endsWith(".ts"))
  .map((file) => `examples/${file}`)

/** The examples that are programs (not tests), each with a line its output must contain. */
const programs = [
  ["examples/PromiseCache.ts", "{ removed: 2, pending: false }"],
  ["examples/ScheduledWarm.ts", "runs: 3"],
  ["examples/UserService.ts", "renamed: { _tag: 'Deleted', removed: 1 }"],
  ["examples/SyncedCache.ts", "app-2 after app-1's delete: { _id: 'Option', _tag: 'None' }"]
] as const

/** An SNS/SQS endpoint for the examples that need one: the fauxqs emulator, in this process, on 127.0.0.1. */
let bus: Fauxqs.Fauxqs | undefined
let closeBus: (() => Promise<void>) | undefined
beforeAll(async () => {
  const scope = Effect.runSync(Scope.make())
  bus = await Effect.runPromise(Fauxqs.make().pipe(Scope.provide(scope)))
  closeBus = () => Effect.runPromise(Scope.close(scope, Exit.void))
})
afterAll(() => closeBus?.())

describe("the README's TypeScript examples", () => {
  it("quote every example file, and only example files that exist", () => {
    expect(new Set(quoted.keys())).toEqual(new Set(exampleFiles))
    expect(exampleFiles.length).toBeGreaterThanOrEqual(4)
  })

  for (const file of exampleFiles) {
    it(`quotes ${file} verbatim`, () => {
      expect(quoted.get(file)).toBe(fs.readFileSync(path.join(root, file), "utf8"))
    })
  }

  it("covers every runnable example with a run below", () => {
    expect(new Set(programs.map(([file]) => file))).toEqual(
      new Set(exampleFiles.filter((file) => !file.endsWith(".test.ts")))
    )
  })

  for (const [file, expected] of programs) {
    it(`${file} runs on the built package and exits 0`, async () => {
      expect(fs.existsSync(path.join(root, "dist", "src", "index.js")), "run `npm run build` first").toBe(true)
      // A scratch working directory: the embedded example puts its data dir under it.
      const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "ec-ex-"))
      try {
        const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, file)], {
          cwd,
          timeout: 30_000,
          env: { ...process.env, ...Fauxqs.awsEnv(bus!) }
        })
        expect(stdout).toContain(expected)
      } finally {
        fs.rmSync(cwd, { recursive: true, force: true })
      }
    })
  }
})
