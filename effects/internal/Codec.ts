/**
 * Compiled JSON codecs for value schemas, built once per schema and kept in a WeakMap, so the hot path does one
 * map lookup instead of rebuilding a decoder per call.
 */
import { type Exit, Schema } from "effect"

/** Decoding from stored JSON text, encoding to it, and decoding a source's JSON value. */
export interface Codec<A> {
  readonly decode: (text: string) => Exit.Exit<A, Schema.SchemaError>
  readonly encode: (value: A) => Exit.Exit<string, Schema.SchemaError>
  readonly decodeValue: (value: unknown) => Exit.Exit<A, Schema.SchemaError>
}

const compiled = new WeakMap<object, Codec<any>>()

/** The codec of `schema`, compiled on first use. */
export const codecFor = <A>(schema: Schema.Codec<A, unknown>): Codec<A> => {
  let codec = compiled.get(schema) as Codec<A> | undefined
  if (codec === undefined) {
    const json = Schema.fromJsonString(schema)
    codec = {
      decode: Schema.decodeUnknownExit(json),
      encode: Schema.encodeUnknownExit(json),
      decodeValue: Schema.decodeUnknownExit(schema)
    }
    compiled.set(schema, codec)
  }
  return codec
}
