/**
 * The dashboard's HTTP surface without a browser: access rules (token, loopback), the control
 * guard, and clear answers for missing things.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import { CONTROL_HEADER, startDashboard } from "../src/observe/dashboard/server.ts";
import { ensureLineStreams } from "../src/bus/streams.ts";
import { DashboardSchema, PipelineSchema } from "../src/config/schema.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { histogramQuantile } from "../src/observe/dashboard/rates.ts";
import { LineFeed } from "../src/observe/dashboard/feed.ts";
import { ModelStore } from "../src/bus/model_store.ts";

Deno.test("the dashboard refuses to listen beyond loopback without a token", async () => {
  await assert.rejects(
    () =>
      startDashboard({
        line: "x",
        natsUrl: "nats://127.0.0.1:1",
        config: DashboardSchema.parse({ hostname: "0.0.0.0" }),
      }),
    /refusing to listen on 0\.0\.0\.0 without a token/,
  );
  assert.throws(() => DashboardSchema.parse({ token: "short" }), /16 character/);
});

Deno.test({
  name: "with a token every request needs it; control needs POST and the dashboard header",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const line = "dash-http";
    await ensureLineStreams(
      await nc.jetstreamManager(),
      line,
      PipelineSchema.parse({ line }).streams,
    );
    const token = "a-long-enough-token-123";
    const dashboard = await startDashboard({
      line,
      natsUrl: server.url,
      config: DashboardSchema.parse({ token }),
      port: 0,
    });
    const get = async (path: string, init?: RequestInit) => {
      const response = await fetch(`${dashboard.url}${path}`, init);
      const body = await response.text();
      return { status: response.status, headers: response.headers, body };
    };
    try {
      assert.match(dashboard.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await get("/")).status, 401);
      assert.equal((await get("/api/state?token=wrong-token-000000000")).status, 401);
      const page = await get(`/?token=${token}`);
      assert.equal(page.status, 200);
      assert.match(page.body, /<title>Line inspector<\/title>/);
      const cookie = page.headers.get("set-cookie")!;
      assert.match(cookie, /HttpOnly; SameSite=Strict/);
      const withCookie = { headers: { cookie: cookie.split(";")[0] } };
      const state = await get("/api/state", withCookie);
      assert.equal(state.status, 200);
      assert.equal(JSON.parse(state.body).line, line);
      const bearer = { authorization: `Bearer ${token}` };
      const uplot = await get("/vendor/uPlot.iife.min.js", { headers: bearer });
      assert.equal(uplot.headers.get("content-type"), "text/javascript");
      assert.match(uplot.body, /uPlot/);
      assert.equal((await get("/api/control/trainer/pause", { headers: bearer })).status, 405);
      const forged = await get("/api/control/trainer/pause", { method: "POST", headers: bearer });
      assert.equal(forged.status, 403);
      // No trainer runs on this line: the control service cannot answer, and says so.
      const noTrainer = await get("/api/control/trainer/pause", {
        method: "POST",
        headers: { ...bearer, [CONTROL_HEADER]: "1" },
      });
      assert.equal(noTrainer.status, 502);
      assert.ok(JSON.parse(noTrainer.body).error);
      assert.equal((await get("/api/heatmap", { headers: bearer })).status, 400);
      const missing = await get("/api/heatmap?id=nope", { headers: bearer });
      assert.equal(missing.status, 404);
      assert.match(missing.body, /no heatmap for nope/);
      assert.equal((await get("/api/image/99", { headers: bearer })).status, 404);
      assert.equal((await get("/nothing", { headers: bearer })).status, 404);

      // A page left open does not keep the dashboard from stopping.
      const live = await fetch(`${dashboard.url}/api/events`, { headers: bearer });
      assert.equal(live.headers.get("content-type"), "text/event-stream");
      const reader = live.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      assert.match(first, /^retry: 2000/);
      const closed = await Promise.race([
        dashboard.close().then(() => "closed"),
        new Promise((resolve) => setTimeout(() => resolve("hung"), 10_000)),
      ]);
      assert.equal(closed, "closed");
      while (!(await reader.read()).done) { /* drain to the end the server sent */ }
    } finally {
      await dashboard.close();
      await nc.close();
    }
  },
});

Deno.test("latency quantiles from histogram bucket deltas, linear within a bucket", () => {
  const cumulative = new Map([[0.1, 0], [0.5, 50], [1, 100], [Infinity, 100]]);
  assert.equal(histogramQuantile(0.5, cumulative), 0.5);
  assert.ok(Math.abs(histogramQuantile(0.25, cumulative)! - 0.3) < 1e-12);
  assert.equal(histogramQuantile(0.75, cumulative), 0.75);
  assert.equal(histogramQuantile(0.5, new Map([[0.1, 0], [Infinity, 0]])), null);
  // Everything beyond the last finite bound: that bound.
  assert.equal(histogramQuantile(0.5, new Map([[1, 0], [Infinity, 4]])), 1);
});

Deno.test({
  name: "the feed starts with the model versions the line still remembers, then follows new ones",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const line = "dash-models";
    await ensureLineStreams(
      await nc.jetstreamManager(),
      line,
      PipelineSchema.parse({ line }).streams,
    );
    const models = await ModelStore.open(nc.jetstream(), line);
    for (const step of [10, 20, 30]) {
      await models.publish(new Uint8Array([step]), { step, imageSize: 64 });
    }
    const feed = await LineFeed.start(nc, line, { pollSeconds: 60 });
    try {
      assert.deepEqual(feed.snapshot().models.map((m) => [m.version, m.step]), [
        [1, 10],
        [2, 20],
        [3, 30],
      ]);
      const seen = new Promise((resolve) =>
        feed.subscribe((event) => event.type === "model" && resolve(event.model.version))
      );
      await models.publish(new Uint8Array([4]), { step: 40, imageSize: 64 });
      assert.equal(await seen, 4);
      assert.deepEqual(feed.snapshot().models.map((m) => m.version), [1, 2, 3, 4]);
    } finally {
      await feed.stop();
      await nc.close();
    }
  },
});
