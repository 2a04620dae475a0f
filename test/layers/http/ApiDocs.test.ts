/**
 * The OpenAPI document as a real server serves it (`/openapi.json`): every operation has a summary and examples, no
 * schema documents a number as `"Infinity" | "NaN"`, and the examples work — the PUT example sent to the example key
 * is found by a GET, and every request example is accepted as it stands.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as MemoryDataSource from "../../../layers/source/MemoryDataSource.ts"
import { memoryServer, send } from "./RestClient.ts"

const source = MemoryDataSource.make({ "user:1": { name: "ada" }, "user:2": { name: "grace" } })

interface Operation {
  readonly method: string
  readonly path: string
  readonly op: Record<string, any>
}

const operationsOf = (document: Record<string, any>): ReadonlyArray<Operation> =>
  Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, op }))
  )

const successContent = (op: Record<string, any>): Record<string, any> | undefined => {
  const status = Object.keys(op.responses).find((s) => s.startsWith("2"))
  return status === undefined ? undefined : op.responses[status].content
}

const exampleOf = (content: Record<string, any> | undefined): unknown =>
  content === undefined ? undefined : Object.values(content)[0]?.example

/** The path of an operation with its parameters' examples filled in. */
const concretePath = ({ path, op }: Operation): string =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const parameter = (op.parameters as Array<Record<string, any>>).find((p) => p.name === name)
    return encodeURIComponent(String(parameter?.example))
  })

const openApi = Effect.map(send("GET", "/openapi.json"), (answer) => answer.json as Record<string, any>)

layer(memoryServer({ name: "memory", source: source.source }), { excludeTestServices: true })(
  "the OpenAPI document",
  (it) => {
    it.effect("gives every operation a summary, a success example, and a request example when it takes a body", () =>
      Effect.gen(function* () {
        const operations = operationsOf(yield* openApi)
        assert.isAtLeast(operations.length, 10)
        for (const operation of operations) {
          const name = `${operation.method} ${operation.path}`
          assert.isString(operation.op.summary, `${name}: summary`)
          assert.isNotEmpty(operation.op.summary, `${name}: summary`)
          assert.isDefined(exampleOf(successContent(operation.op)), `${name}: success example`)
          if (operation.op.requestBody !== undefined) {
            assert.isDefined(exampleOf(operation.op.requestBody.content), `${name}: request example`)
          }
          for (const parameter of operation.op.parameters ?? []) {
            if (parameter.in === "path") assert.isDefined(parameter.example, `${name}: example of ${parameter.name}`)
          }
        }
      })
    )

    it.effect('documents numbers as plain numbers: no schema mentions "Infinity" or "NaN"', () =>
      Effect.gen(function* () {
        const text = JSON.stringify(yield* openApi)
        assert.notInclude(text, "Infinity")
        assert.notInclude(text, "NaN")
        const stats = (yield* openApi).paths["/api/v1/cache/stats"].get.responses["200"].content["application/json"]
        assert.deepStrictEqual(stats.schema.properties.hits, { type: "number" })
      })
    )

    it.effect("lets try-it-out's default PUT body, sent to the example key, be found by the GET example", () =>
      Effect.gen(function* () {
        const document = yield* openApi
        const put = operationsOf(document).find((o) => o.method === "PUT" && o.path === "/api/v1/cache/{key}")!
        const get = operationsOf(document).find((o) => o.method === "GET" && o.path === "/api/v1/cache/{key}")!
        const body = exampleOf(put.op.requestBody.content)
        const written = yield* send("PUT", concretePath(put), body)
        assert.strictEqual(written.status, 200, written.text)
        assert.deepStrictEqual(written.json, exampleOf(successContent(put.op)))
        const read = yield* send("GET", concretePath(get))
        assert.strictEqual(read.status, 200, read.text)
        const documented = exampleOf(successContent(get.op)) as Record<string, unknown>
        assert.deepStrictEqual(read.json.value, (body as Record<string, unknown>).value)
        assert.deepStrictEqual({ ...read.json, ttl: documented.ttl }, documented)
        assert.isTrue(read.json.ttl > 590 && read.json.ttl <= 600, `ttl ${read.json.ttl}`)
      })
    )

    it.effect("answers every operation's examples with a 2xx, and GET / exactly as its example says", () =>
      Effect.gen(function* () {
        for (const operation of operationsOf(yield* openApi)) {
          const name = `${operation.method} ${operation.path}`
          const body = operation.op.requestBody === undefined ? undefined : exampleOf(operation.op.requestBody.content)
          const answer = yield* send(operation.method, concretePath(operation), body)
          assert.isTrue(answer.status >= 200 && answer.status < 300, `${name} → ${answer.status} ${answer.text}`)
        }
        const index = yield* send("GET", "/")
        const documented = operationsOf(yield* openApi).find((o) => o.path === "/")!
        assert.deepStrictEqual(index.json, exampleOf(successContent(documented.op)))
      })
    )
  }
)
