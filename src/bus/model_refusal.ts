/**
 * The public report of a refused model version (`inspect.<line>.model.refused`, JSON): which
 * version, which stage refused it, and why. The stage keeps serving with what it had.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import { z } from "zod/v4";
import { modelRefusedSubject } from "./subjects.ts";

/** Why a model version was refused. */
export const ModelRefusalCodeSchema = z.enum([
  "foreign_line",
  "too_large",
  "missing",
  "unsigned",
  "bad_signature",
  "malformed",
  "architecture",
  "not_finite",
  "not_warm",
  "reference_scores",
]).describe(
  "foreign_line: its record names another line; too_large: above models.maxBytes; missing: " +
    "its object is not stored; unsigned / bad_signature: a signing key is configured and the " +
    "version is not signed with it; malformed: not a checkpoint or a header outside the " +
    "strict schema; architecture: another model configuration (teacher included) than the " +
    "line's; not_finite: a weight or statistic is NaN or infinite; not_warm: no map " +
    "normalisation; reference_scores: reference images score to non-finite values.",
);
/** A refusal code. */
export type ModelRefusalCode = z.infer<typeof ModelRefusalCodeSchema>;

/** One refused version. */
export const ModelRefusalSchema = z.object({
  line: z.string(),
  version: z.number().int().min(1),
  stage: z.enum(["scorer", "trainer"]).describe("The stage that refused it."),
  code: ModelRefusalCodeSchema,
  reason: z.string().describe("One sentence for people."),
  servingVersion: z.number().int().min(1).nullable().describe(
    "The version the stage keeps using (null: none yet, or a fresh model for the trainer).",
  ),
  at: z.iso.datetime({ offset: true }),
}).strict();
/** A model refusal report. */
export type ModelRefusal = z.infer<typeof ModelRefusalSchema>;

/** Publishes a refusal report (core NATS; a lost report loses nothing but the report). */
export function publishModelRefusal(nc: NatsConnection, refusal: ModelRefusal): void {
  nc.publish(
    modelRefusedSubject(refusal.line),
    new TextEncoder().encode(JSON.stringify(refusal)),
  );
}

/** Parses a refusal report. */
export function parseModelRefusal(bytes: Uint8Array): ModelRefusal {
  return ModelRefusalSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
}
