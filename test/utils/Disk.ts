/**
 * Filling a disk for disk-full tests: one file written until the file system answers ENOSPC, so whatever else lives
 * there (a redis-server's AOF) hits a full disk on its next write. Removing the file frees the space again.
 */
import * as fs from "node:fs"

/** Writes `file` until the disk under it is full. */
export const fillUp = (file: string): void => {
  const chunk = Buffer.alloc(256 * 1024)
  const fd = fs.openSync(file, "w")
  try {
    for (;;) fs.writeSync(fd, chunk)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error
  } finally {
    fs.closeSync(fd)
  }
}
