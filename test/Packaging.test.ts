/**
 * What ships works for a consumer: the packed tarball (built by `npm test` before this runs) is installed into a
 * fresh project with its own `effect`, and there every public entry point loads from plain Node ESM, the Promise
 * facade and an Effect program run on the memory layer, a consumer file type-checks under a default strict
 * `module: nodenext` tsconfig, the README's unit-test example passes under the consumer's own vitest with one copy
 * of `effect`, and the `embedded-cache` bin answers `--help`.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"

const root = path.resolve(import.meta.dirname, "..")
const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
  readonly devDependencies: Readonly<Record<string, string>>
}
const run = promisify(execFile)

// The nested npm must not inherit the outer `npm test`'s lifecycle settings (its prefix, its script context).
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("npm_")))

/** Runs `command` in `cwd`, failing with its output when it exits non-zero. */
const sh = async (cwd: string, command: string, args: ReadonlyArray<string>) => {
  try {
    return await run(command, args, { cwd, env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 })
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(" ")} failed in ${cwd}:\n${stdout ?? ""}\n${stderr ?? ""}`, {
      cause: error
    })
  }
}

let dir = ""
let consumer = ""
let installed = ""

/** The public subpaths a consumer can import: every module the exports patterns expose, but the CLI entry. */
const entryPoints = (): Array<string> => {
  const dist = path.join(installed, "dist")
  const modules = (sub: string) =>
    fs
      .readdirSync(path.join(dist, sub), { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".js") && !file.split(path.sep).includes("internal"))
      .map((file) => `embedded-cache/${sub}/${file.slice(0, -3).split(path.sep).join("/")}`)
  return [
    "embedded-cache",
    "embedded-cache/effects",
    ...modules("effects").filter((name) => name !== "embedded-cache/effects/index"),
    // main.js runs the command line when loaded; the bin test covers it.
    ...modules("layers").filter((name) => name !== "embedded-cache/layers/sidecar/main"),
    ...modules("test/suites")
  ]
}

beforeAll(async () => {
  expect(fs.existsSync(path.join(root, "dist", "src", "index.js")), "run `npm run build` first").toBe(true)
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "ec-pack-"))
  // dist/ is already built by `npm test`; rebuilding here would race the other test files reading it.
  const { stdout } = await sh(root, "npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir])
  const tarball = path.join(dir, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename)
  consumer = path.join(dir, "consumer")
  fs.mkdirSync(consumer)
  const dev = manifest.devDependencies
  fs.writeFileSync(
    path.join(consumer, "package.json"),
    JSON.stringify({
      name: "consumer",
      private: true,
      type: "module",
      dependencies: {
        "embedded-cache": `file:${tarball}`,
        effect: dev["effect"],
        "@effect/vitest": dev["@effect/vitest"],
        vitest: dev["vitest"],
        typescript: dev["typescript"],
        "@types/node": dev["@types/node"]
      }
    })
  )
  await sh(consumer, "npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"])
  installed = path.join(consumer, "node_modules", "embedded-cache")
  for (const file of ["UserService.ts", "UserService.test.ts", "PromiseCache.ts", "ScheduledWarm.ts"]) {
    fs.copyFileSync(path.join(root, "examples", file), path.join(consumer, file))
  }
  fs.mkdirSync(path.join(consumer, "data"))
  fs.copyFileSync(path.join(root, "examples", "data", "users.json"), path.join(consumer, "data", "users.json"))
}, 180_000)

afterAll(() => {
  if (dir !== "") fs.rmSync(dir, { recursive: true, force: true })
})

describe("the packed package, installed in a fresh consumer", () => {
  it("ships built JavaScript, declarations and the executable bin, not the repo's tests or tooling", () => {
    for (const file of ["dist/src/index.js", "dist/src/index.d.ts", "dist/src/index.js.map", "LICENSE", "README.md"]) {
      expect(fs.existsSync(path.join(installed, file)), file).toBe(true)
    }
    const bin = path.join(installed, "dist", "layers", "sidecar", "main.js")
    expect(fs.readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true)
    expect(fs.statSync(bin).mode & 0o111).not.toBe(0)
    expect(fs.existsSync(path.join(installed, "test", "ImportRule.test.ts"))).toBe(false)
    expect(fs.existsSync(path.join(installed, "bench"))).toBe(false)
    expect(fs.existsSync(path.join(installed, "infra"))).toBe(false)
  })

  it("shares one copy of effect with the application", async () => {
    const { stdout } = await sh(consumer, "npm", ["ls", "effect", "--all", "--parseable"])
    const copies = stdout.split("\n").filter((line) => line.trim() !== "")
    expect(copies).toEqual([path.join(consumer, "node_modules", "effect")])
  })

  it("loads every public entry point from plain Node ESM and runs the Promise facade and an Effect program", async () => {
    const entries = entryPoints()
    expect(entries).toContain("embedded-cache/layers/CacheLayers")
    expect(entries).toContain("embedded-cache/layers/store/RedisStore")
    expect(entries).toContain("embedded-cache/test/suites/CacheStoreSuite")
    expect(fs.existsSync(path.join(installed, "dist", "effects", "internal", "FencedFill.js"))).toBe(true)
    const script = [
      `const entries = ${JSON.stringify(entries)}`,
      "for (const entry of entries) {",
      "  const module = await import(entry)",
      "  if (Object.keys(module).length === 0) throw new Error(`${entry} exports nothing`)",
      "}",
      'const { createCache } = await import("embedded-cache/layers/PromiseCache")',
      'const cache = await createCache({ store: "memory" })',
      'await cache.set("greeting", { text: "hi" })',
      'const promised = await cache.get("greeting")',
      "await cache.close()",
      'const { Effect, Schema } = await import("effect")',
      'const Cache = await import("embedded-cache/effects/Cache")',
      'const CacheLayers = await import("embedded-cache/layers/CacheLayers")',
      "const effected = await Effect.runPromise(",
      "  Effect.gen(function* () {",
      '    yield* Cache.set("n", 41, { schema: Schema.Number })',
      '    return (yield* Cache.getOrLoad("m", Effect.succeed(1), { schema: Schema.Number })) +',
      '      (yield* Cache.get("n", Schema.Number)).pipe((o) => o._tag === "Some" ? o.value : 0)',
      "  }).pipe(Effect.provide(CacheLayers.layerMemory()))",
      ")",
      // The programs' parts stay private: effects/internal/* is not an entry point.
      'const internal = await import("embedded-cache/effects/internal/FencedFill").then(() => "exported", (e) => e.code)',
      "console.log(JSON.stringify({ loaded: entries.length, promised, effected, internal }))"
    ].join("\n")
    fs.writeFileSync(path.join(consumer, "smoke.mjs"), script)
    const { stdout } = await sh(consumer, process.execPath, ["smoke.mjs"])
    expect(JSON.parse(stdout.trim().split("\n").at(-1)!)).toEqual({
      loaded: entries.length,
      promised: { text: "hi" },
      effected: 42,
      internal: "ERR_PACKAGE_PATH_NOT_EXPORTED"
    })
  })

  it("type-checks a consumer's code under a default strict nodenext tsconfig", async () => {
    fs.writeFileSync(
      path.join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, module: "nodenext", target: "es2022", types: ["node"], noEmit: true },
        files: ["consumer.ts", "UserService.ts", "PromiseCache.ts", "ScheduledWarm.ts"]
      })
    )
    fs.writeFileSync(
      path.join(consumer, "consumer.ts"),
      [
        'import { Effect, Layer, Option, Schema } from "effect"',
        'import { CacheKey, DataSource } from "embedded-cache"',
        'import { Cache, Warm } from "embedded-cache/effects"',
        'import * as CacheLayers from "embedded-cache/layers/CacheLayers"',
        'import * as RedisCache from "embedded-cache/layers/RedisCache"',
        'import * as RedisStore from "embedded-cache/layers/store/RedisStore"',
        'import * as SnsSqsBus from "embedded-cache/layers/bus/SnsSqsBus"',
        'import * as HttpDataSource from "embedded-cache/layers/source/HttpDataSource"',
        'import * as CacheStoreSuite from "embedded-cache/test/suites/CacheStoreSuite"',
        "",
        'const program: Effect.Effect<Option.Option<number>, unknown, Cache.Cache> = Cache.get("k", Schema.Number)',
        "export const memory = program.pipe(Effect.provide(CacheLayers.layerMemory()))",
        'export const external = RedisCache.layerExternal({ store: { connection: "redis://127.0.0.1:6390" } })',
        "export const warm = (keys: ReadonlyArray<string>) => Warm.warm(keys, {})",
        "export const parts = [RedisStore.layer, SnsSqsBus.layer, HttpDataSource.layerConfig, CacheStoreSuite.suite]",
        "export const source: Layer.Layer<DataSource.DataSource> = Layer.succeed(DataSource.DataSource, DataSource.make({",
        "  load: (key) => Effect.succeed(Option.some(key))",
        "}))",
        "export const key = CacheKey",
        "// @ts-expect-error a number is not a cache key",
        "export const wrong: Effect.Effect<unknown, unknown, Cache.Cache> = Cache.get(1, Schema.Number)",
        ""
      ].join("\n")
    )
    await sh(consumer, path.join(consumer, "node_modules", ".bin", "tsc"), ["-p", "."])
  })

  it("runs the README's unit-test example under the consumer's own vitest", async () => {
    const { stdout } = await sh(consumer, process.execPath, [
      path.join(consumer, "node_modules", "vitest", "vitest.mjs"),
      "run",
      "UserService.test.ts"
    ])
    expect(stdout).toMatch(/Tests\s+.*2 passed/)
  })

  it("answers `npx embedded-cache --help` from the consumer", async () => {
    const { stdout } = await sh(consumer, "npx", ["--no-install", "embedded-cache", "--help"])
    expect(stdout).toContain("embedded-cache")
    expect(stdout).toContain("serve")
  })
})
