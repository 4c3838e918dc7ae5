/**
 * A small PNG encoder (portable: web APIs only): 8-bit RGB, no interlace, every row with filter
 * type 0 (none), the image data zlib-compressed by `CompressionStream("deflate")`.
 *
 * @module
 */
import { PngError } from "./errors.ts";

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

// CRC-32 (ISO 3309, as PNG chunks use) of the chunk type and data.
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// length (4, big-endian) | type (4) | data | CRC of type and data (4)
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

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
    chunk("IHDR", header),
    chunk("IDAT", await zlib(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
