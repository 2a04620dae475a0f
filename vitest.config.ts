import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "property-tests/**/*.test.ts", "examples/**/*.test.ts"],
    // Each file spawns its own redis-server; files run in parallel on forks, tests in a file in order.
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
