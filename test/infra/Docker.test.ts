/**
 * Checks infra/docker/Dockerfile without a Docker daemon (none runs here): its stages are Node 24 with Debian's
 * redis-server, its entry command is the package's own bin (whose file is in the packed package), it runs as the
 * non-root user the k8s manifest runs as, its port is the manifest's container port and probe port, its healthcheck
 * asks a route the API serves, what it copies exists and passes .dockerignore, and the image name
 * infra/docker/build.sh builds is the one the manifests and infra/README.md use.
 */
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import path from "node:path"
import { promisify } from "node:util"
import { OpenApi } from "effect/http-api"
import { describe, expect, it } from "vitest"
import { parseAllDocuments } from "yaml"
import { CacheApi } from "../../layers/http/CacheApi.ts"

const root = path.resolve(import.meta.dirname, "../..")
const read = (file: string) => readFileSync(path.join(root, file), "utf8")

interface Instruction {
  readonly keyword: string
  readonly args: string
}
interface Stage {
  readonly from: string
  readonly name: string | undefined
  readonly instructions: Array<Instruction>
}

/** The Dockerfile's stages and their instructions (comments dropped, continuation lines joined). */
const stages = (() => {
  const logical = read("infra/docker/Dockerfile")
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replaceAll(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
  const found: Array<Stage> = []
  for (const line of logical) {
    const [, keyword = "", args = ""] = /^(\S+)\s+(.*)$/.exec(line) ?? []
    if (keyword.toUpperCase() === "FROM") {
      const [from = "", , name] = args.split(/\s+/)
      found.push({ from, name, instructions: [] })
    } else {
      expect(found.length, `${keyword} before FROM`).toBeGreaterThan(0)
      found.at(-1)!.instructions.push({ keyword: keyword.toUpperCase(), args })
    }
  }
  return found
})()
const final = stages.at(-1)!
const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword)
const one = (stage: Stage, keyword: string) => {
  const found = all(stage, keyword)
  expect(found, keyword).toHaveLength(1)
  return found[0]!.args
}
/** The exec (JSON) form of ENTRYPOINT/CMD; the shell form would put `sh -c` between the signal and node. */
const execForm = (args: string) => JSON.parse(args) as Array<string>
/** The final image's environment, from every `ENV a=b c=d` line. */
const imageEnv = new Map(
  all(final, "ENV").flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!] as const))
)

interface Container {
  readonly name: string
  readonly image: string
  readonly command?: ReadonlyArray<string>
  readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort: number }>
  readonly env?: ReadonlyArray<{ readonly name: string; readonly value?: string }>
  readonly livenessProbe?: { readonly httpGet?: { readonly path: string; readonly port: number | string } }
  readonly readinessProbe?: { readonly httpGet?: { readonly path: string; readonly port: number | string } }
  readonly startupProbe?: { readonly httpGet?: { readonly path: string; readonly port: number | string } }
}
const manifests = parseAllDocuments(read("infra/k8s/deployment.yaml")).map((doc) => doc.toJS())
const images: Array<string> = []
JSON.stringify(manifests, (key, value: unknown) => {
  if (key === "image" && typeof value === "string") images.push(value)
  return value
})
const deployment = manifests.find((doc) => doc.kind === "Deployment")
const podSpec = deployment.spec.template.spec as {
  readonly securityContext?: { readonly runAsUser?: number }
  readonly initContainers?: ReadonlyArray<Container>
  readonly containers: ReadonlyArray<Container>
}
const sidecar = [...(podSpec.initContainers ?? []), ...podSpec.containers].find(
  (c) => c.name === "embedded-cache"
) as Container

const manifest = JSON.parse(read("package.json")) as {
  readonly version: string
  readonly bin: Readonly<Record<string, string>>
}

/** Whether a .dockerignore pattern (a path, or `*` for every top-level entry) matches `file`. */
const ignoreMatches = (pattern: string, file: string) =>
  pattern === "*" ? !file.includes("/") : file === pattern || file.startsWith(`${pattern}/`)

describe("the sidecar image (infra/docker/Dockerfile)", () => {
  it("builds and runs on the official Node 24 image, with Debian's redis-server in the runtime stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2)
    for (const stage of stages) expect(stage.from).toBe("node:24-bookworm-slim")
    expect(all(final, "RUN").some((i) => /apt-get install\b.*\bredis-server\b/.test(i.args))).toBe(true)
  })

  it("packs the package in a build stage and installs that tarball where PATH finds its bin", () => {
    const pack = stages.find((s) => all(s, "RUN").some((i) => /\bnpm pack\b/.test(i.args)))
    expect(pack, "a stage runs npm pack").toBeDefined()
    const install = stages.find((s) => all(s, "RUN").some((i) => /\bnpm install\b.*embedded-cache\.tgz/.test(i.args)))
    expect(install, "a stage installs the packed tarball").toBeDefined()
    expect(all(install!, "COPY").some((i) => i.args.startsWith(`--from=${pack!.name} `))).toBe(true)
    const prefix = one(install!, "WORKDIR")
    expect(all(final, "COPY").some((i) => i.args === `--from=${install!.name} ${prefix} ${prefix}`)).toBe(true)
    expect(imageEnv.get("PATH")?.split(":")).toContain(`${prefix}/node_modules/.bin`)
  })

  it("runs `embedded-cache serve`: the package's bin, present in the packed package, as k8s runs it", async () => {
    const command = [...execForm(one(final, "ENTRYPOINT")), ...execForm(one(final, "CMD"))]
    expect(command).toEqual(["embedded-cache", "serve"])
    expect(sidecar.command).toEqual(command)
    const target = manifest.bin[command[0]!]
    expect(target, "package.json bin names the command").toBeDefined()
    const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: root
    })
    const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path)
    if (existsSync(path.join(root, "dist"))) expect(files).toContain(path.normalize(target!))
    // Without a build the packed file list has no dist/; the bin's source must then be there to be built.
    else expect(files).toContain(target!.replace(/^dist\//, "").replace(/\.js$/, ".ts"))
    expect(read(target!.replace(/^dist\//, "").replace(/\.js$/, ".ts")).startsWith("#!/usr/bin/env node\n")).toBe(true)
  })

  it("runs as a non-root user, the one the k8s pod runs as", () => {
    const [user = "", group] = one(final, "USER").split(":")
    expect(user).toMatch(/^\d+$/) // numeric, so runAsNonRoot can verify it
    expect(Number(user)).not.toBe(0)
    expect(group === undefined || Number(group) !== 0).toBe(true)
    expect(podSpec.securityContext?.runAsUser).toBe(Number(user))
    expect(all(final, "RUN").some((i) => i.args.includes(`--uid ${user}`))).toBe(true)
  })

  it("keeps the data dir on a volume and listens on all interfaces", () => {
    const dataDir = imageEnv.get("CACHE_DATA_DIR")
    expect(dataDir).toBe("/var/lib/embedded-cache")
    expect(execForm(one(final, "VOLUME"))).toContain(dataDir)
    expect(sidecar.env?.find((e) => e.name === "CACHE_DATA_DIR")?.value).toBe(dataDir)
    expect(imageEnv.get("CACHE_HTTP_HOST")).toBe("0.0.0.0")
    for (const name of imageEnv.keys()) {
      if (name.startsWith("CACHE_")) expect(read("src/CacheConfig.ts"), name).toContain(`"${name}"`)
    }
  })

  it("exposes the API port, which is the k8s container port and the probes' port", () => {
    const exposed = Number(one(final, "EXPOSE"))
    expect(Number(imageEnv.get("CACHE_HTTP_PORT"))).toBe(exposed)
    const named = new Map((sidecar.ports ?? []).map((p) => [p.name, p.containerPort]))
    expect([...named.values()]).toEqual([exposed])
    for (const probe of [sidecar.livenessProbe, sidecar.readinessProbe, sidecar.startupProbe]) {
      const port = probe?.httpGet?.port
      if (port !== undefined) expect(typeof port === "number" ? port : named.get(port)).toBe(exposed)
    }
  })

  it("health-checks a route the API serves, the k8s liveness path", () => {
    const check = one(final, "HEALTHCHECK")
    const healthPath = /127\.0\.0\.1:\$\{process\.env\.CACHE_HTTP_PORT\}(\/[\w/]+)/.exec(check)?.[1]
    expect(healthPath).toBe("/healthz")
    expect(check).toMatch(/CMD \["node", "-e",/) // Node's fetch: the slim image has no curl
    const spec = OpenApi.fromApi(CacheApi)
    expect(spec.paths[healthPath!]?.get).toBeDefined()
    expect(sidecar.livenessProbe?.httpGet?.path).toBe(healthPath)
  })

  it("copies only paths that exist and that .dockerignore lets into the build context", () => {
    const rules = read(".dockerignore")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => ({ negated: line.startsWith("!"), pattern: line.replace(/^!/, "") }))
    /** Docker's rule: the last pattern matching the path or one of its parents decides. */
    const included = (file: string) => {
      const parts = file.split("/")
      const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"))
      let inside = true
      for (const rule of rules) if (prefixes.some((p) => ignoreMatches(rule.pattern, p))) inside = rule.negated
      return inside
    }
    const sources = stages.flatMap((stage) =>
      all(stage, "COPY")
        .filter((i) => !i.args.startsWith("--from="))
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    )
    expect(sources).toContain("package-lock.json")
    for (const source of sources) {
      expect(existsSync(path.join(root, source)), source).toBe(true)
      expect(included(source), `${source} passes .dockerignore`).toBe(true)
    }
    expect(included("node_modules")).toBe(false)
    expect(included("test/layers")).toBe(false)
  })

  it("is built under the image name the k8s manifests and infra/README.md use", () => {
    const script = read("infra/docker/build.sh")
    expect(script).toContain("-f infra/docker/Dockerfile")
    const template = /image="\$\{IMAGE:-([^}]+\$\{version\})\}"/.exec(script)?.[1]
    expect(template).toBeDefined()
    const image = template!.replace("${version}", manifest.version)
    expect(image).toBe(`registry.example.com/embedded-cache:${manifest.version}`)
    const ours = images.filter((name) => name.includes("/embedded-cache:"))
    expect(ours.length).toBeGreaterThanOrEqual(2) // the sidecar and the warm-up CronJob
    for (const name of ours) expect(name).toBe(image)
    expect(read("infra/README.md")).toContain(image)
  })
})
