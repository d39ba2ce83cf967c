/**
 * The live dashboard `run` serves (Deno.serve): one page, its script and uPlot (served from
 * the npm package, nothing from a CDN), a snapshot and a Server-Sent-Events stream of the
 * line's {@link LineFeed}, the parts' photos and heatmap overlays, and the trainer's pause /
 * resume / snapshot buttons, which go through the line's control service.
 *
 * Access: loopback by default. Binding anything else requires a token (`dashboard.token` or
 * `$DASHBOARD_TOKEN`); with a token set, every request must carry it (`?token=` once, which
 * sets an HttpOnly cookie, or `Authorization: Bearer`). Control actions are POSTs that must
 * carry an `X-Inspect-Dashboard` header, which a cross-site form cannot send.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import { connectNats, type NatsAuth, natsTargetOf } from "../../bus/connection.ts";
import type { DashboardConfig } from "../../config/schema.ts";
import { streamNames } from "../../bus/subjects.ts";
import { fetchHeatmap } from "../../bus/heatmap.ts";
import { isNotFound } from "../../bus/streams.ts";
import { sniffFormat } from "../../image/decode.ts";
import { heatmapOverlayPng } from "../../image/heatmap_png.ts";
import type { StageName } from "../../stages/stage.ts";
import { type HttpEndpoint, isLoopback, listen } from "../http.ts";
import type { MetricsJson } from "../metrics.ts";
import { type FeedEvent, LineFeed } from "./feed.ts";
// Text imports put the page and uPlot into the module graph: they are installed and loaded with
// the code (nothing read from disk at run time, nothing fetched from a CDN).
import indexHtml from "./static/index.html" with { type: "text" };
import appJs from "./static/app.js" with { type: "text" };
import appCss from "./static/app.css" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** Line to show. */
  line: string;
  /** NATS server of the line (the dashboard opens its own connection). */
  natsUrl: string;
  /** Credentials for it (as the pipeline's); none on an open server. */
  natsAuth?: NatsAuth;
  /** Where and how to listen. */
  config: DashboardConfig;
  /** Port overriding `config.port` (0: any free port). */
  port?: number;
  /** The pipeline process's merged metrics (throughput and latency charts). */
  metrics?: () => Promise<MetricsJson>;
  /** Seconds between status polls (default 2). */
  pollSeconds?: number;
}

/** A running dashboard. */
export interface Dashboard extends HttpEndpoint {
  /** The live feed behind it. */
  readonly feed: LineFeed;
}

/** Header every control POST must carry (a cross-site form cannot set it). */
export const CONTROL_HEADER = "X-Inspect-Dashboard";
const TOKEN_COOKIE = "inspect_dashboard_token";
const STATIC_FILES: Record<string, { body: string; type: string }> = {
  "/": { body: indexHtml, type: "text/html; charset=utf-8" },
  "/app.js": { body: appJs, type: "text/javascript" },
  "/app.css": { body: appCss, type: "text/css" },
  "/vendor/uPlot.iife.min.js": { body: uplotJs, type: "text/javascript" },
  "/vendor/uPlot.min.css": { body: uplotCss, type: "text/css" },
};
const ACTIONS = new Set(["pause", "resume", "snapshot"]);

/** The token in force: `$DASHBOARD_TOKEN`, else the configured one, else none. */
export function dashboardToken(config: DashboardConfig): string | undefined {
  let fromEnv: string | undefined;
  try {
    fromEnv = Deno.env.get("DASHBOARD_TOKEN") || undefined;
  } catch {
    // no env permission: the configured token alone
  }
  if (fromEnv !== undefined && fromEnv.length < 16) {
    throw new Error("dashboard: $DASHBOARD_TOKEN must be at least 16 characters");
  }
  return fromEnv ?? config.token;
}

/** Constant-time comparison (no early exit on the first differing character). */
function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Starts the dashboard; refuses a non-loopback address without a token. */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { config, line } = options;
  const token = dashboardToken(config);
  if (!isLoopback(config.hostname) && !token) {
    throw new Error(
      `dashboard: refusing to listen on ${config.hostname} without a token; set ` +
        `dashboard.token or $DASHBOARD_TOKEN (16+ characters), or keep hostname 127.0.0.1`,
    );
  }
  const nc = await connectNats(natsTargetOf(options.natsUrl, options.natsAuth), {
    name: `inspect-${line}-dashboard`,
    reconnect: true,
  });
  let feed: LineFeed;
  try {
    feed = await LineFeed.start(nc, line, {
      metrics: options.metrics,
      pollSeconds: options.pollSeconds,
    });
  } catch (error) {
    await nc.close();
    throw error;
  }
  const jsm = await nc.jetstreamManager();
  const streams = new Set<() => void>();
  const handler = (request: Request) => handle(request, { line, token, feed, nc, jsm, streams });
  let endpoint: HttpEndpoint;
  try {
    endpoint = listen("dashboard", config.hostname, options.port ?? config.port, handler);
  } catch (error) {
    await feed.stop();
    await nc.close();
    throw error;
  }
  return {
    ...endpoint,
    feed,
    close: async () => {
      await feed.stop();
      // Open event streams never end by themselves; the server's shutdown waits for them.
      for (const end of streams) end();
      await endpoint.close();
      await nc.drain().catch(() => undefined);
    },
  };
}

interface Context {
  line: string;
  token: string | undefined;
  feed: LineFeed;
  nc: NatsConnection;
  jsm: Awaited<ReturnType<NatsConnection["jetstreamManager"]>>;
  /** Ends each open event stream. */
  streams: Set<() => void>;
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

function text(body: string, status: number): Response {
  return new Response(body + "\n", { status, headers: { "content-type": "text/plain" } });
}

async function handle(request: Request, context: Context): Promise<Response> {
  const url = new URL(request.url);
  const headers = new Headers();
  if (context.token) {
    const offered = url.searchParams.get("token") ??
      request.headers.get("authorization")?.replace(/^Bearer /, "") ??
      /(?:^|;\s*)inspect_dashboard_token=([^;]+)/.exec(request.headers.get("cookie") ?? "")?.[1];
    if (!offered || !sameToken(decodeURIComponent(offered), context.token)) {
      return text("a valid token is required (?token=…)", 401);
    }
    if (url.searchParams.has("token")) {
      headers.set(
        "set-cookie",
        `${TOKEN_COOKIE}=${encodeURIComponent(context.token)}; HttpOnly; SameSite=Strict; Path=/`,
      );
    }
  }
  const response = await route(request, url, context);
  headers.forEach((value, key) => response.headers.set(key, value));
  return response;
}

async function route(request: Request, url: URL, context: Context): Promise<Response> {
  const path = url.pathname;
  const file = STATIC_FILES[path];
  if (file && request.method === "GET") {
    return new Response(file.body, {
      headers: { "content-type": file.type, "cache-control": "no-cache" },
    });
  }
  if (path === "/api/state" && request.method === "GET") return json(context.feed.snapshot());
  if (path === "/api/events" && request.method === "GET") return events(context);
  let match = /^\/api\/image\/(\d+)$/.exec(path);
  if (match && request.method === "GET") return await image(context, Number(match[1]));
  match = /^\/api\/heatmap$/.exec(path);
  if (match && request.method === "GET") {
    const imageId = url.searchParams.get("id");
    if (!imageId) return text("?id=<Image-Id> is required", 400);
    return await heatmap(context, imageId, url.searchParams.get("raw") === "1");
  }
  match = /^\/api\/control\/(trainer)\/(\w+)$/.exec(path);
  if (match) {
    if (request.method !== "POST") return text("POST only", 405);
    if (!request.headers.has(CONTROL_HEADER)) return text(`${CONTROL_HEADER} header required`, 403);
    if (!ACTIONS.has(match[2])) return text(`unknown action ${match[2]}`, 404);
    const answer = await context.feed.control(
      match[1] as StageName,
      match[2] as "pause" | "resume" | "snapshot",
    );
    return answer.ok ? json(answer.value) : json({ error: answer.error }, 502);
  }
  return text("not found", 404);
}

/** The feed as Server-Sent Events; a page that goes away cancels its stream. */
function events({ feed, streams }: Context): Response {
  const encoder = new TextEncoder();
  let unsubscribe = () => {};
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let end = () => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      end = () => {
        unsubscribe();
        clearInterval(heartbeat);
        streams.delete(end);
        try {
          controller.close();
        } catch {
          // already closed
        }
      };
      streams.add(end);
      const send = (event: FeedEvent) => {
        try {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\n\n`));
        } catch {
          unsubscribe();
        }
      };
      controller.enqueue(encoder.encode("retry: 2000\n\n"));
      unsubscribe = feed.subscribe(send);
      heartbeat = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          clearInterval(heartbeat);
        }
      }, 15_000);
    },
    cancel() {
      unsubscribe();
      clearInterval(heartbeat);
      streams.delete(end);
    },
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}

async function image(context: Context, seq: number): Promise<Response> {
  try {
    const message = await context.jsm.streams.getMessage(streamNames(context.line).images, {
      seq,
    });
    const format = sniffFormat(message.data);
    if (!format) return text("the stored payload is not an image", 415);
    return new Response(new Uint8Array(message.data), {
      headers: { "content-type": `image/${format}`, "cache-control": "max-age=3600" },
    });
  } catch (error) {
    if (isNotFound(error) || /no message found/i.test(String(error))) {
      return text(`image message ${seq} is not stored (any more)`, 404);
    }
    return text(`cannot read image ${seq}: ${(error as Error).message}`, 502);
  }
}

async function heatmap(context: Context, imageId: string, raw: boolean): Promise<Response> {
  try {
    const found = await fetchHeatmap(context.jsm, context.line, imageId);
    if (!found) return text(`no heatmap for ${imageId}`, 404);
    const png = raw ? found.png : await heatmapOverlayPng(found.png, 256);
    return new Response(new Uint8Array(png), {
      headers: { "content-type": "image/png", "cache-control": "max-age=3600" },
    });
  } catch (error) {
    return text(`cannot read the heatmap of ${imageId}: ${(error as Error).message}`, 502);
  }
}
