import { defineConfig } from "vitest/config"

export default defineConfig({
  // The examples import the package by name: `embedded-cache-source` (first in each package.json export) resolves
  // it to the TypeScript sources, as `tsc -p .` does, so they run without a build. Vite's default server
  // conditions are kept for every other package. What ships is tested on dist/ (ReadmeExample, Packaging).
  ssr: { resolve: { conditions: ["module", "node", "development|production", "embedded-cache-source"] } },
  test: {
    include: ["test/**/*.test.ts", "property-tests/**/*.test.ts", "examples/**/*.test.ts"],
    // Each file spawns its own redis-server; files run in parallel on forks, tests in a file in order.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
