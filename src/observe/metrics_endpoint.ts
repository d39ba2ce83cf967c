/**
 * The `/metrics` endpoint of a pipeline process: on each scrape it asks every stage it hosts
 * for its metrics (Workers answer with their registry as JSON, stages in this thread refresh
 * this thread's registry) and merges them with the process-wide metrics into one text
 * exposition.
 *
 * @module
 */
import { type HttpEndpoint, listen } from "./http.ts";
import {
  mergeMetrics,
  metrics,
  METRICS_CONTENT_TYPE,
  type MetricsJson,
  processRegistry,
} from "./metrics.ts";

/** What the endpoint needs of a hosted stage. */
export interface MetricsSource {
  /** The stage's Worker metrics, or null when they are in this thread's registry. */
  metrics(): Promise<MetricsJson | null>;
}

/** Everything this process knows, merged, as prom-client JSON (what the dashboard reads). */
export async function scrapeMetricsJson(stages: readonly MetricsSource[]): Promise<MetricsJson> {
  return await mergedRegistry(stages).then((r) => r.getMetricsAsJSON() as Promise<MetricsJson>);
}

/** Everything this process knows, as Prometheus text. */
export async function scrapeMetrics(stages: readonly MetricsSource[]): Promise<string> {
  return await (await mergedRegistry(stages)).metrics();
}

async function mergedRegistry(stages: readonly MetricsSource[]) {
  // Stages first: those in this thread refresh this thread's registry before it is read.
  const fromStages = await Promise.all(stages.map((stage) => stage.metrics().catch(() => null)));
  const parts: MetricsJson[] = [
    await processRegistry().getMetricsAsJSON() as MetricsJson,
    await metrics().json(),
    ...fromStages.filter((part): part is MetricsJson => part !== null),
  ];
  return mergeMetrics(parts);
}

/** Serves `GET /metrics` on `hostname:port`; other paths are 404, other methods 405. */
export function startMetricsEndpoint(
  hostname: string,
  port: number,
  stages: readonly MetricsSource[],
): HttpEndpoint {
  return listen("metrics", hostname, port, async (request) => {
    const { pathname } = new URL(request.url);
    if (pathname !== "/metrics") return new Response("not found: try /metrics\n", { status: 404 });
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    }
    try {
      return new Response(await scrapeMetrics(stages), {
        headers: { "content-type": METRICS_CONTENT_TYPE },
      });
    } catch (error) {
      return new Response(`scrape failed: ${(error as Error).message}\n`, { status: 500 });
    }
  });
}
