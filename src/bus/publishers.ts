/**
 * Publishing verdicts and training events to their JetStream-backed subjects.
 *
 * @module
 */
import type { JetStreamClient, PubAck } from "nats";
import { rejectionMsgId, trainingSubject, verdictMsgId, verdictSubject } from "./subjects.ts";
import type { TrainingEvent } from "./training_event.ts";
import type { Verdict } from "./verdict.ts";

const encoder = new TextEncoder();

/**
 * The `Nats-Msg-Id` of a verdict: by Image-Id when the image owns its id, else by the image
 * message's stream sequence (missing, invalid or duplicate ids).
 */
export function msgIdOfVerdict(verdict: Verdict): string {
  const ownsId = verdict.imageId !== null &&
    !(verdict.status === "rejected" &&
      ["missing_image_id", "invalid_image_id", "duplicate_image_id"].includes(verdict.error.code));
  return ownsId ? verdictMsgId(verdict.imageId!) : rejectionMsgId(verdict.imageSeq);
}

/** Publishes a verdict and waits for JetStream to store it (or drop it as a duplicate). */
export async function publishVerdict(js: JetStreamClient, verdict: Verdict): Promise<PubAck> {
  return await js.publish(verdictSubject(verdict.line), encoder.encode(JSON.stringify(verdict)), {
    msgID: msgIdOfVerdict(verdict),
  });
}

/** Publishes a training event. */
export async function publishTrainingEvent(
  js: JetStreamClient,
  event: TrainingEvent,
): Promise<PubAck> {
  // No Nats-Msg-Id: a trainer resumed from an older version legitimately repeats step numbers.
  return await js.publish(trainingSubject(event.line), encoder.encode(JSON.stringify(event)));
}
