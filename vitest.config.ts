import * as path from "node:path"
import { defineConfig } from "vitest/config"

const root = import.meta.dirname

export default defineConfig({
  // The examples import the package by name; in the repo's own tests that name resolves to the TypeScript sources
  // (the same files `tsc -p .` checks), so they run without a build. What ships is tested on dist/ (ReadmeExample,
  // Packaging).
  resolve: {
    alias: [
      { find: /^embedded-cache$/, replacement: path.join(root, "src/index.ts") },
      { find: /^embedded-cache\/effects$/, replacement: path.join(root, "effects/index.ts") },
      { find: /^embedded-cache\/(.+)$/, replacement: path.join(root, "$1.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "property-tests/**/*.test.ts", "examples/**/*.test.ts"],
    // Each file spawns its own redis-server; files run in parallel on forks, tests in a file in order.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
