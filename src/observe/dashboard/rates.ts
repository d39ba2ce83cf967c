/**
 * Throughput and latency between two metric scrapes: counter deltas over the interval, and
 * verdict-latency quantiles from the histogram's bucket deltas (linear within a bucket, as
 * Prometheus' `histogram_quantile` does). Pure functions on prom-client's JSON.
 *
 * @module
 */
import type { MetricsJson } from "../metrics.ts";

/** Rates of one interval. */
export interface RateSample {
  /** End of the interval (ms since the epoch). */
  at: number;
  /** Images ingest took in, per second. */
  imagesPerSecond: number;
  /** Verdicts stored by the scorer and ingest, per second. */
  verdictsPerSecond: number;
  /** Median verdict latency over the interval, seconds (null without verdicts). */
  latencyP50: number | null;
  /** 95th percentile verdict latency, seconds (null without verdicts). */
  latencyP95: number | null;
}

type Labels = Record<string, string | number>;

function sum(
  json: MetricsJson,
  name: string,
  match: (labels: Labels, metricName?: string) => boolean,
): number {
  const metric = json.find((m) => m.name === name);
  if (!metric) return 0;
  let total = 0;
  for (const value of metric.values) {
    const v = value as { value: number; labels: Labels; metricName?: string };
    if (match(v.labels, v.metricName)) total += v.value;
  }
  return total;
}

/** Cumulative bucket counts of the latency histogram of `line` (all statuses), by `le`. */
export function latencyBuckets(json: MetricsJson, line: string): Map<number, number> {
  const buckets = new Map<number, number>();
  const metric = json.find((m) => m.name === "inspect_verdict_latency_seconds");
  for (const value of metric?.values ?? []) {
    const v = value as { value: number; labels: Labels; metricName?: string };
    if (v.metricName !== "inspect_verdict_latency_seconds_bucket" || v.labels.line !== line) {
      continue;
    }
    const le = v.labels.le === "+Inf" ? Infinity : Number(v.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + v.value);
  }
  return buckets;
}

/**
 * The `q` quantile of a histogram given as cumulative counts by upper bound; linear inside
 * the bucket it falls in (the last finite bound when it falls in +Inf). Null when empty.
 */
export function histogramQuantile(q: number, cumulative: Map<number, number>): number | null {
  const bounds = [...cumulative.keys()].sort((a, b) => a - b);
  const total = cumulative.get(Infinity) ?? (bounds.length ? cumulative.get(bounds.at(-1)!)! : 0);
  if (!(total > 0)) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const bound of bounds) {
    const count = cumulative.get(bound)!;
    if (count >= rank) {
      if (bound === Infinity) return lowerBound;
      const inBucket = count - lowerCount;
      return inBucket > 0
        ? lowerBound + (bound - lowerBound) * ((rank - lowerCount) / inBucket)
        : bound;
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

/** Rates of `line` between two scrapes `seconds` apart. */
export function rateSample(
  line: string,
  before: MetricsJson,
  after: MetricsJson,
  seconds: number,
  at: number,
): RateSample {
  const perSecond = (name: string, match: (labels: Labels) => boolean) =>
    seconds > 0 ? Math.max(0, sum(after, name, match) - sum(before, name, match)) / seconds : 0;
  const ofLine = (labels: Labels) => labels.line === line;
  const deltas = new Map<number, number>();
  const earlier = latencyBuckets(before, line);
  for (const [le, count] of latencyBuckets(after, line)) {
    deltas.set(le, Math.max(0, count - (earlier.get(le) ?? 0)));
  }
  return {
    at,
    imagesPerSecond: perSecond(
      "inspect_images_in_total",
      (l) => ofLine(l) && l.stage === "ingest",
    ),
    verdictsPerSecond: perSecond(
      "inspect_images_out_total",
      (l) => ofLine(l) && (l.stage === "scorer" || l.status === "rejected"),
    ),
    latencyP50: histogramQuantile(0.5, deltas),
    latencyP95: histogramQuantile(0.95, deltas),
  };
}
