/**
 * What a trainer needs to survive kill -9: a resume point written atomically on a schedule
 * (so a crash costs at most `trainer.checkpointEverySeconds` of training, even before the first
 * published version) and a buffer refilled from the decoded images the line still holds.
 *
 * @module
 */
import type { JetStreamClient, JetStreamManager } from "nats";
import { decodeDecodedImage } from "../bus/decoded_image.ts";
import { decodedSubject, streamNames, TRAINER_CONSUMER } from "../bus/subjects.ts";
import { type Detector, detectorFromBlob, detectorToBlob } from "./model_port.ts";

/** File name of the resume point inside `<checkpointDir>/<line>`. */
export const RESUME_FILE = "resume.ad2c";

/** Writes the detector as one blob to `<dir>/resume.ad2c`: temp file, then rename (atomic). */
export async function saveResumePoint(detector: Detector, dir: string, label: string) {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${RESUME_FILE}`;
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeFile(temp, detectorToBlob(detector, label));
  await Deno.rename(temp, path);
}

/** The resume point in `dir`, or null when there is none. */
export async function loadResumePoint(dir: string): Promise<Detector | null> {
  let blob: Uint8Array;
  try {
    blob = await Deno.readFile(`${dir}/${RESUME_FILE}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return await detectorFromBlob(blob, `${dir}/${RESUME_FILE}`);
}

/**
 * Reads the up to `count` most recent decoded images the trainer's durable consumer had
 * already been given (its position survives a crash, its buffer does not), oldest first.
 * Images after that position come from the consumer itself, so none is buffered twice.
 */
export async function recentDecodedImages(
  js: JetStreamClient,
  jsm: JetStreamManager,
  line: string,
  imageSize: number,
  count: number,
  add: (imageId: string, pixels: Float32Array) => void,
): Promise<number> {
  const stream = streamNames(line).decoded;
  const [info, consumer] = await Promise.all([
    jsm.streams.info(stream),
    jsm.consumers.info(stream, TRAINER_CONSUMER),
  ]);
  const last = Math.min(consumer.delivered.stream_seq, info.state.last_seq);
  const first = Math.max(info.state.first_seq, last - count + 1);
  if (last < 1 || first > last) return 0;
  const reader = await js.consumers.get(stream, {
    filterSubjects: decodedSubject(line),
    opt_start_seq: first,
  });
  let added = 0;
  try {
    while (true) {
      const batch = await reader.fetch({ max_messages: 256, expires: 2_000 });
      let seen = 0;
      for await (const message of batch) {
        seen++;
        if (message.seq > last) return added;
        try {
          const image = decodeDecodedImage(message.data, message.headers, imageSize);
          if (!image.heldOut) { // held out of training by the camera, as the live consumer
            add(image.imageId, image.pixels);
            added++;
          }
        } catch {
          // unreadable: the live consumer skips it the same way
        }
        if (message.seq >= last) return added;
      }
      if (seen === 0) return added;
    }
  } finally {
    await reader.delete().catch(() => undefined);
  }
}
