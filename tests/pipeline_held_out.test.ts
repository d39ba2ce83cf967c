import { strict as assert } from "node:assert";
import { decodeDecodedImage, encodeDecodedImage, isHeldOut } from "../src/bus/decoded_image.ts";
import { TRAIN_HEADER } from "../src/bus/subjects.ts";

const image = {
  imageId: "part-1",
  imageSeq: 7,
  capturedAt: null,
  size: 2,
  pixels: new Float32Array(12).fill(0.5),
  original: { width: 4, height: 4 },
};

Deno.test("Image-Train: only 'no' keeps an image out of training", () => {
  assert.equal(isHeldOut("no"), true);
  assert.equal(isHeldOut(" No "), true);
  for (const value of [undefined, null, "", "yes", "false", "0"]) {
    assert.equal(isHeldOut(value), false, String(value));
  }
});

Deno.test("decoded images carry Image-Train: no from ingest to trainer and scorer", () => {
  const held = encodeDecodedImage({ ...image, heldOut: true }, new Date(0));
  assert.equal(held.headers.get(TRAIN_HEADER), "no");
  assert.equal(decodeDecodedImage(held.payload, held.headers, 2).heldOut, true);
  const plain = encodeDecodedImage(image, new Date(0));
  assert.equal(plain.headers.has(TRAIN_HEADER), false);
  assert.equal(decodeDecodedImage(plain.payload, plain.headers, 2).heldOut, false);
});
