/**
 * Inspection surfaces with local defects and their ground-truth masks: the images of
 * `deno task bench:inspect`. Seven surfaces — three CC0 photographs (`brick`, `grass`,
 * `gravel` from Debian's python3-skimage, see `skimage_textures.ts`), three procedural textures
 * (`metal` brushed steel, `fabric` plain weave, `wood` grain) and one structured object (`pcb`,
 * a board whose components sit at fixed places) — each rendered at `side` px (≥ 256 for the
 * benchmark) from a seed, so the same (surface, seed) always gives the same pixels.
 *
 * Defect kinds (every surface takes every kind):
 * - `hole`: a dark pit with a soft rim;
 * - `stain`: a translucent coloured blot;
 * - `scratch`: a thin bright or dark straight line;
 * - `foreign`: a patch of foreign material (coarse noise in another colour);
 * - `missing`: material missing — on `pcb` a whole component is gone (bare board), on textures
 *   a patch has lost its texture (its mean colour, a worn or filled spot);
 * - `shifted`: a region displaced — on `pcb` a component is moved off its place, on textures a
 *   patch is replaced by the neighbouring content (a misregistered patch).
 *
 * Defect sizes are shares of the image area: `small` ≈ 0.1 %, `medium` ≈ 0.6 %, `large` ≈ 3 %
 * (the mask's actual share is recorded with each image).
 *
 * Pure TypeScript: no I/O (photographs come in as greyscale pixel arrays).
 *
 * @module
 */
import { SeededRandom } from "../util/prng.ts";

/** Surfaces taken from photographs. */
export const PHOTO_SURFACES = ["brick", "grass", "gravel"] as const;
/** Surfaces generated procedurally. */
export const PROCEDURAL_SURFACES = ["metal", "fabric", "wood", "pcb"] as const;
/** Every surface. */
export const SURFACES: readonly Surface[] = [...PHOTO_SURFACES, ...PROCEDURAL_SURFACES];
/** A surface name. */
export type Surface = (typeof PHOTO_SURFACES)[number] | (typeof PROCEDURAL_SURFACES)[number];
/** A photographic surface name. */
export type PhotoSurface = (typeof PHOTO_SURFACES)[number];

/** Defect kinds. */
export const DEFECT_KINDS = ["hole", "stain", "scratch", "foreign", "missing", "shifted"] as const;
/** A defect kind. */
export type DefectKind = (typeof DEFECT_KINDS)[number];

/** Defect sizes and the share of the image area each aims at. */
export const DEFECT_SIZES = { small: 0.001, medium: 0.006, large: 0.03 } as const;
/** A defect size. */
export type DefectSize = keyof typeof DEFECT_SIZES;
/** Every defect size, smallest first. */
export const DEFECT_SIZE_NAMES: readonly DefectSize[] = ["small", "medium", "large"];

/** A greyscale photograph in [0, 1], row-major. */
export interface GreyImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width × height` values in [0, 1]. */
  pixels: Float32Array;
}

/** What to render. */
export interface SurfaceSpec {
  /** The surface. */
  surface: Surface;
  /** Seed of this image (pose, lighting, texture phase, defect placement). */
  seed: number;
  /** Side of the square image in pixels (≥ 64). */
  side: number;
  /** The defect to add, if any. */
  defect?: { kind: DefectKind; size: DefectSize };
  /** The photograph of a photographic surface (at least `side` px each way). */
  photo?: GreyImage;
}

/** A rendered image with its ground truth. */
export interface SurfaceImage {
  /** `side × side × 3` RGB values in [0, 1] (HWC), the detector's input layout. */
  pixels: Float32Array;
  /** `side × side` ground truth: 1 where the defect changed the image. */
  mask: Uint8Array;
  /** Side in pixels. */
  side: number;
  /** Whether a defect was added. */
  anomalous: boolean;
  /** The defect, if any, with the mask's share of the image area. */
  defect: { kind: DefectKind; size: DefectSize; areaFraction: number } | null;
}

/** Renders one image of `spec.surface`, with `spec.defect` if given. */
export function renderSurface(spec: SurfaceSpec): SurfaceImage {
  const { side, surface } = spec;
  if (!Number.isInteger(side) || side < 64) {
    throw new RangeError(`side must be an integer >= 64, got ${side}`);
  }
  const random = new SeededRandom(spec.seed);
  const canvas = new Canvas(side);
  const layout = surface === "pcb" ? pcbLayout(side) : null;
  switch (surface) {
    case "brick":
    case "grass":
    case "gravel":
      if (!spec.photo) throw new Error(`surface ${surface} needs its photograph (spec.photo)`);
      drawPhoto(canvas, spec.photo, random);
      break;
    case "metal":
      drawBrushedMetal(canvas, random);
      break;
    case "fabric":
      drawFabric(canvas, random);
      break;
    case "wood":
      drawWood(canvas, random);
      break;
    case "pcb":
      drawPcb(canvas, layout!, random);
      break;
    default: {
      const unknown: never = surface;
      throw new Error(`unknown surface ${unknown}`);
    }
  }
  const mask = new Uint8Array(side * side);
  let defect: SurfaceImage["defect"] = null;
  if (spec.defect) {
    const { kind, size } = spec.defect;
    if (!(size in DEFECT_SIZES)) throw new RangeError(`unknown defect size ${size}`);
    const area = DEFECT_SIZES[size] * side * side;
    // The defect's own draws come from a separate stream so a defect never changes the surface.
    const defectRandom = new SeededRandom((spec.seed * 7919 + 17) | 0);
    if (surface === "pcb" && (kind === "missing" || kind === "shifted")) {
      pcbComponentDefect(canvas, layout!, kind, area, defectRandom, mask);
    } else {
      addDefect(canvas, kind, area, defectRandom, mask);
    }
    let marked = 0;
    for (const m of mask) marked += m;
    defect = { kind, size, areaFraction: marked / (side * side) };
  }
  addSensorNoise(canvas, random);
  return { pixels: canvas.rgb, mask, side, anomalous: defect !== null, defect };
}

/** RGB float canvas with a few drawing helpers. */
class Canvas {
  readonly side: number;
  readonly rgb: Float32Array;
  constructor(side: number) {
    this.side = side;
    this.rgb = new Float32Array(side * side * 3);
  }
  set(x: number, y: number, r: number, g: number, b: number): void {
    const i = (y * this.side + x) * 3;
    this.rgb[i] = r;
    this.rgb[i + 1] = g;
    this.rgb[i + 2] = b;
  }
  get(x: number, y: number, c: number): number {
    return this.rgb[(y * this.side + x) * 3 + c];
  }
  /** Blends colour `rgb` into pixel (x, y) with weight `alpha`. */
  blend(x: number, y: number, rgb: readonly number[], alpha: number): void {
    if (x < 0 || y < 0 || x >= this.side || y >= this.side || alpha <= 0) return;
    const i = (y * this.side + x) * 3;
    for (let c = 0; c < 3; c++) this.rgb[i + c] += (rgb[c] - this.rgb[i + c]) * Math.min(alpha, 1);
  }
}

/** Smooth value noise on a `cells × cells` lattice, sampled at (u, v) ∈ [0, 1)². */
class ValueNoise {
  readonly #cells: number;
  readonly #values: Float32Array;
  constructor(cells: number, random: SeededRandom) {
    this.#cells = cells;
    this.#values = new Float32Array((cells + 1) * (cells + 1));
    for (let i = 0; i < this.#values.length; i++) this.#values[i] = random.next();
  }
  /** Noise value in [0, 1] at (u, v) (clamped to the lattice). */
  at(u: number, v: number): number {
    const n = this.#cells;
    const x = Math.min(Math.max(u, 0), 0.999999) * n;
    const y = Math.min(Math.max(v, 0), 0.999999) * n;
    const x0 = Math.floor(x), y0 = Math.floor(y);
    const fx = smooth(x - x0), fy = smooth(y - y0);
    const row = n + 1;
    const a = this.#values[y0 * row + x0], b = this.#values[y0 * row + x0 + 1];
    const c = this.#values[(y0 + 1) * row + x0], d = this.#values[(y0 + 1) * row + x0 + 1];
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy;
  }
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** A random `side`-px crop of the photograph, maybe mirrored, with a small exposure change. */
function drawPhoto(canvas: Canvas, photo: GreyImage, random: SeededRandom): void {
  const { side } = canvas;
  if (photo.width < side || photo.height < side) {
    throw new RangeError(
      `photograph is ${photo.width}×${photo.height}, smaller than the ${side}-px image`,
    );
  }
  const x0 = random.int(photo.width - side + 1);
  const y0 = random.int(photo.height - side + 1);
  const mirror = random.next() < 0.5;
  const gain = random.uniform(0.9, 1.1);
  const offset = random.uniform(-0.04, 0.04);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const sx = x0 + (mirror ? side - 1 - x : x);
      const v = clamp01(photo.pixels[(y0 + y) * photo.width + sx] * gain + offset);
      canvas.set(x, y, v, v, v);
    }
  }
}

/** Brushed steel: streaks along a near-horizontal direction, soft lighting gradient. */
function drawBrushedMetal(canvas: Canvas, random: SeededRandom): void {
  const { side } = canvas;
  const angle = random.uniform(-0.05, 0.05);
  const base = random.uniform(0.55, 0.65);
  // Streaks: per-"row" (across the brushing direction) noise, slowly varying along it.
  const rows = side * 2;
  const streak = new Float32Array(rows);
  for (let i = 0; i < rows; i++) streak[i] = random.normal();
  const along = new ValueNoise(6, random);
  const light = new ValueNoise(2, random);
  const cos = Math.cos(angle), sin = Math.sin(angle);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const across = (-x * sin + y * cos) + side / 2;
      const r = Math.min(rows - 1, Math.max(0, Math.floor(across)));
      const v = base + 0.05 * streak[r] * (0.6 + 0.8 * along.at(x / side, r / rows)) +
        0.12 * (light.at(x / side, y / side) - 0.5);
      canvas.set(x, y, clamp01(v), clamp01(v * 1.01), clamp01(v * 1.04));
    }
  }
}

/** Plain weave: alternating warp and weft threads with per-thread colour jitter. */
function drawFabric(canvas: Canvas, random: SeededRandom): void {
  const { side } = canvas;
  const period = 8;
  const phaseX = random.int(period * 2), phaseY = random.int(period * 2);
  const hue = [random.uniform(0.25, 0.32), random.uniform(0.3, 0.38), random.uniform(0.5, 0.6)];
  const threads = Math.ceil(side / period) + 4;
  const warp = Array.from({ length: threads }, () => 1 + 0.08 * random.normal());
  const weft = Array.from({ length: threads }, () => 1 + 0.08 * random.normal());
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const gx = x + phaseX, gy = y + phaseY;
      const tx = Math.floor(gx / period), ty = Math.floor(gy / period);
      const over = (tx + ty) % 2 === 0; // warp on top in a checkerboard of cells
      const fx = (gx % period) / period, fy = (gy % period) / period;
      // Thread profile: bright in the middle of the thread on top, dark at its edges.
      const profile = over ? Math.sin(Math.PI * fx) : Math.sin(Math.PI * fy);
      const jitter = over ? warp[tx % threads] : weft[ty % threads];
      const shade = (0.55 + 0.6 * profile) * jitter;
      canvas.set(x, y, clamp01(hue[0] * shade), clamp01(hue[1] * shade), clamp01(hue[2] * shade));
    }
  }
}

/** Wood grain: growth rings bent by low-frequency noise, in brown tones. */
function drawWood(canvas: Canvas, random: SeededRandom): void {
  const { side } = canvas;
  const warp = new ValueNoise(4, random);
  const fine = new ValueNoise(32, random);
  const rings = random.uniform(14, 20);
  const offset = random.next();
  const slope = random.uniform(-0.15, 0.15);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const u = x / side, v = y / side;
      const t = (v + slope * u) * rings + 2.2 * warp.at(u, v) + offset * rings;
      const ring = 0.5 + 0.5 * Math.sin(2 * Math.PI * t);
      const grain = Math.pow(ring, 3) * 0.35 + 0.1 * fine.at(u, v);
      const l = 0.62 - grain;
      canvas.set(x, y, clamp01(l * 1.05), clamp01(l * 0.72), clamp01(l * 0.45));
    }
  }
}

/** A component of the PCB layout. */
interface PcbComponent {
  x: number;
  y: number;
  w: number;
  h: number;
  colour: [number, number, number];
}

/** The board's fixed layout (the same for every image of a side: one product). */
function pcbLayout(side: number): { components: PcbComponent[]; traces: number[][] } {
  const random = new SeededRandom(4242 + side);
  const components: PcbComponent[] = [];
  const unit = side / 16;
  // Chips, resistors and capacitors on a coarse grid, never overlapping.
  for (let gy = 1; gy < 15; gy += 3) {
    for (let gx = 1; gx < 15; gx += 3) {
      // Large chips, small chips, resistors, capacitors: bodies from ~3 % to ~0.1 % of the
      // board, so a missing or shifted component comes in every defect size.
      const kind = random.int(4);
      const [w, h] = [[2.5, 2.0], [1.4, 0.9], [0.8, 0.4], [0.6, 0.6]][kind];
      const colour: [number, number, number] = [
        [0.1, 0.1, 0.12],
        [0.16, 0.15, 0.15],
        [0.75, 0.62, 0.42],
        [0.55, 0.45, 0.2],
      ][kind] as [number, number, number];
      components.push({
        x: Math.round((gx + random.uniform(0, 2.6 - w)) * unit),
        y: Math.round((gy + random.uniform(0, 2.6 - h)) * unit),
        w: Math.max(3, Math.round(w * unit)),
        h: Math.max(3, Math.round(h * unit)),
        colour,
      });
    }
  }
  const traces: number[][] = [];
  for (let i = 0; i < 14; i++) {
    const horizontal = random.next() < 0.5;
    const at = Math.round(random.uniform(0.5, 15.5) * unit);
    const from = Math.round(random.uniform(0, 8) * unit);
    const to = from + Math.round(random.uniform(3, 8) * unit);
    traces.push(horizontal ? [from, at, to, at] : [at, from, at, to]);
  }
  return { components, traces };
}

const BOARD: readonly number[] = [0.1, 0.36, 0.18];
const COPPER: readonly number[] = [0.72, 0.6, 0.3];

/**
 * The PCB: green solder mask, copper traces, components with metal pads. The whole board is
 * shifted by up to 2 px and lit unevenly per image (the line's normal variation).
 */
function drawPcb(
  canvas: Canvas,
  layout: ReturnType<typeof pcbLayout>,
  random: SeededRandom,
): void {
  const { side } = canvas;
  const dx = random.int(5) - 2, dy = random.int(5) - 2;
  const light = new ValueNoise(2, random);
  const grain = new ValueNoise(48, random);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const l = 0.85 + 0.3 * light.at(x / side, y / side) + 0.1 * (grain.at(x / side, y / side));
      canvas.set(x, y, BOARD[0] * l, BOARD[1] * l, BOARD[2] * l);
    }
  }
  const width = Math.max(1, Math.round(side / 128));
  for (const [x0, y0, x1, y1] of layout.traces) {
    fillRect(canvas, x0 + dx, y0 + dy, x1 - x0 + width, y1 - y0 + width, COPPER);
  }
  for (const c of layout.components) drawComponent(canvas, { ...c, x: c.x + dx, y: c.y + dy });
}

function drawComponent(canvas: Canvas, c: PcbComponent): void {
  const pad = Math.max(1, Math.round(Math.min(c.w, c.h) / 4));
  // Pads at both ends (the solder joints), then the body.
  fillRect(canvas, c.x - pad, c.y, pad * 2, c.h, [0.8, 0.8, 0.78]);
  fillRect(canvas, c.x + c.w - pad, c.y, pad * 2, c.h, [0.8, 0.8, 0.78]);
  fillRect(canvas, c.x, c.y, c.w, c.h, c.colour);
}

function fillRect(
  canvas: Canvas,
  x: number,
  y: number,
  w: number,
  h: number,
  rgb: readonly number[],
  mask?: Uint8Array,
): void {
  for (let yy = Math.max(0, y); yy < Math.min(canvas.side, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(canvas.side, x + w); xx++) {
      canvas.set(xx, yy, rgb[0], rgb[1], rgb[2]);
      if (mask) mask[yy * canvas.side + xx] = 1;
    }
  }
}

/**
 * Removes or moves the component whose area is closest to `area` (with its pads): `missing`
 * paints bare board over it, `shifted` draws it again displaced by about half its size.
 */
function pcbComponentDefect(
  canvas: Canvas,
  layout: ReturnType<typeof pcbLayout>,
  kind: "missing" | "shifted",
  area: number,
  random: SeededRandom,
  mask: Uint8Array,
): void {
  // Components within a factor 2.5 of the area, else the closest one.
  const ranked = layout.components
    .map((c) => ({ c, ratio: Math.abs(Math.log((c.w * c.h) / area)) }))
    .sort((a, b) => a.ratio - b.ratio);
  const near = ranked.filter((r) => r.ratio < Math.log(2.5));
  const { c } = random.pick(near.length ? near : ranked.slice(0, 1));
  // The board shift of this image is not known here: read the component's place back as the
  // bounding box of its body colour near the layout position.
  const at = locateComponent(canvas, c);
  const pad = Math.max(1, Math.round(Math.min(c.w, c.h) / 4));
  const box = { x: at.x - pad, y: at.y, w: c.w + 2 * pad, h: c.h };
  const board = boardColourNear(canvas, box);
  fillRect(canvas, box.x, box.y, box.w, box.h, board, mask);
  if (kind === "shifted") {
    const sx = Math.round((random.next() < 0.5 ? -1 : 1) * Math.max(3, c.w * 0.5));
    const sy = Math.round((random.next() < 0.5 ? -1 : 1) * Math.max(2, c.h * 0.4));
    const moved = { ...c, x: at.x + sx, y: at.y + sy };
    drawComponent(canvas, moved);
    markRect(mask, canvas.side, moved.x - pad, moved.y, c.w + 2 * pad, c.h);
  }
}

function markRect(mask: Uint8Array, side: number, x: number, y: number, w: number, h: number) {
  for (let yy = Math.max(0, y); yy < Math.min(side, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(side, x + w); xx++) mask[yy * side + xx] = 1;
  }
}

/** Where component `c` was drawn in this image (the layout place plus the board's shift). */
function locateComponent(canvas: Canvas, c: PcbComponent): { x: number; y: number } {
  let best = { x: c.x, y: c.y, error: Infinity };
  for (let dy = -2; dy <= 2; dy++) {
    for (let dx = -2; dx <= 2; dx++) {
      let error = 0;
      for (let yy = c.y + dy; yy < c.y + dy + c.h; yy++) {
        for (let xx = c.x + dx; xx < c.x + dx + c.w; xx++) {
          if (xx < 0 || yy < 0 || xx >= canvas.side || yy >= canvas.side) continue;
          for (let ch = 0; ch < 3; ch++) error += Math.abs(canvas.get(xx, yy, ch) - c.colour[ch]);
        }
      }
      if (error < best.error) best = { x: c.x + dx, y: c.y + dy, error };
    }
  }
  return best;
}

/** The board's colour just above `box` (the lighting varies over the board). */
function boardColourNear(
  canvas: Canvas,
  box: { x: number; y: number; w: number; h: number },
): number[] {
  const y = Math.max(0, box.y - 2);
  const x = Math.min(canvas.side - 1, Math.max(0, box.x + Math.floor(box.w / 2)));
  const sampled = [0, 1, 2].map((c) => canvas.get(x, y, c));
  // A trace or pad above would give the wrong colour: fall back to the nominal board colour.
  return sampled[1] > sampled[0] * 1.4 ? sampled : BOARD.slice();
}

/** Adds a texture-surface defect of `kind` covering about `area` pixels, marking `mask`. */
function addDefect(
  canvas: Canvas,
  kind: DefectKind,
  area: number,
  random: SeededRandom,
  mask: Uint8Array,
): void {
  const { side } = canvas;
  const margin = Math.ceil(Math.sqrt(area)) + 2;
  const cx = random.uniform(margin, side - margin);
  const cy = random.uniform(margin, side - margin);
  switch (kind) {
    case "hole": {
      const radius = Math.sqrt(area / Math.PI);
      disc(canvas, cx, cy, radius, (d) => {
        // Dark pit, a slightly brighter rim where the material is torn.
        if (d > 0.85) return { rgb: [0.75, 0.72, 0.68], alpha: 0.5 };
        return { rgb: [0.03, 0.03, 0.03], alpha: 0.95 };
      }, mask);
      break;
    }
    case "stain": {
      const radius = Math.sqrt(area / Math.PI);
      const colour = random.pick([[0.55, 0.3, 0.05], [0.2, 0.3, 0.6], [0.6, 0.1, 0.1]]);
      disc(
        canvas,
        cx,
        cy,
        radius,
        (d) => ({ rgb: colour, alpha: 0.65 * (1 - d * d) + 0.15 }),
        mask,
      );
      break;
    }
    case "scratch": {
      // Thin and long: width grows slowly with area, the length takes the rest (≤ 0.8 side).
      const width = Math.max(1.5, Math.sqrt(area) / 9);
      const length = Math.min(0.8 * side, area / width);
      const angle = random.uniform(0, Math.PI);
      const bright = random.next() < 0.5;
      line(
        canvas,
        cx,
        cy,
        angle,
        length,
        width,
        bright ? [0.95, 0.95, 0.92] : [0.05, 0.05, 0.05],
        mask,
      );
      break;
    }
    case "foreign": {
      const half = Math.sqrt(area) / 2;
      const noise = new ValueNoise(4, random);
      const tint = random.pick([[0.9, 0.85, 0.3], [0.3, 0.75, 0.85], [0.85, 0.45, 0.75]]);
      for (let y = Math.floor(cy - half); y < Math.ceil(cy + half); y++) {
        for (let x = Math.floor(cx - half); x < Math.ceil(cx + half); x++) {
          const n = noise.at((x - cx + half) / (2 * half), (y - cy + half) / (2 * half));
          canvas.set(x, y, tint[0] * (0.5 + n), tint[1] * (0.5 + n), tint[2] * (0.5 + n));
          mask[y * side + x] = 1;
        }
      }
      break;
    }
    case "missing": {
      // The texture is gone: the patch takes its own mean colour (with a little shading).
      const radius = Math.sqrt(area / Math.PI);
      const mean = [0, 0, 0];
      let n = 0;
      forDisc(side, cx, cy, radius, (x, y) => {
        for (let c = 0; c < 3; c++) mean[c] += canvas.get(x, y, c);
        n++;
      });
      const fill = mean.map((m) => m / Math.max(n, 1));
      disc(canvas, cx, cy, radius, () => ({ rgb: fill, alpha: 1 }), mask);
      break;
    }
    case "shifted": {
      // A square patch shows the content from beside it: a misregistered region.
      const s = Math.round(Math.sqrt(area));
      const x0 = Math.round(cx - s / 2), y0 = Math.round(cy - s / 2);
      const shift = Math.max(4, Math.round(s * 0.6));
      const fromX = x0 + shift <= side - s ? x0 + shift : x0 - shift;
      const fromY = y0 + Math.round(shift / 2) <= side - s ? y0 + Math.round(shift / 2) : y0;
      const copy = new Float32Array(s * s * 3);
      for (let y = 0; y < s; y++) {
        for (let x = 0; x < s; x++) {
          for (let c = 0; c < 3; c++) {
            copy[(y * s + x) * 3 + c] = canvas.get(fromX + x, fromY + y, c);
          }
        }
      }
      for (let y = 0; y < s; y++) {
        for (let x = 0; x < s; x++) {
          const i = (y * s + x) * 3;
          canvas.set(x0 + x, y0 + y, copy[i], copy[i + 1], copy[i + 2]);
          mask[(y0 + y) * side + x0 + x] = 1;
        }
      }
      break;
    }
    default: {
      const unknown: never = kind;
      throw new Error(`unknown defect kind ${unknown}`);
    }
  }
}

function forDisc(
  side: number,
  cx: number,
  cy: number,
  radius: number,
  visit: (x: number, y: number, d: number) => void,
): void {
  for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(side - 1, cy + radius); y++) {
    for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(side - 1, cx + radius); x++) {
      const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy) / radius;
      if (d <= 1) visit(x, y, d);
    }
  }
}

function disc(
  canvas: Canvas,
  cx: number,
  cy: number,
  radius: number,
  paint: (d: number) => { rgb: readonly number[]; alpha: number },
  mask: Uint8Array,
): void {
  forDisc(canvas.side, cx, cy, radius, (x, y, d) => {
    const { rgb, alpha } = paint(d);
    canvas.blend(x, y, rgb, alpha);
    mask[y * canvas.side + x] = 1;
  });
}

function line(
  canvas: Canvas,
  cx: number,
  cy: number,
  angle: number,
  length: number,
  width: number,
  rgb: readonly number[],
  mask: Uint8Array,
): void {
  const dx = Math.cos(angle), dy = Math.sin(angle);
  const reach = length / 2 + width;
  for (let y = Math.floor(cy - reach); y <= Math.ceil(cy + reach); y++) {
    for (let x = Math.floor(cx - reach); x <= Math.ceil(cx + reach); x++) {
      if (x < 0 || y < 0 || x >= canvas.side || y >= canvas.side) continue;
      const px = x + 0.5 - cx, py = y + 0.5 - cy;
      const along = px * dx + py * dy;
      const across = Math.abs(-px * dy + py * dx);
      if (Math.abs(along) > length / 2 || across > width / 2) continue;
      canvas.blend(x, y, rgb, 0.9);
      mask[y * canvas.side + x] = 1;
    }
  }
}

/** Camera noise: a little Gaussian noise on every pixel. */
function addSensorNoise(canvas: Canvas, random: SeededRandom): void {
  const sigma = 0.012;
  for (let i = 0; i < canvas.rgb.length; i++) {
    canvas.rgb[i] = clamp01(canvas.rgb[i] + sigma * random.normal());
  }
}

/**
 * Averages `factor × factor` blocks: an image of `side` px to `side / factor` px (HWC RGB).
 * The detector input of a camera image at a lower resolution, without resampling artefacts.
 */
export function downsampleRgb(pixels: Float32Array, side: number, factor: number): Float32Array {
  checkFactor(side, factor);
  const out = side / factor;
  const result = new Float32Array(out * out * 3);
  const scale = 1 / (factor * factor);
  for (let y = 0; y < side; y++) {
    const oy = Math.floor(y / factor);
    for (let x = 0; x < side; x++) {
      const o = (oy * out + Math.floor(x / factor)) * 3;
      const i = (y * side + x) * 3;
      result[o] += pixels[i] * scale;
      result[o + 1] += pixels[i + 1] * scale;
      result[o + 2] += pixels[i + 2] * scale;
    }
  }
  return result;
}

/** Downsamples a mask by `factor`: a block is marked when any of its pixels is. */
export function downsampleMask(mask: Uint8Array, side: number, factor: number): Uint8Array {
  checkFactor(side, factor);
  const out = side / factor;
  const result = new Uint8Array(out * out);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      if (mask[y * side + x]) result[Math.floor(y / factor) * out + Math.floor(x / factor)] = 1;
    }
  }
  return result;
}

/** The `tile`-px tiles of an HWC RGB image, row by row (side must be a multiple of tile). */
export function tilesOf(pixels: Float32Array, side: number, tile: number): Float32Array[] {
  checkFactor(side, side / tile);
  const n = side / tile;
  const tiles: Float32Array[] = [];
  for (let ty = 0; ty < n; ty++) {
    for (let tx = 0; tx < n; tx++) {
      const out = new Float32Array(tile * tile * 3);
      for (let y = 0; y < tile; y++) {
        const from = ((ty * tile + y) * side + tx * tile) * 3;
        out.set(pixels.subarray(from, from + tile * 3), y * tile * 3);
      }
      tiles.push(out);
    }
  }
  return tiles;
}

function checkFactor(side: number, factor: number): void {
  if (!Number.isInteger(factor) || factor < 1 || side % factor !== 0) {
    throw new RangeError(`${side} px is not divisible by ${factor}`);
  }
}
