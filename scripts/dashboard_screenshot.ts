/**
 * Makes docs/dashboard.png: the demo line (pipelines/demo.json, its real model) on a private
 * nats-server, fed the synthetic-line fixture stream at 4 images/s (pass after pass), its
 * dashboard opened in headless Chromium; the picture is taken once six anomalous parts show.
 *
 *   deno run -A scripts/dashboard_screenshot.ts [--out docs/dashboard.png]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect } from "nats";
import { demoConfigWith, passSuffix } from "../src/harness/line.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { launchChromium } from "../src/harness/browser.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { startDashboard } from "../src/observe/dashboard/server.ts";
import { replayStream } from "../src/streams/replay.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { out: { type: "string", default: "docs/dashboard.png" } },
});
const out = values.out as `${string}.png`;
const line = "demo";
await using server = await startTestNatsServer();
const nc = await connect({ servers: server.url });
const checkpointDir = await Deno.makeTempDir();
const config = await demoConfigWith(line, {});
const pipeline = await runPipeline({
  config,
  natsUrl: server.url,
  checkpointDir,
  progressIntervalMs: 10_000,
  metricsPort: 0,
});
const dashboard = await startDashboard({
  line,
  natsUrl: server.url,
  config: config.dashboard,
  port: 0,
  metrics: () => pipeline.metrics(),
});
const chromium = await launchChromium();
try {
  // The camera replays pass after pass until the picture is taken (warm-up takes a while).
  const cameraOff = new AbortController();
  const camera = (async () => {
    for (let pass = 1; !cameraOff.signal.aborted; pass++) {
      await replayStream({
        connection: nc,
        dir: "fixtures/synthetic-line",
        line,
        idSuffix: passSuffix(pass),
        pacing: { kind: "rate", hz: 4 },
        signal: cameraOff.signal,
      });
    }
  })();
  const page = await chromium.browser.newPage();
  await page.setViewport({ width: 1440, height: 1000, deviceScaleFactor: 1 });
  await page.goto(`${dashboard.url}/`, { waitUntil: "load" });
  console.log(`dashboard at ${dashboard.url}/; waiting for 6 anomalous parts`);
  await page.waitForFunction(`document.querySelectorAll("#gallery .part img.heat").length >= 6`, {
    timeout: 600_000,
    polling: 1000,
  });
  await new Promise((resolve) => setTimeout(resolve, 5_000)); // images and rates settle
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
  cameraOff.abort();
  await camera;
} finally {
  await chromium[Symbol.asyncDispose]();
  await dashboard.close();
  await pipeline.stop();
  await nc.close();
  await Deno.remove(checkpointDir, { recursive: true });
}
