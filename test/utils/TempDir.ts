/**
 * A fresh temporary directory per test, so tests never share state on disk. It is created under the OS temp dir with
 * a short `ec-` prefix (unix socket paths inside it stay far below the 107-byte limit) and removed, with everything in
 * it, when the scope closes.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** Creates `<tmpdir>/ec-XXXXXX` and removes it recursively when the scope closes. */
export const make = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "ec-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)
