// encodePng() against a reference decoder (pngjs): the decoded pixels equal the input exactly,
// for odd sizes and random bytes (which deflate cannot shrink), and bad input gets a clear error.
import { deepEqual, equal, rejects } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";
import { encodePng, PngError } from "../src/eval/mod.ts";

function decodeRgb(png: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const img = PNG.sync.read(Buffer.from(png));
  const rgb = new Uint8Array(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) {
    equal(img.data[i * 4 + 3], 255, "an RGB PNG decodes with opaque alpha");
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = img.data[i * 4 + c]!;
  }
  return { width: img.width, height: img.height, rgb };
}

Deno.test("encodePng() decodes with pngjs to the same pixels for odd sizes", async () => {
  let s = 12345;
  for (const [w, h] of [[1, 1], [7, 3], [32, 32], [33, 17]] as const) {
    const rgb = new Uint8Array(w * h * 3);
    for (let i = 0; i < rgb.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      rgb[i] = s >>> 24;
    }
    const got = decodeRgb(await encodePng(rgb, w, h));
    equal(got.width, w);
    equal(got.height, h);
    deepEqual(got.rgb, rgb);
  }
});

Deno.test("encodePng() compresses flat images", async () => {
  const rgb = new Uint8Array(64 * 64 * 3).fill(200);
  const png = await encodePng(rgb, 64, 64);
  // 12 KiB of one value deflates to well under 1 KiB (plus 57 bytes of signature and chunks).
  equal(png.length < 1024, true, `flat 64x64 PNG is ${png.length} bytes`);
  deepEqual(decodeRgb(png).rgb, rgb);
});

Deno.test("encodePng() rejects pixels that do not fit the size", async () => {
  await rejects(() => encodePng(new Uint8Array(11), 2, 2), PngError);
  await rejects(() => encodePng(new Uint8Array(0), 0, 0), /use whole numbers from 1/);
});
