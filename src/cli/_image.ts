/**
 * RGB images to file bytes: baseline JPEG (jpeg-js) or PNG (our own encoder over the web
 * `CompressionStream`), chosen by the output file's extension.
 *
 * @module
 */
import jpeg from "jpeg-js";
import { UsageError } from "./_args.ts";
import { quote } from "../nn/_untrusted.ts";

/** An 8-bit RGB image, row-major, `height x width x 3` bytes. */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The pixels. */
  rgb: Uint8Array;
}

/** The image formats `sample` writes. */
export type ImageFormat = "jpeg" | "png";

const EXTENSIONS: Readonly<Record<string, ImageFormat>> = {
  ".jpg": "jpeg",
  ".jpeg": "jpeg",
  ".png": "png",
};

/** The format an output path's extension names; a {@link UsageError} for any other. */
export function imageFormat(path: string): ImageFormat {
  const dot = path.lastIndexOf(".");
  const ext = dot > path.lastIndexOf("/") ? path.slice(dot).toLowerCase() : "";
  const format = EXTENSIONS[ext];
  if (!format) {
    throw new UsageError(
      `The output ${quote(path)} must end in .png, .jpg or .jpeg, which name the image format ` +
        "to write",
    );
  }
  return format;
}

/** Encodes RGB bytes as a baseline JPEG (jpeg-js). */
export function encodeJpeg(image: RgbImage, quality = 92): Uint8Array {
  const { width, height, rgb } = image;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[4 * i] = rgb[3 * i]!;
    rgba[4 * i + 1] = rgb[3 * i + 1]!;
    rgba[4 * i + 2] = rgb[3 * i + 2]!;
    rgba[4 * i + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, quality).data);
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (ISO 3309, the PNG chunk checksum) of `bytes`. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.byteLength);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.byteLength, crc32(out.subarray(4, 8 + data.byteLength)));
  return out;
}

/**
 * Encodes RGB bytes as a PNG: 8-bit truecolour, no interlace, filter type 0 on every row, one
 * zlib stream (`CompressionStream("deflate")`) in one IDAT chunk.
 *
 * @example
 * ```ts
 * import { encodePng } from "./_image.ts";
 * const png = await encodePng({ width: 2, height: 1, rgb: new Uint8Array([255, 0, 0, 0, 0, 255]) });
 * console.log(png.subarray(1, 4)); // "PNG"
 * ```
 */
export async function encodePng(image: RgbImage): Promise<Uint8Array> {
  const { width, height, rgb } = image;
  const raw = new Uint8Array(height * (1 + 3 * width));
  for (let y = 0; y < height; y++) {
    raw.set(rgb.subarray(3 * width * y, 3 * width * (y + 1)), y * (1 + 3 * width) + 1);
  }
  const zlib = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate")))
      .arrayBuffer(),
  );
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, truecolour, deflate, filter 0, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Encodes an image in `format`. */
export function encodeImage(image: RgbImage, format: ImageFormat): Promise<Uint8Array> {
  return format === "png" ? encodePng(image) : Promise.resolve(encodeJpeg(image));
}
