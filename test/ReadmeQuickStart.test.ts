/**
 * The README's quick start, run as written: the sidecar starts with the environment of the README's start line (on a
 * free port and in a temp data dir, so the test collides with nothing), then every `curl` line of the quick-start
 * block runs in bash against it, and each answer must hold what the `# →` line under it shows.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ServeProcess from "./utils/ServeProcess.ts"
import * as TempDir from "./utils/TempDir.ts"

const root = path.resolve(import.meta.dirname, "..")
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")

/** The shell blocks of the README's "Quick start" section, in order. */
const quickStartBlocks = (): ReadonlyArray<ReadonlyArray<string>> => {
  const section = readme.slice(
    readme.indexOf("## Quick start"),
    readme.indexOf("\n## ", readme.indexOf("## Quick start") + 1)
  )
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!.trimEnd().split("\n"))
}

/** The environment the README's start line sets before `npm start`. */
const startEnvironment = (lines: ReadonlyArray<string>): Record<string, string> => {
  const start = lines.find((line) => line.endsWith("npm start"))
  assert.isDefined(start, "the quick start starts the sidecar with npm start")
  return Object.fromEntries(
    [...start!.replace(/npm start$/, "").matchAll(/(\w+)=(\S+)/g)].map((match) => [match[1]!, match[2]!])
  )
}

/** Each command line with the answer shown under it. */
const steps = (lines: ReadonlyArray<string>) =>
  lines.flatMap((line, i) => {
    const next = lines[i + 1]
    return line.startsWith("curl ") && next?.startsWith("# → ") === true
      ? [{ command: line, expected: JSON.parse(next.slice(4)) as Record<string, unknown> }]
      : []
  })

const bash = (command: string) =>
  Effect.callback<string>((resume) => {
    execFile("bash", ["-c", command], { cwd: root }, (error, stdout) =>
      resume(error === null ? Effect.succeed(stdout) : Effect.die(new Error(`${command} failed: ${error.message}`)))
    )
  })

describe("the README's quick start", () => {
  it.live("runs as written: every curl line answers what the README shows", () =>
    Effect.gen(function* () {
      const [startBlock, curlBlock] = quickStartBlocks()
      assert.isDefined(curlBlock)
      const env = startEnvironment(startBlock!)
      assert.deepStrictEqual(env, { CACHE_SOURCE: "file", CACHE_SOURCE_FILE: "examples/data/users.json" })
      const shown = steps(curlBlock!)
      assert.isAtLeast(shown.length, 8, "the quick start shows its answers")
      const dir = yield* TempDir.make
      const serve = yield* ServeProcess.start({ ...env, CACHE_DATA_DIR: path.join(dir, "data") }, { cwd: root })
      const address = serve.url.replace("http://", "")
      for (const { command, expected } of shown) {
        const answer = JSON.parse(yield* bash(command.replaceAll("localhost:8080", address))) as Record<string, unknown>
        for (const [field, value] of Object.entries(expected)) {
          assert.deepStrictEqual(answer[field], value, `${command}: ${field} in ${JSON.stringify(answer)}`)
        }
      }
    }).pipe(Effect.scoped)
  )
})
