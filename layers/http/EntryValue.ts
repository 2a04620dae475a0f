/**
 * How entry values cross the REST API: a PUT's `value` into the `CacheValue` it stores, and a stored or loaded value
 * back into what GET answers. A `string` entry holds the JSON text of any JSON value, so GET answers that same JSON
 * value — an object stays an object, a number a number, a string a string — and a stored text that is not JSON
 * (written by another tool) is answered as the string it is. A read costs one `JSON.parse`, nothing more.
 */
import { Result, Schema, SchemaIssue } from "effect"
import { CacheValue, type DataType } from "../../src/CacheValue.ts"
import { type AnyValue, BadRequest } from "./CacheApi.ts"

/** What GET answers for a stored string entry: its JSON value, or the text itself when it is not JSON. */
export const fromStoredText = (text: string): Schema.Json => {
  try {
    return JSON.parse(text) as Schema.Json
  } catch {
    return text
  }
}

/** What GET answers for an entry of any data type. */
export const fromEntry = (entry: CacheValue): AnyValue =>
  entry.type === "string" ? fromStoredText(entry.value) : entry.value

const isJson = Schema.is(Schema.Json)

/** What GET answers for a value loaded from the source (`?load=true`): the value itself, or undefined if not JSON. */
export const fromLoaded = (value: unknown): Schema.Json | undefined => (isJson(value) ? value : undefined)

const decodeCacheValue = Schema.decodeUnknownResult(CacheValue)
const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/** The first issue of a refused value, as `value.a: Expected string`. */
const firstIssue = (issue: SchemaIssue.Issue): string => {
  const first = formatIssues(issue).issues[0]
  if (first === undefined) return "the value does not fit the data type"
  const path = (first.path ?? []).map((p) => {
    const segment = String(typeof p === "object" && p !== null && "key" in p ? p.key : p)
    return segment.length > 60 ? `${segment.slice(0, 60)}…` : segment
  })
  return `${path.length === 0 ? "value" : path.join(".")}: ${first.message.split("\n")[0]}`
}

/**
 * The value of a PUT as the data type says, or why it does not fit: a string entry holds any JSON value as its JSON
 * text; the other types are decoded with the `CacheValue` schema and must not be empty.
 */
export const fromPut = (dataType: DataType, value: unknown): CacheValue | BadRequest => {
  const wrong = (message: string) => new BadRequest({ error: "invalid_value", message: `${dataType}: ${message}` })
  if (dataType === "string") {
    let text: string | undefined
    try {
      text = JSON.stringify(value)
    } catch {
      return wrong("the value is nested too deeply to store")
    }
    return text === undefined ? wrong("the value is not JSON") : { type: "string", value: text }
  }
  const decoded = decodeCacheValue({ type: dataType, value })
  if (Result.isFailure(decoded)) return wrong(firstIssue(decoded.failure.issue))
  const entry = decoded.success
  const empty = entry.type === "hash" ? Object.keys(entry.value).length === 0 : entry.value.length === 0
  return empty
    ? wrong(entry.type === "hash" ? "a hash must have at least one field" : "the value must not be empty")
    : entry
}
