/**
 * `main.ts score` on both engines: the same checkpoint and images give the same scores through
 * ONNX Runtime and tfjs; a bad engine option is a clear usage error.
 */
import { strict as assert } from "node:assert";
import sharp from "sharp";
import { ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { SeededRandom } from "../src/util/prng.ts";

const SIZE = 32;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function score(args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "score", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

Deno.test("main.ts score gives the same scores on onnxruntime and tfjs", async () => {
  await initBackend("wasm");
  const dir = await Deno.makeTempDir({ prefix: "cli-score-" });
  try {
    const random = new SeededRandom(3);
    const images = Array.from({ length: 6 }, () => {
      const bytes = Uint8Array.from({ length: SIZE * SIZE * 3 }, () => random.next() * 255);
      return bytes;
    });
    await Deno.mkdir(`${dir}/images`);
    for (const [i, bytes] of images.entries()) {
      await sharp(bytes, { raw: { width: SIZE, height: SIZE, channels: 3 } })
        .png().toFile(`${dir}/images/${i}.png`);
    }
    const detector = await Detector.create(
      ModelSchema.parse({ imageSize: SIZE, teacher: { kind: "random_pdn" } }),
      TrainingSchema.parse({}),
    );
    const batch = toBatch(images.map((b) => Float32Array.from(b, (v) => v / 255)), SIZE);
    detector.fitTeacherStats([batch]);
    detector.trainStep(batch);
    detector.fitMapNormalisation([batch]);
    batch.dispose();
    await saveCheckpoint(detector, `${dir}/model`, "cli test");
    detector.dispose();

    const common = ["--model", `${dir}/model`, "--images", `${dir}/images`];
    const ort = await score([...common, "--engine", "onnxruntime", "--threads", "1"]);
    const tfjs = await score([...common, "--engine", "tfjs"]);
    assert.equal(ort.code, 0, ort.stderr);
    assert.equal(tfjs.code, 0, tfjs.stderr);
    const parse = (out: string) =>
      out.trim().split("\n").map((line) => JSON.parse(line) as { file: string; score: number });
    const [a, b] = [parse(ort.stdout), parse(tfjs.stdout)];
    assert.equal(a.length, 6);
    a.forEach((row, i) => {
      assert.equal(row.file, b[i].file);
      assert.ok(
        Math.abs(row.score - b[i].score) <= 1e-4 * Math.max(1, Math.abs(b[i].score)),
        `${row.file}: ${row.score} vs ${b[i].score}`,
      );
    });

    const bad = await score([...common, "--threads", "many"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /score: options: threads:/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
