/**
 * The public verdict message (`inspect.<line>.verdict`, JSON): its zod schema, types and
 * constructors. The committed `verdict.schema.json` is generated from {@link VerdictSchema}
 * (`deno run -A src/bus/write_verdict_schema.ts`) and a test keeps the two in sync.
 *
 * Written with `zod/v4` (shipped inside the project's zod 3.25 package) because only v4 can
 * export JSON Schema; the verdict schema stands alone, so mixing it with the v3 config schemas
 * costs nothing.
 *
 * @module
 */
import { z } from "zod/v4";
import type { ImageErrorCode } from "../image/decode.ts";

/**
 * Why an image got a `rejected` verdict: the decoder's codes, the Image-Id checks, and
 * `processing_failed` for a message whose every delivery failed (`delivery.maxDeliver`).
 */
export const RejectionCodeSchema = z.enum([
  "empty",
  "too_large",
  "undecodable",
  "unsupported_type",
  "too_many_pixels",
  "missing_image_id",
  "invalid_image_id",
  "duplicate_image_id",
  "processing_failed",
  "not_scorable",
]).describe(
  "empty: zero-byte payload; too_large: payload above the byte limit; undecodable: not a " +
    "valid image of its type; unsupported_type: not JPEG, PNG or WebP; too_many_pixels: " +
    "width x height above the limit; missing_image_id: no or empty Image-Id header; " +
    "invalid_image_id: Image-Id longer than 256 bytes; duplicate_image_id: the Image-Id was " +
    "already used on this line; processing_failed: every delivery of the image failed " +
    "(error.message says why), it is not tried again; not_scorable: the model in use gave a " +
    "non-finite score for this image.",
);
/** A rejection code. */
export type RejectionCode = z.infer<typeof RejectionCodeSchema>;

// Compile-time proof that every decoder code is a rejection code.
const _decoderCodesAreRejectionCodes: RejectionCode = "empty" as ImageErrorCode;

const timestamp = z.iso.datetime({ offset: true });

const common = {
  line: z.string().describe("Production line id."),
  imageSeq: z.number().int().min(1).describe(
    "Sequence of the image message in the line's image stream (tells duplicates apart).",
  ),
  capturedAt: timestamp.nullable().describe(
    "The Captured-At header when present and valid RFC 3339, else null.",
  ),
  scoredAt: timestamp.describe("When the verdict was made (RFC 3339, UTC)."),
};

/** A box in the original image's pixels. */
export const RegionSchema = z.object({
  x: z.number().int().min(0).describe("Left column, in the original image's pixels."),
  y: z.number().int().min(0).describe("Top row, in the original image's pixels."),
  width: z.number().int().min(1),
  height: z.number().int().min(1),
});
/** A region of the original image. */
export type Region = z.infer<typeof RegionSchema>;

/** Where a scored image's heatmap is and how to read it. */
export const HeatmapRefSchema = z.object({
  subject: z.string().describe(
    "inspect.<line>.heatmap.<key>: fetch the last message on this subject from `stream`.",
  ),
  stream: z.string().describe("JetStream stream holding it (limited in age and bytes)."),
  format: z.literal("png").describe("8-bit greyscale PNG of the combined anomaly map."),
  width: z.number().int().min(1).describe("Map width in pixels (the model's input size)."),
  height: z.number().int().min(1),
  scaleMax: z.number().positive().describe(
    "Byte b stands for the map value b / 255 * scaleMax (linear from 0; negative values are " +
      "0, values above scaleMax are 255); scaleMax = max(2 * threshold, score), or 1 when that is not positive.",
  ),
});
/** A heatmap reference. */
export type HeatmapRef = z.infer<typeof HeatmapRefSchema>;

/** Verdict of an image scored by a published model version. */
export const ScoredVerdictSchema = z.object({
  status: z.literal("scored"),
  imageId: z.string(),
  ...common,
  anomalous: z.boolean().describe("score > threshold."),
  score: z.number().describe("Image score: maximum of the combined, map-normalised anomaly map."),
  stScore: z.number().describe("Maximum of the normalised student-teacher map alone."),
  aeScore: z.number().describe("Maximum of the normalised autoencoder map alone."),
  threshold: z.number().describe("Threshold in force (see the threshold policy)."),
  modelVersion: z.number().int().min(1),
  modelStep: z.number().int().min(0).describe(
    "Training steps of the model version that scored the image: how mature that model is " +
      "(scores of young models are less reliable; see the README's maturity section).",
  ),
  originalSize: z.object({ width: z.number().int().min(1), height: z.number().int().min(1) })
    .nullable().describe("The image's size as the camera sent it; null if unknown."),
  region: RegionSchema.nullable().describe(
    "Bounding box, in the original image's pixels, of the most anomalous region: the " +
      "connected part of the anomaly map above the threshold around its peak. Null when the " +
      "image is not anomalous or its original size is unknown.",
  ),
  anomalousFraction: z.number().min(0).max(1).nullable().describe(
    "Share of the image whose anomaly map is above the threshold; null without a map.",
  ),
  heatmap: HeatmapRefSchema.nullable().describe(
    "Where the anomaly map is published; null when heatmaps are off.",
  ),
});

/** Verdict of an image that arrived before the first model version existed. */
export const WarmingUpVerdictSchema = z.object({
  status: z.literal("warming_up"),
  imageId: z.string(),
  ...common,
  anomalous: z.null(),
  score: z.null(),
  threshold: z.null(),
  modelVersion: z.null(),
});

/** Verdict of an image the pipeline refused. */
export const RejectedVerdictSchema = z.object({
  status: z.literal("rejected"),
  imageId: z.string().nullable().describe("Null when the Image-Id header was missing or empty."),
  ...common,
  anomalous: z.null(),
  score: z.null(),
  threshold: z.null(),
  modelVersion: z.null(),
  error: z.object({ code: RejectionCodeSchema, message: z.string() }),
});

/** One verdict per image message, published on `inspect.<line>.verdict`. */
export const VerdictSchema = z.discriminatedUnion("status", [
  ScoredVerdictSchema,
  WarmingUpVerdictSchema,
  RejectedVerdictSchema,
]).meta({
  title: "Verdict",
  description: "One verdict per image message on inspect.<line>.image, published as JSON on " +
    "inspect.<line>.verdict.",
});
/** A verdict. */
export type Verdict = z.infer<typeof VerdictSchema>;
/** A `scored` verdict. */
export type ScoredVerdict = z.infer<typeof ScoredVerdictSchema>;
/** A `warming_up` verdict. */
export type WarmingUpVerdict = z.infer<typeof WarmingUpVerdictSchema>;
/** A `rejected` verdict. */
export type RejectedVerdict = z.infer<typeof RejectedVerdictSchema>;
/** Every verdict status. */
export type VerdictStatus = Verdict["status"];

/** The verdict JSON Schema as committed in `src/bus/verdict.schema.json`. */
export function verdictJsonSchema(): Record<string, unknown> {
  // "input" leaves objects open (no additionalProperties: false), so consumers that validate
  // keep working when a field is added.
  return z.toJSONSchema(VerdictSchema, { io: "input" }) as Record<string, unknown>;
}

/** Path of the committed JSON Schema file. */
export const VERDICT_SCHEMA_URL: URL = new URL("./verdict.schema.json", import.meta.url);

/** What every verdict of one image message carries. */
export interface VerdictContext {
  /** Line id. */
  line: string;
  /** Stream sequence of the image message. */
  imageSeq: number;
  /** Valid Captured-At or null. */
  capturedAt: string | null;
}

/** Builds a `rejected` verdict. */
export function rejectedVerdict(
  context: VerdictContext,
  imageId: string | null,
  code: RejectionCode,
  message: string,
  now: Date = new Date(),
): RejectedVerdict {
  return {
    status: "rejected",
    imageId,
    ...context,
    scoredAt: now.toISOString(),
    anomalous: null,
    score: null,
    threshold: null,
    modelVersion: null,
    error: { code, message },
  };
}

/** Builds a `warming_up` verdict. */
export function warmingUpVerdict(
  context: VerdictContext,
  imageId: string,
  now: Date = new Date(),
): WarmingUpVerdict {
  return {
    status: "warming_up",
    imageId,
    ...context,
    scoredAt: now.toISOString(),
    anomalous: null,
    score: null,
    threshold: null,
    modelVersion: null,
  };
}

/** Scores of one image and the decision context they were judged in. */
export interface ScoredFields {
  /** Combined image score. */
  score: number;
  /** Student–teacher score. */
  stScore: number;
  /** Autoencoder score. */
  aeScore: number;
  /** Threshold in force. */
  threshold: number;
  /** Model version that scored it. */
  modelVersion: number;
  /** Training steps that version had taken. */
  modelStep: number;
}

/** Where in the image: what a scored verdict says about its anomaly map. */
export interface Localisation {
  /** The image's original size, or null. */
  originalSize: { width: number; height: number } | null;
  /** The most anomalous region in original pixels, or null. */
  region: Region | null;
  /** Share of the image above the threshold. */
  anomalousFraction: number | null;
  /** The published heatmap, or null. */
  heatmap: HeatmapRef | null;
}

/** A verdict without a map (heatmaps off, or made by a caller that has none). */
export const NO_LOCALISATION: Localisation = {
  originalSize: null,
  region: null,
  anomalousFraction: null,
  heatmap: null,
};

/** Builds a `scored` verdict; `anomalous` is `score > threshold`. */
export function scoredVerdict(
  context: VerdictContext,
  imageId: string,
  fields: ScoredFields,
  now: Date = new Date(),
  localisation: Localisation = NO_LOCALISATION,
): ScoredVerdict {
  return {
    status: "scored",
    imageId,
    ...context,
    scoredAt: now.toISOString(),
    anomalous: fields.score > fields.threshold,
    ...fields,
    ...localisation,
  };
}

/** Parses a verdict message body, throwing a zod error naming the bad field. */
export function parseVerdict(bytes: Uint8Array): Verdict {
  return VerdictSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
}
