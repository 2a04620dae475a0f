/**
 * The pending-invalidations journal as a file in the embedded server's data dir, beside the RDB/AOF it guards:
 * written atomically (a temp file renamed over it) whenever the set of pending invalidations changes, removed when
 * nothing is pending. A restart on the data dir reads it and applies what it lists before serving the kept data.
 */
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { EmbeddedRedisConfig } from "../../src/EmbeddedRedis.ts"
import { PendingJournal, type PendingRecord } from "../../src/PendingJournal.ts"

/** The journal's file name in a data dir. */
export const fileName = "pending-invalidations.json"

const Record = Schema.Struct({ keys: Schema.Array(Schema.String), everything: Schema.Boolean })
const decode = Schema.decodeUnknownExit(Schema.fromJsonString(Record))

/**
 * The journal in `dataDir`. A journal that cannot be read (corrupt) counts as "everything pending": the safe side. A
 * failed write is logged — the invalidations stay pending in the process, which keeps retrying them.
 */
export const layer = (dataDir: string): Layer.Layer<never> => {
  const file = path.join(dataDir, fileName)
  const save = (pending: PendingRecord | undefined) =>
    Effect.try({
      try: () => {
        if (pending === undefined) return fs.rmSync(file, { force: true })
        const temp = `${file}.tmp`
        fs.writeFileSync(temp, JSON.stringify(pending), { mode: 0o600 })
        fs.renameSync(temp, file)
      },
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) =>
        Effect.logWarning("could not record the pending invalidations on disk").pipe(
          Effect.annotateLogs({ file, error: cause instanceof Error ? cause.message : String(cause) })
        )
      )
    )
  const load = Effect.sync((): PendingRecord | undefined => {
    let text: string
    try {
      text = fs.readFileSync(file, "utf8")
    } catch {
      return undefined
    }
    const decoded = decode(text)
    return decoded._tag === "Success" ? decoded.value : { keys: [], everything: true }
  })
  return Layer.succeed(PendingJournal, { save, load })
}

/** The journal an embedded server needs: in its data dir when it persists its data, none when nothing survives it. */
export const layerFor = (server: EmbeddedRedisConfig): Layer.Layer<never> =>
  server.persistence === "none" ? Layer.empty : layer(path.resolve(server.dataDir))
