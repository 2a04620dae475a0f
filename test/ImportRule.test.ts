/**
 * The one-way rule: `src/` imports only `effect` and itself; `effects/` imports only `effect`, `src/` and itself.
 * So a user of the ports and programs never loads ioredis, the AWS SDK or a Node builtin through them. And the
 * memory preset (`layers/CacheLayers.ts`, the unit-test entry point) loads nothing of Redis, AWS or child processes,
 * however deep the import.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")

const sources = (dir: string): Array<string> =>
  fs
    .readdirSync(path.join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => path.join(dir, file))

/** Every module specifier a file imports or re-exports, statically or dynamically. */
const specifiers = (file: string): Array<string> => {
  const text = fs.readFileSync(path.join(root, file), "utf8")
  const found: Array<string> = []
  for (const match of text.matchAll(
    /(?:import|export)\s[^"'`;]*?from\s*["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)|import\s+["']([^"']+)["']/g
  )) {
    found.push(match[1] ?? match[2] ?? match[3]!)
  }
  return found
}

const allowed = (file: string, specifier: string, dirs: ReadonlyArray<string>): boolean => {
  if (specifier === "effect" || specifier.startsWith("effect/")) return true
  if (!specifier.startsWith(".")) return false
  const target = path.relative(root, path.resolve(root, path.dirname(file), specifier))
  return dirs.some((dir) => target.startsWith(`${dir}${path.sep}`))
}

/** What the memory preset must never load. */
const forbidden = (s: string) =>
  s === "ioredis" || s.startsWith("@aws-sdk/") || s === "node:child_process" || s === "child_process"

describe("the one-way import rule", () => {
  for (const [dir, dirs] of [
    ["src", ["src"]],
    ["effects", ["src", "effects"]]
  ] as const) {
    it(`${dir}/ imports only effect and ${dirs.join(", ")}`, () => {
      const files = sources(dir)
      expect(files.length).toBeGreaterThan(0)
      const violations = files.flatMap((file) =>
        specifiers(file)
          .filter((s) => !allowed(file, s, dirs))
          .map((s) => `${file} imports ${s}`)
      )
      expect(violations).toEqual([])
    })
  }

  it("the memory preset loads no ioredis, AWS SDK or child_process, directly or through what it imports", () => {
    const seen = new Set<string>()
    const loaded: Array<string> = []
    const walk = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      for (const specifier of specifiers(file)) {
        if (specifier.startsWith(".")) walk(path.relative(root, path.resolve(root, path.dirname(file), specifier)))
        else if (forbidden(specifier)) loaded.push(`${file} imports ${specifier}`)
      }
    }
    walk(path.join("layers", "CacheLayers.ts"))
    expect(seen.size).toBeGreaterThan(5)
    expect(loaded).toEqual([])
    // and the check would see a Redis import if one crept in
    seen.clear()
    walk(path.join("layers", "RedisCache.ts"))
    expect(loaded).toContain(`${path.join("layers", "store", "RedisStore.ts")} imports ioredis`)
  })

  it("sees through every import form, so the rule cannot pass by missing one", () => {
    const probe = path.join("test", "fixtures", "imports.ts.txt")
    const found = specifiers(probe)
    expect(found).toEqual(["ioredis", "node:fs", "@aws-sdk/client-sqs", "./x.ts", "node:net", "fs"])
    expect(found.filter((s) => !allowed("src/probe.ts", s, ["src"]))).toEqual([
      "ioredis",
      "node:fs",
      "@aws-sdk/client-sqs",
      "node:net",
      "fs"
    ])
  })
})
