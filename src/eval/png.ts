/**
 * A small PNG encoder (portable: web APIs only): 8-bit RGB, no interlace, every row with filter
 * type 0 (none), the image data zlib-compressed by `CompressionStream("deflate")`.
 *
 * @module
 */
import { PngError } from "./errors.ts";
import { pngChunk } from "./_png_chunk.ts";

async function zlib(raw: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// rgb: [h, w, 3] bytes
/**
 * Encodes row-major RGB bytes (`[height, width, 3]`) as a PNG file.
 *
 * @example
 * ```ts
 * import { encodePng } from "./png.ts";
 * const png = await encodePng(new Uint8Array([255, 0, 0, 0, 0, 255]), 2, 1);
 * console.log(png.subarray(1, 4)); // "PNG" in ASCII: Uint8Array [80, 78, 71]
 * ```
 */
export async function encodePng(rgb: Uint8Array, w: number, h: number): Promise<Uint8Array> {
  if (
    !Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1 || w >= 2 ** 31 || h >= 2 ** 31
  ) {
    throw new PngError(`The image size is ${w}x${h}; use whole numbers from 1 to 2^31 - 1`);
  }
  if (rgb.length !== w * h * 3) {
    throw new PngError(
      `The pixels are ${rgb.length} bytes, not ${
        w * h * 3
      } for ${w}x${h} RGB; pass 3 bytes a pixel`,
    );
  }
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, w);
  hv.setUint32(4, h);
  header.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
  const stride = w * 3;
  const raw = new Uint8Array((stride + 1) * h);
  for (let y = 0; y < h; y++) {
    raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", await zlib(raw)),
    pngChunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
