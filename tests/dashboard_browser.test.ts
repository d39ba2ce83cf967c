/**
 * The dashboard as a person uses it: headless Chromium (Debian's, driven by puppeteer-core)
 * opens the page of a running line fed the synthetic-line fixture stream, sees verdict rows
 * arrive, an anomalous part with its heatmap overlay, and pauses the trainer with the button.
 *
 * Needs /usr/bin/chromium (scripts/ensure_tools.sh installs it). The README's screenshot comes
 * from scripts/dashboard_screenshot.ts (the demo line's real model), not from this test.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { startDashboard } from "../src/observe/dashboard/server.ts";
import { replayStream } from "../src/streams/replay.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { control } from "../src/harness/bus.ts";
import { launchChromium } from "../src/harness/browser.ts";
import { passSuffix } from "../src/harness/line.ts";
import { tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

Deno.test({
  name: "dashboard in Chromium: verdict rows appear, a heatmap overlay loads, Pause pauses",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const line = "dashboard";
    const checkpointDir = await Deno.makeTempDir();
    const config = tinyPipelineConfig(line, {
      // Flag the upper half of recent scores, so anomalous parts appear within seconds.
      scorer: {
        batchSize: 4,
        threshold: { method: "quantile", targetFalseAlarmRate: 0.5, window: 100, minScores: 4 },
      },
    });
    const pipeline = await runPipeline({
      config,
      natsUrl: server.url,
      workers: true,
      checkpointDir,
      progressIntervalMs: 0,
      metricsPort: 0,
    });
    const dashboard = await startDashboard({
      line,
      natsUrl: server.url,
      config: config.dashboard,
      port: 0,
      metrics: () => pipeline.metrics(),
      pollSeconds: 1,
    });
    const feeding = new AbortController();
    // The camera keeps publishing (pass after pass) until the test ends, however slow the line.
    const camera = (async () => {
      for (let pass = 1; !feeding.signal.aborted; pass++) {
        await replayStream({
          connection: nc,
          dir: "fixtures/synthetic-line",
          line,
          idSuffix: passSuffix(pass),
          pacing: { kind: "rate", hz: 10 },
          signal: feeding.signal,
        });
      }
    })();
    const chromium = await launchChromium();
    try {
      const page = await chromium.browser.newPage();
      await page.setViewport({ width: 1440, height: 1100 });
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(String(error)));
      await page.goto(`${dashboard.url}/`, { waitUntil: "load" });
      // Page code runs in the browser, so it is given as expressions (no DOM types here).
      const text = (selector: string) =>
        page.evaluate(`document.querySelector(${JSON.stringify(selector)})?.textContent ?? null`);
      const waitFor = (expression: string, timeout = 120_000) =>
        page.waitForFunction(expression, { timeout });
      // The page names the line once its first snapshot has loaded.
      await waitFor(
        `document.querySelector("#line").textContent === ${JSON.stringify(line)}`,
        30_000,
      );

      // Verdict rows appear as the camera publishes.
      await waitFor(`document.querySelectorAll("#feed tr").length >= 5`);
      // An anomalous part shows with its photo and heatmap overlay loaded.
      await waitFor(`(() => {
        const heat = document.querySelector("#gallery .part img.heat");
        const photo = document.querySelector("#gallery .part img.photo");
        return heat?.complete && heat.naturalWidth > 0 && photo?.complete && photo.naturalWidth > 0;
      })()`);
      const heatSize = await page.evaluate(`(() => {
        const heat = document.querySelector("#gallery .part img.heat");
        return [heat.naturalWidth, heat.naturalHeight];
      })()`);
      assert.deepEqual(heatSize, [256, 256]);
      // The feed follows the line live (SSE): a newer verdict takes the top row.
      const top = String(await text("#feed tr td.id"));
      await waitFor(
        `document.querySelector("#feed tr td.id")?.textContent !== ${JSON.stringify(top)}`,
      );
      const badge = String(await text("#feed tr .badge"));
      assert.ok(["anomalous", "normal", "warming up"].includes(badge), badge);
      // Charts drew; model versions are listed.
      await waitFor(`document.querySelectorAll(".uplot canvas").length >= 4`);
      await waitFor(`document.querySelector("#models tr") !== null`, 60_000);

      // The Pause button pauses the trainer through the control service.
      await page.click("#pause");
      await waitFor(`document.querySelector("#trainer-state")?.textContent === "paused"`, 30_000);
      const trainer = await control<StageStatus>(nc, line, "trainer", "status");
      assert.equal(trainer.paused, true);
      assert.match(String(await text("#action-result")), /paused/);

      assert.deepEqual(problems, [], "no script errors on the page");
    } finally {
      feeding.abort();
      await camera.catch(() => undefined);
      await chromium[Symbol.asyncDispose]();
      await dashboard.close();
      await pipeline.stop();
      await nc.close();
      await Deno.remove(checkpointDir, { recursive: true });
    }
  },
});
