// The dashboard page: a snapshot from /api/state, then live updates from /api/events (SSE).
// Plain browser JavaScript (no build step); charts with uPlot, served from its npm package.
"use strict";

const state = {
  line: "",
  verdicts: [],
  training: [],
  models: [],
  stages: {},
  rates: [],
};
const LIMITS = { verdicts: 1000, training: 2000, rates: 300, gallery: 14, feed: 40 };
const $ = (id) => document.getElementById(id);
const fmt = (
  x,
  digits = 3,
) => (x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits));
const timeOf = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
const escapeHtml = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function push(list, item, limit) {
  list.push(item);
  if (list.length > limit) list.splice(0, list.length - limit);
}

// ---- charts -------------------------------------------------------------------------------
const axisStyle = {
  stroke: "#8595a8",
  grid: { stroke: "#263241", width: 1 },
  ticks: { stroke: "#263241" },
};
const charts = {};

function chartSize(el) {
  return { width: Math.max(300, el.clientWidth), height: 200 };
}

function makeChart(id, opts, data) {
  const el = $(id);
  const chart = new uPlot({ ...chartSize(el), ...opts }, data, el);
  charts[id] = chart;
  return chart;
}

function initCharts() {
  makeChart("chart-scores", {
    scales: { x: { time: false } },
    axes: [{ ...axisStyle, label: "score" }, { ...axisStyle, label: "images" }],
    series: [
      { label: "score" },
      {
        label: "images",
        stroke: "#4ea1ff",
        fill: "#4ea1ff55",
        paths: uPlot.paths.bars({ size: [0.95, 40] }),
        points: { show: false },
      },
    ],
    legend: { show: false },
    hooks: {
      draw: [(u) => {
        const threshold = currentThreshold();
        if (threshold === null) return;
        const x = u.valToPos(threshold, "x", true);
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#e5484d";
        ctx.lineWidth = 2 * devicePixelRatio;
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.restore();
      }],
    },
  }, [[0], [0]]);
  makeChart("chart-rates", {
    scales: { ms: { auto: true } },
    axes: [axisStyle, { ...axisStyle, label: "per s" }, {
      ...axisStyle,
      scale: "ms",
      side: 1,
      label: "latency ms",
      grid: { show: false },
    }],
    series: [
      {},
      { label: "images in /s", stroke: "#4ea1ff", width: 2 },
      { label: "verdicts /s", stroke: "#3fb68b", width: 2 },
      { label: "p50 ms", stroke: "#f0b232", scale: "ms", width: 1.5 },
      { label: "p95 ms", stroke: "#e5484d", scale: "ms", width: 1.5, dash: [4, 3] },
    ],
  }, [[], [], [], [], []]);
  makeChart("chart-loss", {
    scales: { x: { time: false } },
    axes: [{ ...axisStyle, label: "step" }, axisStyle],
    series: [
      { label: "step" },
      { label: "total", stroke: "#4ea1ff", width: 2 },
      { label: "st", stroke: "#f0b232" },
      { label: "ae", stroke: "#3fb68b" },
      { label: "stae", stroke: "#b48cff" },
    ],
  }, [[], [], [], [], []]);
  makeChart("chart-rejections", {
    scales: { x: { time: false } },
    axes: [{ ...axisStyle, label: "step" }, axisStyle],
    series: [
      { label: "step" },
      { label: "ATDR down-weighted", stroke: "#f0b232", width: 4 },
      { label: "hygiene rejected", stroke: "#e5484d", width: 2, dash: [6, 4] },
    ],
  }, [[], [], []]);
  addEventListener("resize", () => {
    for (const [id, chart] of Object.entries(charts)) chart.setSize(chartSize($(id)));
  });
}

function currentThreshold() {
  for (let i = state.verdicts.length - 1; i >= 0; i--) {
    if (state.verdicts[i].status === "scored") return state.verdicts[i].threshold;
  }
  return null;
}

function scoreHistogram() {
  const scores = state.verdicts.filter((v) => v.status === "scored").map((v) => v.score);
  if (scores.length === 0) return [[0], [0]];
  const threshold = currentThreshold() ?? 0;
  const lo = Math.min(0, ...scores);
  const hi = Math.max(threshold * 1.2, ...scores) * 1.02 || 1;
  const bins = 30;
  const width = (hi - lo) / bins;
  const counts = new Array(bins).fill(0);
  for (const s of scores) counts[Math.min(bins - 1, Math.floor((s - lo) / width))]++;
  return [counts.map((_, i) => lo + (i + 0.5) * width), counts];
}

function renderCharts() {
  charts["chart-scores"].setData(scoreHistogram());
  const r = state.rates;
  charts["chart-rates"].setData([
    r.map((x) => x.at / 1000),
    r.map((x) => x.imagesPerSecond),
    r.map((x) => x.verdictsPerSecond),
    r.map((x) => (x.latencyP50 === null ? null : x.latencyP50 * 1000)),
    r.map((x) => (x.latencyP95 === null ? null : x.latencyP95 * 1000)),
  ]);
  const t = state.training;
  const loss = (term) => t.map((e) => e.losses[term] ?? null);
  charts["chart-loss"].setData([
    t.map((e) => e.step),
    loss("total"),
    loss("st"),
    loss("ae"),
    loss("stae"),
  ]);
  let down = 0;
  let rejected = 0;
  charts["chart-rejections"].setData([
    t.map((e) => e.step),
    t.map((e) => (down += e.downWeighted)),
    t.map((e) => (rejected += e.rejected)),
  ]);
}

// ---- tables, gallery, KPIs ----------------------------------------------------------------
function verdictBadge(v) {
  const kind = v.status === "scored" ? (v.anomalous ? "anomalous" : "normal") : v.status;
  const label = {
    anomalous: "anomalous",
    normal: "normal",
    warming_up: "warming up",
    rejected: "rejected",
  }[kind];
  return `<span class="badge ${kind}" title="${escapeHtml(v.error ?? "")}">${label}</span>`;
}

function regionText(v) {
  if (!v.region) return "";
  const r = v.region;
  return `${r.x},${r.y} ${r.width}×${r.height}`;
}

let renderedFeedKey = "";
function renderFeed(freshCount) {
  const rows = state.verdicts.slice(-LIMITS.feed).reverse();
  const key = rows.map((v) => v.imageSeq).join(",");
  if (key === renderedFeedKey) return;
  renderedFeedKey = key;
  $("feed").innerHTML = rows.map((v, i) => `
    <tr class="${i < freshCount ? "fresh" : ""}" data-status="${v.status}">
      <td>${timeOf(v.scoredAt)}</td>
      <td class="id" title="${escapeHtml(v.imageId)}">${escapeHtml(v.imageId ?? "(none)")}</td>
      <td>${verdictBadge(v)}</td>
      <td class="num">${fmt(v.score)}</td>
      <td class="num">${fmt(v.threshold)}</td>
      <td class="num">${
    v.anomalousFraction === null ? "" : (100 * v.anomalousFraction).toFixed(1) + " %"
  }</td>
      <td>${regionText(v)}</td>
      <td class="num">${v.modelVersion ?? ""}</td>
    </tr>`).join("");
  $("feed-count").textContent = `${state.verdicts.length} recent`;
}

let renderedGalleryKey = "";
function renderGallery() {
  const parts = state.verdicts.filter((v) => v.status === "scored" && v.anomalous).slice(
    -LIMITS.gallery,
  ).reverse();
  const key = parts.map((v) => v.imageSeq).join(",");
  if (key === renderedGalleryKey) return;
  renderedGalleryKey = key;
  if (parts.length === 0) {
    $("gallery").innerHTML = '<p class="empty">No anomalous part yet.</p>';
    return;
  }
  $("gallery").innerHTML = parts.map((v) => {
    const size = v.originalSize ?? { width: 1, height: 1 };
    const r = v.region;
    const box = r
      ? `<div class="box" style="left:${(100 * r.x) / size.width}%;top:${
        (100 * r.y) / size.height
      }%;width:${(100 * r.width) / size.width}%;height:${(100 * r.height) / size.height}%"></div>`
      : "";
    const heat = v.heatmap
      ? `<img class="heat" alt="heatmap" src="/api/heatmap?id=${encodeURIComponent(v.imageId)}">`
      : "";
    return `<figure class="part" data-image-id="${escapeHtml(v.imageId)}">
      <div class="frame" style="aspect-ratio:${size.width}/${size.height}">
        <img class="photo" alt="part" src="/api/image/${v.imageSeq}">${heat}${box}
      </div>
      <figcaption>
        <span class="id" title="${escapeHtml(v.imageId)}">${escapeHtml(v.imageId)}</span>
        <span class="meta"><span class="score">${fmt(v.score)}</span> / thr ${fmt(v.threshold)} · ${
      (100 * (v.anomalousFraction ?? 0)).toFixed(1)
    } % above</span>
        <span class="meta">${timeOf(v.scoredAt)} · model v${v.modelVersion}</span>
      </figcaption>
    </figure>`;
  }).join("");
}

function renderModels() {
  $("models").innerHTML = state.models.slice().reverse().map((m) => `
    <tr><td class="num">v${m.version}</td><td class="num">${m.step}</td>
    <td>${new Date(m.publishedAt).toLocaleString([], { hour12: false })}</td>
    <td class="num">${(m.bytes / 1024).toFixed(0)} KiB</td></tr>`).join("");
}

function renderStages() {
  $("stages").innerHTML = ["ingest", "trainer", "scorer"].map((name) => {
    const s = state.stages[name];
    if (!s) return `<tr><td>${name}</td><td colspan="4" class="empty">no answer</td></tr>`;
    const st = name === "trainer"
      ? (s.paused ? "paused" : "training")
      : s.warm || name === "ingest"
      ? "running"
      : "warming up";
    return `<tr><td>${name}</td><td class="num">${s.imagesIn}</td><td class="num">${s.imagesOut}</td><td class="num">${
      s.backlog ?? "–"
    }</td><td>${st}</td></tr>`;
  }).join("");
}

function renderKpis() {
  const rate = state.rates.at(-1);
  $("kpi-throughput").textContent = rate ? rate.imagesPerSecond.toFixed(1) : "–";
  $("kpi-latency").textContent = rate && rate.latencyP50 !== null
    ? `${Math.round(rate.latencyP50 * 1000)} / ${Math.round(rate.latencyP95 * 1000)}`
    : "–";
  const scored = state.verdicts.filter((v) => v.status === "scored").slice(-500);
  const anomalous = scored.filter((v) => v.anomalous).length;
  $("kpi-anomalous").textContent = scored.length
    ? `${((100 * anomalous) / scored.length).toFixed(1)} %`
    : "–";
  $("kpi-anomalous-of").textContent = `${anomalous} of last ${scored.length}`;
  $("kpi-threshold").textContent = fmt(currentThreshold());
  const model = state.models.at(-1);
  $("kpi-model").textContent = model ? `v${model.version}` : "none";
  $("kpi-model-age").textContent = model
    ? `step ${model.step} · ${
      ageText((Date.now() - new Date(model.publishedAt).getTime()) / 1000)
    } ago`
    : "warming up";
  const trainer = state.stages.trainer;
  const stateEl = $("trainer-state");
  stateEl.textContent = trainer ? (trainer.paused ? "paused" : "training") : "–";
  stateEl.className = trainer ? (trainer.paused ? "paused" : "training") : "";
  $("trainer-step").textContent = trainer ? `step ${trainer.step ?? 0}` : "–";
}

function ageText(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

let pending = false;
let freshVerdicts = 0;
function scheduleRender() {
  if (pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    renderFeed(freshVerdicts);
    freshVerdicts = 0;
    renderGallery();
    renderModels();
    renderStages();
    renderKpis();
    renderCharts();
  }, 250);
}

// ---- live updates -------------------------------------------------------------------------
function apply(event) {
  switch (event.type) {
    case "verdict":
      push(state.verdicts, event.verdict, LIMITS.verdicts);
      freshVerdicts++;
      break;
    case "training":
      push(state.training, event.training, LIMITS.training);
      break;
    case "model":
      if (!state.models.some((m) => m.version === event.model.version)) {
        state.models.push(event.model);
      }
      break;
    case "status":
      state.stages = event.stages;
      break;
    case "rates":
      push(state.rates, event.rates, LIMITS.rates);
      break;
  }
  scheduleRender();
}

async function start() {
  initCharts();
  const snapshot = await (await fetch("/api/state")).json();
  Object.assign(state, snapshot);
  $("line").textContent = snapshot.line;
  document.title = `Line ${snapshot.line} · inspector`;
  scheduleRender();
  const source = new EventSource("/api/events");
  source.onopen = () => $("live").classList.add("on");
  source.onerror = () => $("live").classList.remove("on");
  source.onmessage = (message) => apply(JSON.parse(message.data));
}

async function controlAction(action) {
  const out = $("action-result");
  out.textContent = `${action}…`;
  try {
    const response = await fetch(`/api/control/trainer/${action}`, {
      method: "POST",
      headers: { "X-Inspect-Dashboard": "1" },
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ?? response.statusText);
    if (action === "snapshot") {
      out.textContent = answer.modelVersion
        ? `published v${answer.modelVersion} (step ${answer.step})`
        : `step ${answer.step}: still warming up`;
    } else {
      state.stages = { ...state.stages, trainer: answer };
      out.textContent = answer.paused ? "training paused" : "training resumed";
    }
    scheduleRender();
  } catch (error) {
    out.textContent = `${action} failed: ${error.message}`;
  }
}

for (const action of ["pause", "resume", "snapshot"]) {
  $(action).addEventListener("click", () => controlAction(action));
}
$("overlay-toggle").addEventListener("change", (e) => {
  $("gallery").classList.toggle("hide-heat", !e.target.checked);
});
start().catch((error) => {
  $("action-result").textContent = `cannot load the line: ${error.message}`;
});
