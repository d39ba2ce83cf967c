import { strict as assert } from "node:assert";
import sharp from "sharp";
import { decodeImage, ImageRejectedError, sniffFormat } from "../src/image/decode.ts";

async function solid(width: number, height: number, format: "png" | "jpeg" | "webp" | "gif") {
  const img = sharp({ create: { width, height, channels: 3, background: { r: 255, g: 0, b: 0 } } });
  return new Uint8Array(await img.toFormat(format).toBuffer());
}

async function rejectionCode(bytes: Uint8Array, maxPixels = 1_000_000): Promise<string> {
  try {
    await decodeImage(bytes, 16, { maxBytes: 10_000_000, maxPixels });
  } catch (error) {
    assert.ok(error instanceof ImageRejectedError, String(error));
    return error.code;
  }
  throw new Error("image was accepted");
}

Deno.test("decodes PNG, JPEG and WebP to size×size RGB in [0,1]", async () => {
  for (const format of ["png", "jpeg", "webp"] as const) {
    const bytes = await solid(40, 30, format);
    assert.equal(sniffFormat(bytes), format);
    const image = await decodeImage(bytes, 16);
    assert.equal(image.format, format);
    assert.equal(image.width, 40);
    assert.equal(image.height, 30);
    assert.equal(image.pixels.length, 16 * 16 * 3);
    // Red stays red (JPEG/WebP are lossy: allow a little).
    assert.ok(image.pixels[0] > 0.9 && image.pixels[1] < 0.1 && image.pixels[2] < 0.1);
  }
});

Deno.test("each kind of bad input is rejected with its code", async () => {
  assert.equal(await rejectionCode(new Uint8Array()), "empty");
  assert.equal(await rejectionCode(new TextEncoder().encode("not an image\n")), "unsupported_type");
  assert.equal(await rejectionCode(await solid(8, 8, "gif")), "unsupported_type");
  const jpeg = await solid(64, 64, "jpeg");
  assert.equal(await rejectionCode(jpeg.subarray(0, jpeg.length / 2)), "undecodable");
  assert.equal(await rejectionCode(await solid(2000, 1000, "png"), 1_000_000), "too_many_pixels");
  let code = "";
  try {
    await decodeImage(jpeg, 16, { maxBytes: 10, maxPixels: 1e6 });
  } catch (error) {
    code = (error as ImageRejectedError).code;
  }
  assert.equal(code, "too_large");
});
