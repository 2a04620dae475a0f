/**
 * How the L1's admission policy was chosen: the hit ratio and the CPU cost per access of LRU and of TinyLFU
 * admission over LRU, on Zipf 0.99 traffic over 100,000 keys, at several L1 sizes (a miss admits the key, as a
 * `getOrLoad` fill does). Run with `node bench/l1-policy.ts`; prints a table and merges `l1_policy` into
 * `bench/results/latest.json`.
 */
import { L1 } from "../effects/internal/L1.ts"
import { mergeResults } from "./Results.ts"
import { zipf } from "./Zipf.ts"

const keyCount = 100_000
const accesses = 2_000_000
const keys = Array.from({ length: keyCount }, (_, i) => `bench:${i}`)
const text = "x".repeat(1024)
const draw = zipf(keyCount, 0.99)
const trace = Int32Array.from({ length: accesses }, draw)

const run = (policy: "lru" | "tinylfu", maxEntries: number) => {
  const l1 = new L1({ maxEntries, policy })
  const start = process.cpuUsage()
  for (let i = 0; i < accesses; i++) {
    const key = keys[trace[i]!]!
    if (l1.get(key, 0) === undefined) l1.admit(key, l1.begin(), text, text, undefined, [], -1, 0)
  }
  const cpu = process.cpuUsage(start)
  return { hitRatio: l1.hits / (l1.hits + l1.misses), nsPerAccess: ((cpu.user + cpu.system) * 1000) / accesses }
}

const rows: Array<Record<string, unknown>> = []
for (const maxEntries of [1_000, 10_000, 50_000]) {
  for (const policy of ["lru", "tinylfu"] as const) {
    run(policy, maxEntries) // warm the JIT
    const r = run(policy, maxEntries)
    rows.push({ maxEntries, policy, hitRatio: Number(r.hitRatio.toFixed(4)), nsPerAccess: Math.round(r.nsPerAccess) })
  }
}
console.table(rows)
mergeResults({ l1_policy: { workload: `zipf 0.99, ${keyCount} keys, ${accesses} accesses, miss admits`, rows } })
