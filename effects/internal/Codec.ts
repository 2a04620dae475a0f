/**
 * Compiled JSON codecs for value schemas, built once per schema and kept in a WeakMap. The hot path is
 * `JSON.parse` + the schema's own sync decoder (and the schema's encoder + `JSON.stringify`); only a failure
 * goes through the Exit decoders and `Schema.fromJsonString`, to build the same `SchemaError` they report.
 * Apps that import `effect/schema/SchemaJITCompiler/enable` first get compiled decoders on this path.
 */
import { Exit, Schema } from "effect"

/** Decoding from stored JSON text, encoding to it, and decoding a source's JSON value. */
export interface Codec<A> {
  readonly decode: (text: string) => Exit.Exit<A, Schema.SchemaError>
  readonly encode: (value: A) => Exit.Exit<string, Schema.SchemaError>
  readonly decodeValue: (value: unknown) => Exit.Exit<A, Schema.SchemaError>
}

const compiled = new WeakMap<object, Codec<any>>()

const compile = <A>(schema: Schema.Codec<A, unknown>): Codec<A> => {
  // The sync decoders run compiled code when the app enables Effect's schema JIT (no fiber per call); the
  // Exit decoders build the detailed SchemaError, so they only run once the fast one has failed.
  const decodeSync = Schema.decodeUnknownSync(schema)
  const encodeSync = Schema.encodeUnknownSync(schema)
  const decodeExit = Schema.decodeUnknownExit(schema)
  const encodeExit = Schema.encodeUnknownExit(schema)
  const decodeValue = (value: unknown): Exit.Exit<A, Schema.SchemaError> => {
    try {
      return Exit.succeed(decodeSync(value))
    } catch {
      return decodeExit(value)
    }
  }
  const encodeValue = (value: A): Exit.Exit<unknown, Schema.SchemaError> => {
    try {
      return Exit.succeed(encodeSync(value))
    } catch {
      return encodeExit(value)
    }
  }
  const json = Schema.fromJsonString(schema)
  const decodeJson = Schema.decodeUnknownExit(json)
  const encodeJson = Schema.encodeUnknownExit(json)
  return {
    decode: (text) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        return decodeJson(text)
      }
      return decodeValue(parsed)
    },
    encode: (value) => {
      const encoded = encodeValue(value)
      if (Exit.isFailure(encoded)) return Exit.failCause(encoded.cause)
      let text: string | undefined
      try {
        text = JSON.stringify(encoded.value)
      } catch {
        return encodeJson(value)
      }
      return text === undefined ? encodeJson(value) : Exit.succeed(text)
    },
    decodeValue
  }
}

/** The codec of `schema`, compiled on first use. */
export const codecFor = <A>(schema: Schema.Codec<A, unknown>): Codec<A> => {
  let codec = compiled.get(schema) as Codec<A> | undefined
  if (codec === undefined) {
    codec = compile(schema)
    compiled.set(schema, codec)
  }
  return codec
}
