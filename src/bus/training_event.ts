/**
 * The public training event (`inspect.<line>.training`, JSON): one per training step.
 *
 * @module
 */
import { z } from "zod/v4";

/** One training step of a line's trainer. */
export const TrainingEventSchema = z.object({
  line: z.string(),
  step: z.number().int().min(1).describe("Step number after this step."),
  losses: z.record(z.string(), z.number()).describe("Loss terms of the step (total, st, ae, ...)."),
  batch: z.array(z.string()).describe("Image-Ids of the batch, in batch order."),
  downWeighted: z.array(z.string()).describe(
    "Image-Ids ATDR down-weighted in this step (candidates for rejection).",
  ),
  rejected: z.array(z.string()).optional().describe(
    "Image-Ids that left the trainer's buffer after this step (trainer.hygiene decides).",
  ),
  readmitted: z.array(z.string()).optional().describe(
    "Image-Ids put back into the buffer from quarantine after this step.",
  ),
  defectRate: z.number().min(0).max(1).nullable().optional().describe(
    "The trainer's online defect-rate estimate (atdrOutlierCount: auto), else null.",
  ),
  hygiene: z.object({
    rejected: z.number().int().min(0),
    refusedByCap: z.number().int().min(0),
    readmitted: z.number().int().min(0),
    quarantined: z.number().int().min(0),
  }).optional().describe("Running totals of the trainer's training-set hygiene."),
  modelVersion: z.number().int().min(1).nullable().describe(
    "Latest published model version (null before the first).",
  ),
  at: z.iso.datetime({ offset: true }),
});
/** A training event. */
export type TrainingEvent = z.infer<typeof TrainingEventSchema>;

/** Parses a training event message body. */
export function parseTrainingEvent(bytes: Uint8Array): TrainingEvent {
  return TrainingEventSchema.parse(JSON.parse(new TextDecoder().decode(bytes)));
}
