/**
 * Parses infra/k8s/deployment.yaml and checks its wiring: the sidecar runs `embedded-cache serve` with probes on
 * its API port, its data dir on a mounted emptyDir, only CACHE_* variables the configuration contract knows (read
 * from src/CacheConfig.ts and the README's configuration table, not copied here), a memory limit with headroom over
 * CACHE_MAXMEMORY, and a CronJob that runs `embedded-cache warm --url`.
 */
import { readFileSync } from "node:fs"
import path from "node:path"
import { describe, expect, it } from "vitest"
import { parseAllDocuments } from "yaml"
import { parseBytes } from "../../src/EmbeddedRedis.ts"

const root = path.resolve(import.meta.dirname, "../..")
const read = (file: string) => readFileSync(path.join(root, file), "utf8")

interface EnvVar {
  readonly name: string
  readonly value?: string
  readonly valueFrom?: { readonly fieldRef?: { readonly fieldPath: string } }
}
interface Probe {
  readonly httpGet?: { readonly path: string; readonly port: number | string }
}
interface Container {
  readonly name: string
  readonly image: string
  readonly command?: ReadonlyArray<string>
  readonly args?: ReadonlyArray<string>
  readonly restartPolicy?: string
  readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort: number }>
  readonly env?: ReadonlyArray<EnvVar>
  readonly volumeMounts?: ReadonlyArray<{ readonly name: string; readonly mountPath: string }>
  readonly resources?: { readonly limits?: { readonly memory?: string } }
  readonly readinessProbe?: Probe
  readonly livenessProbe?: Probe
  readonly startupProbe?: Probe
}
interface PodSpec {
  readonly initContainers?: ReadonlyArray<Container>
  readonly containers: ReadonlyArray<Container>
  readonly volumes?: ReadonlyArray<{ readonly name: string; readonly emptyDir?: object; readonly configMap?: object }>
}
interface Doc {
  readonly kind: string
  readonly metadata: { readonly name: string }
  readonly spec: Record<string, unknown>
}

const docs = parseAllDocuments(read("infra/k8s/deployment.yaml")).map((doc) => {
  expect(doc.errors).toEqual([])
  return doc.toJS() as Doc
})
const ofKind = (kind: string) => {
  const found = docs.filter((d) => d.kind === kind)
  expect(found, kind).toHaveLength(1)
  return found[0] as Doc
}

/** Every CACHE_* name of the contract: the Config reads in src/CacheConfig.ts and the README's configuration table. */
const contract = (() => {
  const names = new Set<string>()
  for (const match of read("src/CacheConfig.ts").matchAll(/"(CACHE_[A-Z0-9_]+)"/g)) names.add(match[1] as string)
  const readme = read("README.md")
  const table = readme.slice(readme.indexOf("## Configuration of `serve`"))
  const section = table.slice(0, table.indexOf("\n## ", 5))
  for (const line of section.split("\n").filter((l) => l.startsWith("|"))) {
    for (const match of line.matchAll(/`(CACHE_[A-Z0-9_]+)`/g)) names.add(match[1] as string)
  }
  return names
})()

/** Kubernetes quantities (`768Mi`, `1G`, plain bytes) in bytes. */
const quantity = (text: string): number => {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(text)
  if (match === null) throw new Error(`not a quantity: ${text}`)
  const units: Record<string, number> = {
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12
  }
  return Number(match[1]) * (match[2] === undefined ? 1 : (units[match[2]] as number))
}

const pod = (ofKind("Deployment").spec["template"] as { spec: PodSpec }).spec
const all = [...(pod.initContainers ?? []), ...pod.containers]
const sidecar = all.find((c) => c.command?.join(" ") === "embedded-cache serve") as Container
const env = (container: Container, name: string) => container.env?.find((e) => e.name === name)

describe("k8s Deployment", () => {
  it("reads the contract from the sources", () => {
    // a sanity floor, so an empty regex result cannot make the contract check vacuous
    expect(contract.size).toBeGreaterThan(20)
    expect(contract).toContain("CACHE_MAXMEMORY")
  })

  it("runs the embedded-cache serve sidecar next to the app, as a native sidecar", () => {
    expect(sidecar).toBeDefined()
    expect(pod.initContainers).toContain(sidecar)
    expect(sidecar.restartPolicy).toBe("Always")
    expect(pod.containers.length).toBeGreaterThanOrEqual(1)
  })

  it("configures the embedded store, the SNS/SQS bus and the instance id from the pod name", () => {
    expect(env(sidecar, "CACHE_STORE")?.value).toBe("embedded")
    expect(env(sidecar, "CACHE_BUS")?.value).toBe("sns-sqs")
    expect(env(sidecar, "CACHE_SNS_TOPIC_ARN")?.value).toMatch(/^arn:aws:sns:[a-z0-9-]+:\d{12}:[\w-]+$/)
    expect(env(sidecar, "CACHE_INSTANCE_ID")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name")
  })

  it("uses only CACHE_* variables of the configuration contract (sidecar and warm job)", () => {
    // the app container's own settings (its CACHE_URL) are not the sidecar's
    for (const container of [sidecar, ...cronContainers()]) {
      const names = (container.env ?? []).map((e) => e.name).filter((name) => name.startsWith("CACHE_"))
      expect(names.length).toBeGreaterThan(0)
      for (const name of names) expect(contract, `${container.name}: ${name}`).toContain(name)
    }
  })

  it("probes /readyz and /healthz on the port the API listens on", () => {
    const apiPort = Number(env(sidecar, "CACHE_HTTP_PORT")?.value ?? "8080")
    expect(apiPort).toBe(8080)
    expect(env(sidecar, "CACHE_HTTP_HOST")?.value).toBe("0.0.0.0") // kubelet probes the pod IP
    const portOf = (port: number | string) =>
      typeof port === "number" ? port : sidecar.ports?.find((p) => p.name === port)?.containerPort
    expect(sidecar.readinessProbe?.httpGet?.path).toBe("/readyz")
    expect(sidecar.livenessProbe?.httpGet?.path).toBe("/healthz")
    for (const probe of [sidecar.readinessProbe, sidecar.livenessProbe, sidecar.startupProbe]) {
      if (probe?.httpGet !== undefined) expect(portOf(probe.httpGet.port)).toBe(apiPort)
    }
  })

  it("mounts every volume it uses, with the data dir on an emptyDir", () => {
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]))
    for (const container of all) {
      for (const mount of container.volumeMounts ?? []) expect(volumes.has(mount.name), mount.name).toBe(true)
    }
    const dataDir = env(sidecar, "CACHE_DATA_DIR")?.value
    const dataMount = sidecar.volumeMounts?.find((m) => m.mountPath === dataDir)
    expect(dataMount, "CACHE_DATA_DIR is a mount").toBeDefined()
    expect(volumes.get(dataMount?.name ?? "")?.emptyDir).toBeDefined()
    const warmFile = env(sidecar, "CACHE_WARM_KEYS_FILE")?.value
    if (warmFile !== undefined) {
      expect(sidecar.volumeMounts?.some((m) => warmFile.startsWith(`${m.mountPath}/`))).toBe(true)
    }
  })

  it("limits memory above CACHE_MAXMEMORY, with headroom for redis-server's overhead and Node", () => {
    const maxmemory = parseBytes(env(sidecar, "CACHE_MAXMEMORY")?.value ?? "")
    expect(maxmemory).toBeDefined()
    const limit = quantity(sidecar.resources?.limits?.memory ?? "0")
    expect(limit).toBeGreaterThan(maxmemory as number)
    expect(limit - (maxmemory as number)).toBeGreaterThanOrEqual(128 * 2 ** 20)
    for (const container of all) expect(container.resources?.limits?.memory, container.name).toBeDefined()
  })
})

function cronContainers(): ReadonlyArray<Container> {
  const job = ofKind("CronJob").spec["jobTemplate"] as { spec: { template: { spec: PodSpec } } }
  return job.spec.template.spec.containers
}

describe("k8s warm-up CronJob", () => {
  it("runs `embedded-cache warm --url` against each pod through the headless service", () => {
    const cron = ofKind("CronJob")
    expect(cron.spec["schedule"]).toMatch(/^\S+ \S+ \S+ \S+ \S+$/)
    const script = cronContainers()
      .flatMap((c) => [...(c.command ?? []), ...(c.args ?? [])])
      .join(" ")
    expect(script).toMatch(/embedded-cache warm --url "?http:\/\/\$ip:8080/)
    const service = ofKind("Service")
    expect(service.spec["clusterIP"]).toBe("None")
    expect(script).toContain(service.metadata.name)
  })
})
