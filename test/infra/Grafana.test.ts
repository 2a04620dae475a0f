/**
 * Every PromQL expression of infra/grafana/dashboard.json may name only metrics the service really exports: the
 * names are taken from a real render — `Stats.layerInstrumented` on `CacheLayers.layerMemory`, a few operations,
 * every sync metric of effects/Metrics.ts updated once — not from a list copied into this test.
 */
import { it } from "@effect/vitest"
import { Effect, Layer, Metric, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { readFileSync } from "node:fs"
import path from "node:path"
import { describe, expect } from "vitest"
import * as Cache from "../../effects/Cache.ts"
import * as Metrics from "../../effects/SyncMetrics.ts"
import * as Stats from "../../effects/Stats.ts"
import * as CacheLayers from "../../layers/CacheLayers.ts"

const dashboard = JSON.parse(
  readFileSync(path.resolve(import.meta.dirname, "../../infra/grafana/dashboard.json"), "utf8")
) as unknown

/** Every `expr` (panel targets) and templating `query`/`definition` string in the dashboard. */
const expressions = (node: unknown, into: Array<string> = []): Array<string> => {
  if (Array.isArray(node)) for (const item of node) expressions(item, into)
  else if (typeof node === "object" && node !== null) {
    for (const [key, value] of Object.entries(node)) {
      if ((key === "expr" || key === "definition") && typeof value === "string") into.push(value)
      else expressions(value, into)
    }
  }
  return into
}

const keywords = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan"
])

/** The metric names a PromQL expression selects (functions, keywords, labels, strings, ranges and variables removed). */
const metricNames = (expr: string): Array<string> => {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, " ") // strings
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges
    .replace(/\$\w+/g, " ") // dashboard variables
    .replace(/(?<![\w:])\d[\d.]*(?:e[+-]?\d+)?/gi, " ") // numbers (1e-9)
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // grouping label lists
    .replace(/label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)/g, " $1 ") // templating: metric, label
  const names: Array<string> = []
  for (const match of stripped.matchAll(/([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    const [, name, call] = match
    if (call !== undefined || keywords.has((name as string).toLowerCase()) || /^\d/.test(name as string)) continue
    names.push(name as string)
  }
  return names
}

const family = (name: string) => name.replace(/_(bucket|sum|count)$/, "")

describe("Grafana dashboard", () => {
  it("parses metric names out of PromQL", () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le, operation) (rate(cache_operation_duration_ms_bucket{instance=~"$instance"}[$__rate_interval])))'
      )
    ).toEqual(["cache_operation_duration_ms_bucket"])
    expect(metricNames("sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 0")).toEqual([
      "a_total",
      "b_total"
    ])
    expect(metricNames("label_values(cache_store_up, instance)")).toEqual(["cache_store_up"])
  })

  it.effect("references only metrics the service exports", () =>
    Effect.gen(function* () {
      const Num = Schema.Number
      yield* Cache.set("a", 1, { schema: Num })
      yield* Cache.get("a", Num)
      yield* Cache.get("missing", Num)
      yield* Cache.getOrLoad("b", Effect.succeed(2), { schema: Num })
      yield* Cache.del("a")
      // the sync metrics exist once updated (the consumer and publisher do this in a synced service)
      yield* Metrics.published(1)
      yield* Metrics.publishFailed(1)
      yield* Metrics.flushed("seq-gap")
      for (const counter of [
        Metrics.eventsReceived,
        Metrics.eventsApplied,
        Metrics.eventsDuplicate,
        Metrics.eventsOwn,
        Metrics.eventsMalformed
      ]) {
        yield* Metric.update(counter, 1)
      }
      yield* Metric.update(Metrics.lag, 5)
      const text = (yield* Stats.prometheusText) + (yield* PrometheusMetrics.format())
      const exported = new Set(
        text
          .split("\n")
          .filter((line) => line !== "" && !line.startsWith("#"))
          .map((line) => family(/^[a-zA-Z_:][\w:]*/.exec(line)?.[0] ?? ""))
      )
      // the metrics the dashboard is about are all rendered (sanity: the render above is the real one)
      for (const name of [
        "cache_hit_rate",
        "cache_operation_duration_ms",
        "cache_sync_lag_ms",
        "cache_sync_flushes_total"
      ]) {
        expect(exported, name).toContain(name)
      }
      const exprs = expressions(dashboard)
      expect(exprs.length).toBeGreaterThan(10)
      const used = new Set<string>()
      for (const expr of exprs) {
        const names = metricNames(expr)
        expect(names.length, expr).toBeGreaterThan(0)
        for (const name of names) {
          expect(exported, `${name} in ${expr}`).toContain(family(name))
          used.add(family(name))
        }
      }
      // the panels the dashboard promises
      for (const name of [
        "cache_hits_total",
        "cache_misses_total",
        "cache_operation_duration_ms",
        "cache_memory_used_bytes",
        "cache_memory_limit_bytes",
        "cache_evictions_total",
        "cache_sync_lag_ms",
        "cache_sync_flushes_total",
        "cache_alert"
      ]) {
        expect(used, name).toContain(name)
      }
    }).pipe(
      Effect.provide(
        Stats.layerInstrumented({ instanceId: "grafana-test" }).pipe(Layer.provideMerge(CacheLayers.layerMemory()))
      )
    )
  )

  it("histogram quantiles use _bucket series grouped by le", () => {
    for (const expr of expressions(dashboard).filter((e) => e.includes("histogram_quantile"))) {
      expect(expr).toMatch(/_bucket\{/)
      expect(expr).toMatch(/by \((le\b[^)]*)\)/)
    }
  })
})
