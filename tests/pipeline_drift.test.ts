/**
 * Live-trainer hygiene on a fixture stream whose normal product changes mid-stream: the
 * trainer's own step (buffer → detector → hygiene) runs on product A with injected defects,
 * then on product B only. Shows the rejection cap holding (no confirmation-bias spiral), the
 * defects being what is rejected, and the new normal being learned rather than rejected.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { HygieneSchema, ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { ImageBuffer } from "../src/stages/image_buffer.ts";
import { RejectionPolicy } from "../src/stages/hygiene.ts";
import { trainStepFromBuffer } from "../src/stages/buffer_training.ts";
import { SeededRandom } from "../src/util/prng.ts";

const SIZE = 32;
const PER_STEP = 4; // images arriving per training step
const STEPS_A = 30;
const STEPS_B = 30;

type Kind = "a" | "b" | "defect";

/** Product A: grey square; defect: A with a bright checkerboard patch; product B: red disk. */
function render(kind: Kind, random: SeededRandom): Float32Array {
  const pixels = new Float32Array(SIZE * SIZE * 3);
  const dx = (random.next() - 0.5) * 4;
  const dy = (random.next() - 0.5) * 4;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const noise = random.next() * 0.05;
      let rgb: [number, number, number];
      if (kind === "b") {
        const inside = (x - 16 - dx) ** 2 + (y - 16 - dy) ** 2 < 100;
        rgb = inside ? [0.9, 0.15, 0.1] : [0.1, 0.1, 0.15];
      } else {
        const inside = Math.abs(x - 16 - dx) < 9 && Math.abs(y - 16 - dy) < 9;
        const patch = kind === "defect" && x >= 8 && x < 20 && y >= 8 && y < 20;
        const v = patch ? ((x >> 1) + (y >> 1)) % 2 : inside ? 0.6 : 0.3;
        rgb = [v, v, v];
      }
      for (let c = 0; c < 3; c++) pixels[(y * SIZE + x) * 3 + c] = Math.min(1, rgb[c] + noise);
    }
  }
  return pixels;
}

Deno.test("hygiene on a drifting fixture stream: capped, rejects defects, learns the new normal", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: SIZE, studentWidth: "tiny" }),
    TrainingSchema.parse({ learningRate: 1e-3 }),
  );
  const hygiene = new RejectionPolicy<Float32Array>(HygieneSchema.parse({
    flagsToReject: 1,
    maxRejectedFraction: 0.15,
    rateWindow: 64,
    readmitEverySteps: 5,
    quarantineSize: 16,
  }));
  const buffer = new ImageBuffer(64, 1);
  const random = new SeededRandom(11);
  const manifest = new Map<string, Kind>();
  let next = 0;
  const arrive = (kind: Kind) => {
    const id = `img-${next++}`;
    manifest.set(id, kind);
    buffer.add(id, render(kind, random));
  };
  const probesB = Array.from({ length: 8 }, () => render("b", random));
  const meanScoreOfB = () => {
    const recent = buffer.recent(32).map((image) => image.pixels);
    const fit = toBatch(recent, SIZE);
    detector.fitMapNormalisation([fit]);
    fit.dispose();
    const batch = toBatch(probesB, SIZE);
    const scores = detector.score(batch).map((r) => r.score);
    batch.dispose();
    return scores.reduce((a, b) => a + b, 0) / scores.length;
  };
  try {
    for (let i = 0; i < 16; i++) arrive(i % 8 === 7 ? "defect" : "a");
    const statsBatch = toBatch(buffer.recent(16).map((image) => image.pixels), SIZE);
    detector.fitTeacherStats([statsBatch]);
    statsBatch.dispose();

    const rejectedKinds: Kind[][] = [];
    let scoreBAtChange = NaN;
    let tensorsAfterChange = -1;
    for (let step = 0; step < STEPS_A + STEPS_B; step++) {
      const phaseB = step >= STEPS_A;
      for (let i = 0; i < PER_STEP; i++) {
        arrive(phaseB ? "b" : (step * PER_STEP + i) % 8 === 7 ? "defect" : "a");
      }
      const result = await trainStepFromBuffer(detector, buffer, hygiene);
      assert.ok(result, `step ${step} found a batch`);
      rejectedKinds.push(result.rejected.map((id) => manifest.get(id)!));
      if (step === STEPS_A) {
        scoreBAtChange = meanScoreOfB();
        tensorsAfterChange = tf.memory().numTensors;
      }
    }
    const scoreBAtEnd = meanScoreOfB();
    assert.equal(tf.memory().numTensors, tensorsAfterChange, "numTensors is flat");

    const seen = next;
    const rejected = rejectedKinds.flat();
    const rejectedA = rejectedKinds.slice(0, STEPS_A).flat();
    const defectShare = rejectedA.filter((k) => k === "defect").length / rejectedA.length;
    const rejectedBLate = rejectedKinds.slice(-10).flat().filter((k) => k === "b").length;
    console.log(
      `drift: rejected ${rejected.length}/${seen}; phase A defect share ${
        defectShare.toFixed(2)
      }; ` +
        `B score ${scoreBAtChange.toFixed(3)} → ${scoreBAtEnd.toFixed(3)}; ` +
        `late B rejections ${rejectedBLate}; hygiene ${JSON.stringify(hygiene.stats)}`,
    );
    // Confirmation bias: about the cap's share of what came in is thrown away, at most.
    assert.ok(
      // A re-admitted image is a new image to the window; the last window may be partly filled.
      rejected.length <= 0.15 * (seen + hygiene.stats.readmitted + 64),
      `${rejected.length} of ${seen} rejected (cap 0.15 over windows of 64)`,
    );
    // Phase A: what is rejected is mostly the defects (1 in 8 of the stream).
    assert.ok(defectShare >= 0.5, `defects are ${defectShare} of phase A's rejections`);
    // Drift: the new normal is learned — its score falls and it stops being rejected.
    assert.ok(
      scoreBAtEnd < scoreBAtChange,
      `B's mean score fell from ${scoreBAtChange} to ${scoreBAtEnd}`,
    );
    assert.ok(
      rejectedBLate <= 10 * 8 * 0.15,
      `${rejectedBLate} B images rejected in the last 10 steps`,
    );
  } finally {
    detector.dispose();
  }
});
