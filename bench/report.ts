/**
 * Shared output helpers of the benchmarks: aligned console tables, markdown tables, JSON
 * results with the run's environment, and a small self-rendered SVG line chart converted to
 * PNG with sharp (no plotting dependency).
 *
 * @module
 */
import sharp from "sharp";
import * as tf from "@tensorflow/tfjs";

/** A table of already formatted cells. */
export interface Table {
  /** Column headings. */
  headers: string[];
  /** Rows of cells, one per column. */
  rows: string[][];
  /** Per-column alignment (default: first column left, the others right). */
  align?: ("left" | "right")[];
}

/** Where the benchmarks write their results. */
export const RESULTS_DIR = new URL("./results/", import.meta.url);

/** Formats a number with `digits` decimals, or `—` when it is missing or not finite. */
export function fixed(value: number | null | undefined, digits = 3): string {
  return value === null || value === undefined || !Number.isFinite(value)
    ? "—"
    : value.toFixed(digits);
}

/** Formats a signed difference (`+0.012`, `-0.004`), `—` when missing. */
export function signed(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

/** Renders `table` as space-aligned plain text for the console. */
export function textTable(table: Table): string {
  const widths = columnWidths(table);
  const line = (cells: string[]) =>
    cells.map((cell, i) => pad(cell, widths[i], alignOf(table, i))).join("  ").trimEnd();
  return [
    line(table.headers),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...table.rows.map(line),
  ].join("\n");
}

/**
 * The "Failures" section of a report: one line per failed job (its description and the
 * first line of its error), or nothing when every job succeeded.
 */
export function failureLines<J>(
  failures: readonly { job: J; error: string }[],
  describe: (job: J) => string,
): string[] {
  if (failures.length === 0) return [];
  return [
    "## Failures",
    "",
    ...failures.map((f) => `- ${describe(f.job)}: ${f.error.split("\n")[0]}`),
    "",
  ];
}

/** Renders `table` as a GitHub-flavoured markdown table. */
export function markdownTable(table: Table): string {
  checkShape(table);
  const escape = (cell: string) => cell.replaceAll("|", "\\|");
  const row = (cells: string[]) => `| ${cells.map(escape).join(" | ")} |`;
  const rule = table.headers.map((_, i) => alignOf(table, i) === "right" ? "---:" : ":---");
  return [row(table.headers), `|${rule.join("|")}|`, ...table.rows.map(row)].join("\n");
}

/** What the results files record about the machine and software a benchmark ran on. */
export interface Environment {
  /** ISO time the record was made. */
  date: string;
  /** `Deno.version.deno`. */
  deno: string;
  /** tfjs version. */
  tfjs: string;
  /** OS and architecture. */
  os: string;
  /** CPU model and logical core count. */
  cpu: string;
  /** Total memory in GiB. */
  memoryGiB: number;
  /**
   * `git rev-parse --short HEAD` plus `+dirty` when the tree has changes, or `unknown`, taken
   * when the run started ({@link startCommit}).
   */
  commit: string;
  /** 1/5/15-minute load averages when the record was made (other work on a shared machine). */
  loadAverage: number[];
  /** The command that made the record, e.g. `deno task bench:accuracy --quick` (absent in old records). */
  command?: string;
}

/** The command line of this benchmark run, as a user would type it. */
export function benchCommand(): string {
  const file = Deno.mainModule.split("/").pop() ?? "";
  const task = {
    "accuracy.ts": "bench:accuracy",
    "accuracy_seeds.ts": "bench:accuracy:seeds",
    "stream.ts": "bench:stream",
    "chaos.ts": "bench:chaos",
    "speed.ts": "bench:speed",
    "inspect.ts": "bench:inspect",
    "heatmap_cost.ts": "bench:heatmap",
  }[file];
  const base = task ? `deno task ${task}` : `deno run -A bench/${file}`;
  return [base, ...Deno.args].join(" ");
}

/** Describes the current machine and software for the results files. */
export async function environment(): Promise<Environment> {
  const cpuModel = await readCpuModel();
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    tfjs: tf.version.tfjs,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    cpu: `${cpuModel} × ${navigator.hardwareConcurrency}`,
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30),
    commit: await startCommit(),
    loadAverage: Deno.loadavg(),
    command: benchCommand(),
  };
}

/** Writes `data` as pretty JSON to `name` under {@link RESULTS_DIR}; returns the path. */
export async function writeResultJson(name: string, data: unknown): Promise<string> {
  return await writeResultText(name, JSON.stringify(data, null, 2) + "\n");
}

/** Writes `text` to `name` under {@link RESULTS_DIR} (created if needed); returns the path. */
export async function writeResultText(name: string, text: string): Promise<string> {
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  const url = new URL(name, RESULTS_DIR);
  await Deno.writeTextFile(url, text);
  return url.pathname;
}

/** One line of a {@link LineChart}. */
export interface Series {
  /** Legend label. */
  name: string;
  /** y value per x value of the chart (same order); `null` leaves a gap. */
  values: (number | null)[];
  /** CSS colour. */
  color: string;
  /** Dashed line. */
  dashed?: boolean;
}

/** A line chart over shared x values. */
export interface LineChart {
  /** Title above the plot. */
  title: string;
  /** x-axis label. */
  xLabel: string;
  /** y-axis label. */
  yLabel: string;
  /** The x positions (ascending). */
  x: number[];
  /** The lines. */
  series: Series[];
  /** Fixed y range; default: the data range padded to tidy steps. */
  yRange?: [number, number];
  /** Canvas width in pixels (default: 560 plus room for the legend). */
  width?: number;
  /** Canvas height in pixels (default 440). */
  height?: number;
}

/** Renders `chart` as a standalone SVG document (axes, grid, ticks, markers, legend). */
export function lineChartSvg(chart: LineChart): string {
  const height = chart.height ?? 440;
  // The legend sits right of the plot: make room for the longest name (~7.5 px per character).
  const legendWidth = 70 + 7.5 * Math.max(0, ...chart.series.map((s) => s.name.length));
  const width = chart.width ?? Math.round(560 + legendWidth);
  if (chart.x.length === 0) throw new RangeError("line chart needs at least one x value");
  for (const series of chart.series) {
    if (series.values.length !== chart.x.length) {
      throw new RangeError(
        `series "${series.name}" has ${series.values.length} values for ${chart.x.length} x values`,
      );
    }
  }
  const plot = { left: 70, right: width - legendWidth, top: 50, bottom: height - 60 };
  const [xMin, xMax] = [Math.min(...chart.x), Math.max(...chart.x)];
  const ys = chart.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const [yMin, yMax] = chart.yRange ?? niceRange(ys);
  const xSpan = xMax - xMin || 1;
  const px = (x: number) => plot.left + ((x - xMin) / xSpan) * (plot.right - plot.left);
  const py = (y: number) => plot.bottom - ((y - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);
  const f = (n: number) => n.toFixed(1);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="28" font-size="17" text-anchor="middle">${xml(chart.title)}</text>`,
  );
  const yStep = tickStep(yMax - yMin);
  for (let y = Math.ceil(yMin / yStep - 1e-9) * yStep; y <= yMax + 1e-9; y += yStep) {
    parts.push(
      `<line x1="${plot.left}" x2="${plot.right}" y1="${f(py(y))}" y2="${f(py(y))}" ` +
        `stroke="#e3e3e3"/>`,
      `<text x="${plot.left - 8}" y="${f(py(y) + 4)}" font-size="12" text-anchor="end">` +
        `${y.toFixed(decimalsFor(yStep))}</text>`,
    );
  }
  for (const x of chart.x) {
    parts.push(
      `<line x1="${f(px(x))}" x2="${f(px(x))}" y1="${plot.top}" y2="${plot.bottom}" ` +
        `stroke="#efefef"/>`,
      `<text x="${f(px(x))}" y="${plot.bottom + 18}" font-size="12" text-anchor="middle">` +
        `${x}</text>`,
    );
  }
  parts.push(
    `<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" ` +
      `height="${plot.bottom - plot.top}" fill="none" stroke="#444"/>`,
    `<text x="${(plot.left + plot.right) / 2}" y="${height - 18}" font-size="14" ` +
      `text-anchor="middle">${xml(chart.xLabel)}</text>`,
    `<text x="20" y="${(plot.top + plot.bottom) / 2}" font-size="14" text-anchor="middle" ` +
      `transform="rotate(-90 20 ${(plot.top + plot.bottom) / 2})">${xml(chart.yLabel)}</text>`,
  );
  chart.series.forEach((series, k) => {
    const dash = series.dashed ? ` stroke-dasharray="6 4"` : "";
    // Consecutive non-null points form one polyline; a null starts a new one.
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1) {
        parts.push(
          `<polyline points="${run.join(" ")}" fill="none" stroke="${series.color}" ` +
            `stroke-width="2.5"${dash}/>`,
        );
      }
      run = [];
    };
    series.values.forEach((value, i) => {
      if (value === null) return flush();
      run.push(`${f(px(chart.x[i]))},${f(py(value))}`);
      parts.push(
        `<circle cx="${f(px(chart.x[i]))}" cy="${f(py(value))}" r="4" fill="${series.color}"/>`,
      );
    });
    flush();
    const ly = plot.top + 10 + k * 24;
    parts.push(
      `<line x1="${plot.right + 16}" x2="${plot.right + 46}" y1="${ly}" y2="${ly}" ` +
        `stroke="${series.color}" stroke-width="2.5"${dash}/>`,
      `<text x="${plot.right + 54}" y="${ly + 4}" font-size="13">${xml(series.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** Rasterises an SVG document to a PNG file at `path` with sharp. */
export async function svgToPng(svg: string, path: string): Promise<void> {
  await sharp(new TextEncoder().encode(svg)).png().toFile(path);
}

/** A data range widened to multiples of a tidy tick step (a flat range gets some height). */
export function niceRange(values: readonly number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.05, hi + 0.05];
  const step = tickStep(hi - lo);
  // toPrecision drops float noise (0.6000000000000001 → 0.6).
  const tidy = (n: number) => Number(n.toPrecision(12));
  return [tidy(Math.floor(lo / step) * step), tidy(Math.ceil(hi / step) * step)];
}

/** A 1/2/5 × 10^k step giving about 5–10 ticks over `span`. */
function tickStep(span: number): number {
  const raw = span / 6;
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled < 1.5 ? 1 : scaled < 3.5 ? 2 : scaled < 7.5 ? 5 : 10) * power;
}

function decimalsFor(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

function xml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

function checkShape(table: Table): void {
  table.rows.forEach((row, i) => {
    if (row.length !== table.headers.length) {
      throw new RangeError(`table row ${i} has ${row.length} cells for ${table.headers.length}`);
    }
  });
}

function columnWidths(table: Table): number[] {
  checkShape(table);
  return table.headers.map((header, i) =>
    Math.max(header.length, ...table.rows.map((row) => row[i].length))
  );
}

function alignOf(table: Table, column: number): "left" | "right" {
  return table.align?.[column] ?? (column === 0 ? "left" : "right");
}

function pad(cell: string, width: number, align: "left" | "right"): string {
  return align === "left" ? cell.padEnd(width) : cell.padStart(width);
}

async function readCpuModel(): Promise<string> {
  // Deno needs --allow-all to read /proc, so ask lscpu (--allow-run) instead.
  try {
    const output = await new Deno.Command("lscpu", { stderr: "null" }).output();
    const text = new TextDecoder().decode(output.stdout);
    return text.match(/^Model name:\s*(.+)$/m)?.[1].trim() ?? "unknown CPU";
  } catch {
    return "unknown CPU";
  }
}

let commitAtStart: Promise<string> | undefined;

/**
 * The commit the benchmark's code was loaded from: the first call asks git, later calls return
 * that answer, so results written at the end of a long run name the commit they started at
 * even when commits landed meanwhile. Benchmark entry points call it first thing.
 */
export function startCommit(): Promise<string> {
  commitAtStart ??= gitCommit();
  return commitAtStart;
}

async function gitCommit(): Promise<string> {
  try {
    const git = (args: string[]) =>
      new Deno.Command("git", { args, cwd: new URL("..", import.meta.url), stderr: "null" })
        .output();
    const head = await git(["rev-parse", "--short", "HEAD"]);
    if (!head.success) return "unknown";
    const status = await git(["status", "--porcelain"]);
    const dirty = status.success && new TextDecoder().decode(status.stdout).trim() !== "";
    return new TextDecoder().decode(head.stdout).trim() + (dirty ? "+dirty" : "");
  } catch {
    return "unknown";
  }
}
