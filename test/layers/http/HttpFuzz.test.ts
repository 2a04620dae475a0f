/**
 * Fuzzing the REST API with fast-check: over ten thousand malformed or hostile requests — bad JSON, wrong types,
 * schema violations, hostile keys (huge, control characters, broken percent-encoding), oversized bodies, bad tokens,
 * random methods, paths and content types, and raw garbage on the socket — against one real server on 127.0.0.1.
 * Every answer must be a 4xx with a JSON `{error, message}` body (never a 5xx, never a dropped connection), the
 * server must keep serving, and the entries stored before must all still be there afterwards. `FUZZ_RUNS_SCALE`
 * multiplies the run counts.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import { HttpServer } from "effect/http"
import * as fc from "fast-check"
import * as net from "node:net"
import * as CacheLayers from "../../../layers/CacheLayers.ts"
import * as Stats from "../../../effects/Stats.ts"
import * as HttpServerLayer from "../../../layers/http/HttpServer.ts"
import * as Readiness from "../../../layers/http/Readiness.ts"
import * as MemoryDataSource from "../../../layers/source/MemoryDataSource.ts"
import { InstanceSource } from "../../../src/DataSource.ts"

const token = "fuzz-token-7f3a9c"
const maxBodyBytes = 8192
const scale = Number(process.env.FUZZ_RUNS_SCALE ?? "1")
const runs = (n: number) => Math.max(1, Math.round(n * scale))

const server = HttpServerLayer.layer({
  host: "127.0.0.1",
  port: 0,
  instanceId: "fuzz",
  logRequests: false,
  apiToken: Redacted.make(token),
  maxBodyBytes,
  sourceName: "memory"
}).pipe(
  Layer.provide(Layer.succeed(InstanceSource, Option.some(MemoryDataSource.make({ "src:1": 1 }).source))),
  Layer.provide(
    Layer.mergeAll(Stats.layer({ instanceId: "fuzz" }), Readiness.layerAlwaysReady).pipe(
      Layer.provideMerge(CacheLayers.layerMemory())
    )
  )
)

// -----------------------------------------------------------------------------
// Requests and the one property every answer must have
// -----------------------------------------------------------------------------

let sent = 0

interface Answer {
  readonly status: number
  readonly contentType: string
  readonly text: string
}

interface Request {
  readonly method: string
  /** Path and query, sent as they are. */
  readonly path: string
  readonly headers?: Record<string, string>
  readonly body?: string | Uint8Array | undefined
  /** Send the body chunked, without a content-length. */
  readonly chunked?: boolean
}

const auth = { authorization: `Bearer ${token}` }
const jsonType = { "content-type": "application/json" }

const call = async (base: string, request: Request): Promise<Answer> => {
  const init: RequestInit & { duplex?: "half" } = { method: request.method, headers: request.headers ?? {} }
  if (request.body !== undefined) {
    const bytes = typeof request.body === "string" ? new TextEncoder().encode(request.body) : request.body
    if (request.chunked === true) {
      init.body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 4096) controller.enqueue(bytes.subarray(i, i + 4096))
          controller.close()
        }
      })
      init.duplex = "half"
    } else init.body = bytes as BodyInit
  }
  const response = await fetch(base + request.path, init)
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "",
    text: await response.text()
  }
}

/** Throws (failing the property, with the request) unless the answer is a 4xx with a JSON `{error, message}`. */
const expectJsonError = (answer: Answer, request: unknown, statuses?: ReadonlyArray<number>) => {
  const describe = () => `${answer.status} ${answer.text.slice(0, 300)} for ${JSON.stringify(request).slice(0, 500)}`
  if (answer.status < 400 || answer.status >= 500) throw new Error(`not a 4xx: ${describe()}`)
  if (statuses !== undefined && !statuses.includes(answer.status)) throw new Error(`unexpected status: ${describe()}`)
  if (!answer.contentType.includes("application/json")) throw new Error(`not JSON: ${describe()}`)
  const body: unknown = JSON.parse(answer.text)
  if (typeof body !== "object" || body === null) throw new Error(`not an object: ${describe()}`)
  const { error, message } = body as Record<string, unknown>
  if (typeof error !== "string" || typeof message !== "string") throw new Error(`not {error, message}: ${describe()}`)
}

/** Sends one hostile request (counted) and checks its answer. */
const check = async (base: string, request: Request, statuses?: ReadonlyArray<number>) => {
  sent++
  expectJsonError(await call(base, request), request, statuses)
}

// -----------------------------------------------------------------------------
// Generators of bad input
// -----------------------------------------------------------------------------

const isValidJson = (text: string) => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** Text that is not JSON: random strings, and JSON with one thing broken. */
const badJson = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }).filter((s) => !isValidJson(s)),
  fc
    .tuple(fc.json({ maxDepth: 3 }), fc.nat(), fc.constantFrom("", "{", "}", ",", '"', "\\", "\u0000", "NaN", "'"))
    .map(([json, at, cut]) => {
      const i = json.length === 0 ? 0 : at % json.length
      return json.slice(0, i) + cut + json.slice(i + 1)
    })
    .filter((s) => !isValidJson(s)),
  fc.constantFrom(
    '{"value": 1,}',
    "{'value': 1}",
    '{"value": undefined}',
    '{"value": 0x10}',
    '{"value": Infinity}',
    '{"value": "\\x41"}',
    "\uFEFF{",
    '{"value": 1}{"value": 2}'
  )
)

/**
 * Bytes that are not UTF-8, spliced into a JSON body: they start with a byte no UTF-8 text can have there (a lone
 * continuation byte, an overlong lead C0/C1, or F5–FF), followed by anything.
 */
const badUtf8 = fc
  .tuple(
    fc
      .tuple(
        fc.oneof(
          fc.integer({ min: 0x80, max: 0xbf }),
          fc.constantFrom(0xc0, 0xc1),
          fc.integer({ min: 0xf5, max: 0xff })
        ),
        fc.uint8Array({ maxLength: 7 })
      )
      .map(([first, rest]) => Uint8Array.from([first, ...rest].map((b) => (b === 0x22 || b === 0x5c ? 0x80 : b)))),
    fc.constantFrom('{"value":"', '{"ttl":"', '{"value":1,"ttl":-1,"x":"', '{"data_type":"')
  )
  .map(([bytes, prefix]) => {
    const head = new TextEncoder().encode(prefix)
    const tail = new TextEncoder().encode('"}')
    const body = new Uint8Array(head.length + bytes.length + tail.length)
    body.set(head)
    body.set(bytes, head.length)
    body.set(tail, head.length + bytes.length)
    return body
  })

const jsonAnything = fc.jsonValue({ maxDepth: 3 })
const notAPositiveInt = fc.oneof(
  fc.integer({ max: 0 }),
  fc.double({ noNaN: true }).filter((n) => !Number.isInteger(n)),
  fc.integer({ min: 315_360_001 }),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.nat(), { maxLength: 2 })
)
/** A TTL a PUT refuses: not a positive integer, and not -1 either (a PUT's "no expiry"). */
const notAPutTtl = notAPositiveInt.filter((ttl) => ttl !== -1)
const notADataType = fc
  .oneof(fc.string(), fc.constantFrom("STRING", "Hash", "zset", "sortedset", "json", " string"), fc.integer())
  .filter((s) => !["string", "hash", "set", "sorted_set", "list"].includes(s as string))
const notAString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.object({ maxDepth: 1 })
)
/** A value nested `depth` levels deep (arrays or objects). */
const deep = fc
  .tuple(fc.integer({ min: 50, max: 1000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays ? "[".repeat(depth) + "]".repeat(depth) : '{"a":'.repeat(depth) + "1" + "}".repeat(depth)
  )

/** A PUT body that breaks the schema in one specific way. */
const badPutBody: fc.Arbitrary<string> = fc.oneof(
  // no value at all
  fc
    .dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== "value"),
      jsonAnything,
      { maxKeys: 4 }
    )
    .map((o) => JSON.stringify(o)),
  // not an object
  fc
    .oneof(fc.array(jsonAnything, { maxLength: 3 }), fc.string(), fc.integer(), fc.boolean(), fc.constant(null))
    .map((v) => JSON.stringify(v)),
  // a wrong ttl
  fc.tuple(jsonAnything, notAPutTtl).map(([value, ttl]) => JSON.stringify({ value, ttl })),
  // an unknown data type
  fc.tuple(jsonAnything, notADataType).map(([value, data_type]) => JSON.stringify({ value, data_type })),
  // a value of the wrong shape for its data type
  fc
    .oneof(
      fc
        .oneof(
          notAString.filter((v) => typeof v !== "object" || v === null || Array.isArray(v)),
          fc.constant({})
        )
        .map((value) => ({ value, data_type: "hash" })),
      fc
        .dictionary(fc.string({ maxLength: 5 }), notAString, { minKeys: 1, maxKeys: 3 })
        .map((value) => ({ value, data_type: "hash" })),
      fc
        .tuple(
          fc.oneof(fc.string(), fc.integer(), fc.constant([]), fc.array(notAString, { minLength: 1, maxLength: 3 })),
          fc.constantFrom("set", "list")
        )
        .map(([value, data_type]) => ({ value, data_type })),
      fc
        .oneof(
          fc.array(fc.string(), { minLength: 1, maxLength: 3 }),
          fc.array(fc.record({ member: notAString, score: fc.double() }), { minLength: 1, maxLength: 3 }),
          fc.array(fc.record({ member: fc.string(), score: fc.oneof(fc.string(), fc.constant(null), fc.boolean()) }), {
            minLength: 1,
            maxLength: 3
          }),
          fc.constant([])
        )
        .map((value) => ({ value, data_type: "sorted_set" }))
    )
    .map((o) => JSON.stringify(o)),
  // wrong tags
  fc
    .tuple(
      jsonAnything,
      fc.oneof(
        fc.string(),
        fc.array(notAString, { minLength: 1, maxLength: 3 }),
        fc.constant([""]),
        fc.constant(Array.from({ length: 101 }, (_, i) => `t${i}`))
      )
    )
    .map(([value, tags]) => JSON.stringify({ value, tags })),
  // an unknown field next to a valid body
  fc
    .tuple(
      jsonAnything,
      fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !["value", "ttl", "data_type", "tags"].includes(k)),
      jsonAnything
    )
    .map(([value, key, extra]) => JSON.stringify({ value, [key]: extra })),
  // duplicate keys: the last one (which wins) is invalid
  fc
    .tuple(jsonAnything, notAPutTtl)
    .map(([value, ttl]) => `{"value":${JSON.stringify(value)},"ttl":60,"ttl":${JSON.stringify(ttl)}}`),
  // deeply nested, where a flat value is required
  fc
    .tuple(deep, fc.constantFrom("hash", "set", "list", "sorted_set"))
    .map(([nested, type]) => `{"value":${nested},"data_type":"${type}"}`),
  fc.tuple(deep, notAPutTtl).map(([nested, ttl]) => `{"value":${nested},"ttl":${JSON.stringify(ttl)}}`)
)

/** A POST body for /invalidate or /warm that breaks its schema. */
const badPostBody: fc.Arbitrary<readonly [string, string]> = fc.oneof(
  fc
    .oneof(
      fc.record({
        invalidation_type: fc.string().filter((t) => !["key", "pattern", "tag"].includes(t)),
        key: fc.string()
      }),
      fc.record({
        invalidation_type: fc.constant("key"),
        key: fc.oneof(
          fc.constant(""),
          fc.string().map((s) => `${s}\u0001`),
          notAString
        )
      }),
      fc.record({
        invalidation_type: fc.constant("pattern"),
        pattern: fc.oneof(fc.constant(""), fc.constantFrom("*", "**", "***"), notAString)
      }),
      fc.record({
        invalidation_type: fc.constant("tag"),
        tags: fc.oneof(fc.constant([]), fc.array(notAString, { minLength: 1, maxLength: 2 }), fc.string())
      }),
      fc.record({ invalidation_type: fc.constantFrom("key", "pattern", "tag") }),
      jsonAnything.filter((v) => typeof v !== "object" || v === null || Array.isArray(v))
    )
    .map((body) => ["/api/v1/cache/invalidate", JSON.stringify(body)] as const),
  fc
    .oneof(
      fc.record({ keys: fc.array(fc.string(), { maxLength: 3 }) }),
      fc.record({
        keys: fc.oneof(fc.string(), fc.array(notAString, { minLength: 1, maxLength: 3 })),
        source: fc.constant("default")
      }),
      fc.record({
        keys: fc.array(fc.string(), { maxLength: 3 }),
        source: fc.string().filter((s) => s !== "default" && s !== "memory")
      }),
      fc.record({
        pattern: fc.string(),
        keys: fc.array(fc.string(), { maxLength: 2 }),
        source: fc.constant("default")
      }),
      fc.record({ pattern: fc.oneof(fc.constant(""), notAString), source: fc.constant("default") }),
      fc.record({ keys: fc.constant(["a"]), source: fc.constant("default"), ttl: notAPositiveInt })
    )
    .map((body) => ["/api/v1/cache/warm", JSON.stringify(body)] as const),
  fc.tuple(fc.constantFrom("/api/v1/cache/invalidate", "/api/v1/cache/warm"), badJson)
)

const controlChar = fc
  .oneof(fc.integer({ min: 0, max: 0x1f }), fc.integer({ min: 0x7f, max: 0x9f }))
  .map((c) => String.fromCharCode(c))

/** The path segment of a key no server may accept: with a control character, over 512 bytes, or mis-encoded. */
const hostileKeySegment: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(fc.string({ maxLength: 20 }), controlChar, fc.string({ maxLength: 20 }))
    .map(([a, c, b]) => encodeURIComponent(a + c + b)),
  fc
    .tuple(fc.string({ unit: "grapheme", minLength: 1, maxLength: 4 }), fc.integer({ min: 513, max: 3000 }))
    .map(([s, n]) => encodeURIComponent(s.repeat(Math.ceil(n / new TextEncoder().encode(s).length) + 1))),
  // past ~16 KiB the request line is over Node's header limit: 431, still JSON
  fc.integer({ min: 513, max: 20_000 }).map((n) => "k".repeat(n)),
  // a broken escape, then "g" so that what follows cannot complete it
  fc
    .tuple(
      fc.string({ maxLength: 10 }),
      fc.constantFrom("%", "%Z", "%ZZ", "%G0", "%0", "%%", "%E2%82", "%FF", "%C0%AF", "%ED%A0%80", "%F8%88%80%80%80"),
      fc.string({ maxLength: 10 })
    )
    .map(([a, bad, b]) => `${encodeURIComponent(a)}${bad}g${encodeURIComponent(b)}`),
  // ('#' is not in here: fetch takes it for the start of a fragment and never sends it; the raw fuzzing does.)
  fc.tuple(fc.string({ maxLength: 10 }), fc.constant(";")).map(([a, c]) => encodeURIComponent(a) + c + "x"),
  fc.constant("")
)

/** Methods Node's parser accepts (it answers others with 400 before the app sees them). */
const parsedMethod = fc.constantFrom("GET", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "PROPFIND", "M-SEARCH", "get")
const anyMethod = fc.oneof(parsedMethod, fc.constantFrom("FOO", "BREW", "X-CUSTOM"))
const nonJsonContentType = fc.oneof(
  fc.constantFrom(
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/octet-stream",
    "application/json; charset=latin1",
    "application/jsonp",
    "json",
    "*/*",
    ""
  ),
  fc.stringMatching(/^[a-z]{1,10}\/[a-z0-9.+-]{1,15}$/).filter((t) => !t.includes("json"))
)
const randomSegment = fc.oneof(
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
  // (no dot-segments: fetch resolves them before sending; the raw fuzzing sends them)
  fc.constantFrom("api", "v1", "v2", "cache", "stats", "warm", "invalidate", "healthz", "docs", "")
)
/** A path that names nothing: its first segment starts with "_", which no route does. */
const unknownPath = fc
  .tuple(fc.string({ maxLength: 12 }), fc.array(randomSegment, { maxLength: 4 }))
  .map(([first, segments]) => `/_${encodeURIComponent(first)}${segments.map((segment) => `/${segment}`).join("")}`)

const badToken = fc.oneof(
  fc.constant(undefined),
  fc
    .string({ maxLength: 40 })
    .filter((s) => s !== token)
    .map((s) => `Bearer ${s}`),
  fc.constantFrom(
    `Basic ${Buffer.from(`user:${token}`).toString("base64")}`,
    token,
    `Bearer${token}`,
    `Token ${token}`,
    `Bearer ${token}x`,
    `Bearer ${token.slice(1)}`
  ),
  fc
    .string({ unit: "binary-ascii", maxLength: 40 })
    .filter((s) => /^[\t\x20-\x7e]*$/.test(s) && s !== `Bearer ${token}`)
)

/** Garbage for a raw socket: request lines and headers no HTTP client library would send. */
const hostileTarget = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("/", "/api/v1/cache/", "/healthz", "/api/v1/cache/stats", ""),
      fc.uint8Array({ minLength: 1, maxLength: 30 })
    )
    .map(([prefix, bytes]) =>
      Buffer.concat([Buffer.from(prefix), Buffer.from(bytes.map((b) => (b === 10 || b === 13 || b === 32 ? 0x01 : b)))])
    ),
  fc
    .constantFrom(
      "*",
      "http://evil.example/api/v1/cache/x",
      "//x",
      "/%",
      "/%00",
      "/\u00ff",
      "/a?load=%ZZ",
      "/_/../healthz",
      "/api/v1/cache/../../healthz",
      "/api/v1/cache/a#b"
    )
    .map((s) => Buffer.from(s, "latin1"))
)
const rawRequest = fc
  .tuple(
    fc.constantFrom("GET", "POST", "PUT", "DELETE", "GARBAGE", "G\u0001T", "", "OPTIONS", "CONNECT", "TRACE", "PRI"),
    hostileTarget,
    fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/9.9", "HTTP/1", "FOO/1.1", ""),
    fc.boolean(),
    fc.array(
      fc.oneof(
        fc
          .tuple(fc.stringMatching(/^[!-9;-~]{1,20}$/), fc.string({ unit: "binary-ascii", maxLength: 30 }))
          .map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, " ")}`),
        fc.constantFrom(
          "Upgrade: websocket",
          "Connection: upgrade",
          "Expect: nonsense",
          "X-Bad Header: x",
          ": empty-name",
          "no-colon",
          "Transfer-Encoding: gzip",
          "Host: a\u0000b"
        )
      ),
      { maxLength: 4 }
    )
  )
  .map(([method, target, version, withHost, headers]) =>
    Buffer.concat([
      Buffer.from(`${method} `, "latin1"),
      target,
      Buffer.from(
        ` ${version}\r\n${withHost ? "Host: 127.0.0.1\r\n" : ""}${headers.map((h) => `${h}\r\n`).join("")}Connection: close\r\n\r\n`,
        "latin1"
      )
    ])
  )

/** Sends `bytes` on a fresh connection and reads the whole answer (the server closes it). */
const rawCall = (port: number, bytes: Buffer): Promise<Answer> =>
  new Promise((resolve, reject) => {
    sent++
    const socket = net.connect(port, "127.0.0.1")
    const chunks: Array<Buffer> = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer within 5 s to ${JSON.stringify(bytes.toString("latin1"))}`))
    }, 5000)
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString("utf8")
      const head = text.indexOf("\r\n\r\n")
      if (head === -1)
        return reject(
          new Error(`no HTTP answer to ${JSON.stringify(bytes.toString("latin1"))}: ${JSON.stringify(text)}`)
        )
      const lines = text.slice(0, head).split("\r\n")
      const status = Number(lines[0]?.split(" ")[1])
      const header = (name: string) =>
        lines
          .find((line) => line.toLowerCase().startsWith(`${name}:`))
          ?.slice(name.length + 1)
          .trim() ?? ""
      let body = text.slice(head + 4)
      const length = header("content-length")
      // Only the first answer counts: the server may answer more of what it parsed as further requests.
      if (length !== "") body = Buffer.from(body, "utf8").subarray(0, Number(length)).toString("utf8")
      else if (header("transfer-encoding").toLowerCase() === "chunked") {
        let decoded = ""
        for (let at = 0; ;) {
          const eol = body.indexOf("\r\n", at)
          const size = parseInt(body.slice(at, eol), 16)
          if (!(size > 0)) break
          decoded += body.slice(eol + 2, eol + 2 + size)
          at = eol + 2 + size + 2
        }
        body = decoded
      }
      resolve({ status, contentType: header("content-type"), text: body })
    })
    socket.write(bytes)
  })

// -----------------------------------------------------------------------------
// The properties
// -----------------------------------------------------------------------------

/** Entries stored before the fuzzing, under keys no generator produces; every one must survive it. */
const seeds = Array.from({ length: 40 }, (_, i) => {
  const key = `seed\u00a7${i}`
  switch (i % 5) {
    case 0:
      return { key, body: { value: `value ${i}` }, expected: `value ${i}` }
    case 1:
      return { key, body: { value: { n: String(i) }, data_type: "hash" }, expected: { n: String(i) } }
    case 2:
      return { key, body: { value: [`m${i}`], data_type: "set" }, expected: [`m${i}`] }
    case 3:
      return {
        key,
        body: { value: [{ member: `m${i}`, score: i }], data_type: "sorted_set" },
        expected: [{ member: `m${i}`, score: i }]
      }
    default:
      return {
        key,
        body: { value: [`a${i}`, `b${i}`], data_type: "list", tags: ["seed"] },
        expected: [`a${i}`, `b${i}`]
      }
  }
})

const base = Effect.map(Effect.service(HttpServer.HttpServer), (s) => HttpServer.formatAddress(s.address))

/** Runs a fast-check property against the server, then checks the server still answers /healthz. */
const fuzz = <T>(arbitrary: fc.Arbitrary<T>, numRuns: number, run: (base: string, value: T) => Promise<void>) =>
  Effect.flatMap(base, (url) =>
    Effect.promise(async () => {
      await fc.assert(
        fc.asyncProperty(arbitrary, (value) => run(url, value)),
        { numRuns: runs(numRuns), endOnFailure: false }
      )
      const health = await fetch(`${url}/healthz`)
      assert.strictEqual(health.status, 200, "the server still serves after the fuzzing")
    })
  )

const fuzzKey = fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 30 }).map((s) => `fuzz:${s}`)
const keyPath = (key: string) => `/api/v1/cache/${encodeURIComponent(key)}`

layer(server, { excludeTestServices: true, timeout: "120 seconds" })("fuzzing the REST API", (it) => {
  const started = Date.now()

  it.effect("stores the seed entries the fuzzing must not lose", () =>
    Effect.flatMap(base, (url) =>
      Effect.promise(async () => {
        for (const seed of seeds) {
          const answer = await call(url, {
            method: "PUT",
            path: keyPath(seed.key),
            headers: { ...auth, ...jsonType },
            body: JSON.stringify(seed.body)
          })
          assert.strictEqual(answer.status, 200, answer.text)
        }
      })
    )
  )

  it.effect("answers 400 JSON to bodies that are not JSON (or not UTF-8)", () =>
    fuzz(fc.tuple(fuzzKey, fc.oneof(badJson, badUtf8)), 1500, (url, [key, body]) =>
      check(url, { method: "PUT", path: keyPath(key), headers: { ...auth, ...jsonType }, body }, [400])
    )
  )

  it.effect("answers 400 JSON to PUT bodies of the wrong types or shapes", () =>
    fuzz(fc.tuple(fuzzKey, badPutBody), 2200, (url, [key, body]) =>
      check(url, { method: "PUT", path: keyPath(key), headers: { ...auth, ...jsonType }, body }, [400])
    )
  )

  it.effect("answers 400 JSON to invalidate and warm bodies that break their schema", () =>
    fuzz(badPostBody, 1200, (url, [path, body]) =>
      check(url, { method: "POST", path, headers: { ...auth, ...jsonType }, body }, [400])
    )
  )

  it.effect("answers 400 (or 431 for a request line too long to parse) to hostile keys", () =>
    fuzz(
      fc.tuple(hostileKeySegment, fc.constantFrom("GET", "PUT", "DELETE"), fc.boolean()),
      1500,
      (url, [segment, method, load]) =>
        check(
          url,
          {
            method,
            path: `/api/v1/cache/${segment}${load ? "?load=true" : ""}`,
            headers: method === "PUT" ? { ...auth, ...jsonType } : auth,
            ...(method === "PUT" ? { body: '{"value":"v"}' } : {})
          },
          [400, 431]
        )
    )
  )

  it.effect("answers 413 JSON to bodies over the limit, declared or chunked, before parsing them", () =>
    fuzz(
      fc.tuple(
        fuzzKey,
        fc.integer({ min: maxBodyBytes + 1, max: 6 * maxBodyBytes }),
        fc.boolean(),
        fc.constantFrom("PUT", "POST")
      ),
      500,
      (url, [key, size, chunked, method]) =>
        check(
          url,
          {
            method,
            path: method === "PUT" ? keyPath(key) : "/api/v1/cache/invalidate",
            headers: { ...auth, ...jsonType },
            body: `{"value":"${"x".repeat(size - 12)}"}`,
            chunked
          },
          [413]
        )
    )
  )

  it.effect("answers 401 JSON to /api/v1/* without the right bearer token, whatever else is wrong", () =>
    fuzz(
      fc.tuple(
        badToken,
        parsedMethod,
        fc.oneof(
          fuzzKey.map(keyPath),
          fc.constantFrom(
            "/api/v1/cache/stats",
            "/api/v1/cache/warm",
            "/api/v1/cache/invalidate",
            "/api/v1/x",
            "//api/v1/cache/seed",
            "/%61pi/v1/cache/stats",
            "/api//v1/cache/k"
          )
        ),
        fc.option(fc.oneof(badJson, badPutBody), { nil: undefined })
      ),
      1100,
      (url, [authorization, method, path, body]) =>
        check(
          url,
          {
            method,
            path,
            headers: { ...(authorization === undefined ? {} : { authorization }), ...jsonType },
            ...(body === undefined || method.toUpperCase() === "GET" ? {} : { body })
          },
          [401]
        )
    )
  )

  it.effect("answers 4xx JSON to random methods, unknown paths and non-JSON content types", () =>
    fuzz(
      fc.oneof(
        fc.tuple(anyMethod, unknownPath).map(([method, path]) => ({ method, path, headers: auth })),
        fc
          .tuple(
            fc.constantFrom("PATCH", "OPTIONS", "PROPFIND", "FOO", "M-SEARCH"),
            fc.oneof(
              fuzzKey.map(keyPath),
              fc.constantFrom("/api/v1/cache/stats", "/api/v1/cache/warm", "/healthz", "/metrics")
            )
          )
          .map(([method, path]) => ({ method, path, headers: auth })),
        fc
          .tuple(
            fc.constantFrom("DELETE", "PUT", "POST"),
            fc.constantFrom("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
          )
          .map(([method, path]) => ({ method, path, headers: auth })),
        fuzzKey.map((key) => ({
          method: "POST",
          path: keyPath(key),
          headers: { ...auth, ...jsonType },
          body: '{"value":"v"}'
        })),
        fc.tuple(fuzzKey, fc.constantFrom("PUT", "POST"), nonJsonContentType).map(([key, method, contentType]) => ({
          method,
          path: method === "PUT" ? keyPath(key) : "/api/v1/cache/invalidate",
          headers: { ...auth, ...(contentType === "" ? {} : { "content-type": contentType }) },
          body: '{"value":"v","invalidation_type":"key","key":"x"}'
        }))
      ),
      1500,
      (url, request) => check(url, request)
    )
  )

  it.effect("answers raw garbage on the socket with a 4xx JSON answer, never a dropped connection", () =>
    Effect.flatMap(Effect.service(HttpServer.HttpServer), (server) =>
      Effect.promise(async () => {
        const address = server.address as { readonly port: number }
        await fc.assert(
          fc.asyncProperty(rawRequest, async (bytes) =>
            expectJsonError(await rawCall(address.port, bytes), bytes.toString("latin1"))
          ),
          { numRuns: runs(1000), endOnFailure: false }
        )
      })
    )
  )

  it.effect("answers a non-WebSocket upgrade whose body has a Transfer-Encoding in JSON (a case fuzzing found)", () =>
    Effect.flatMap(Effect.service(HttpServer.HttpServer), (server) =>
      Effect.promise(async () => {
        const address = server.address as { readonly port: number }
        const bytes = Buffer.from(
          "GET * HTTP/1.1\r\nTransfer-Encoding: gzip\r\nUpgrade: websocket\r\nUpgrade: websocket\r\n" +
            "Connection: upgrade\r\nConnection: close\r\n\r\n",
          "latin1"
        )
        const answer = await rawCall(address.port, bytes)
        expectJsonError(answer, bytes.toString("latin1"), [411])
      })
    )
  )

  it.effect("keeps serving and keeps every seed entry, after at least 10,000 hostile requests", () =>
    Effect.flatMap(base, (url) =>
      Effect.promise(async () => {
        for (const seed of seeds) {
          const answer = await call(url, { method: "GET", path: keyPath(seed.key), headers: auth })
          assert.strictEqual(answer.status, 200, `${seed.key}: ${answer.text}`)
          assert.deepStrictEqual(JSON.parse(answer.text).value, seed.expected, seed.key)
        }
        const health = await fetch(`${url}/healthz`)
        assert.strictEqual(health.status, 200)
        const elapsed = Date.now() - started
        console.log(`fuzzing: ${sent} requests in ${(elapsed / 1000).toFixed(1)} s`)
        if (scale >= 1) assert.isAtLeast(sent, 10_000)
      })
    )
  )
})
