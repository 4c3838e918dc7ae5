/**
 * Image files to RGB bytes: PNG (8-bit grey, grey + alpha, RGB, RGBA or palette, not interlaced;
 * our own reader over the web `DecompressionStream`) and baseline JPEG (jpeg-js). Alpha is
 * dropped. The text chunks of a PNG (`tEXt`, `iTXt`, `zTXt`) are read too.
 *
 * @module
 */
import jpeg from "jpeg-js";
import { DenoiseError } from "../ops/errors.ts";
import type { RgbImage } from "./_image.ts";

/** An image file that cannot be read. */
export class ImageReadError extends DenoiseError {}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** A PNG's chunks in file order (type and data). */
export function pngChunks(bytes: Uint8Array, name = "the image"): [string, Uint8Array][] {
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new ImageReadError(`${name} is not a PNG file (no PNG signature)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: [string, Uint8Array][] = [];
  for (let at = 8; at + 12 <= bytes.length;) {
    const len = view.getUint32(at);
    if (at + 12 + len > bytes.length) {
      throw new ImageReadError(`${name} is truncated: a chunk runs past the end of the file`);
    }
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    out.push([type, bytes.subarray(at + 8, at + 8 + len)]);
    at += 12 + len;
    if (type === "IEND") break;
  }
  return out;
}

async function inflate(data: Uint8Array, name: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new ImageReadError(`${name} holds corrupt compressed data (${(e as Error).message})`);
  }
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes a PNG to RGB. */
export async function decodePng(bytes: Uint8Array, name = "the image"): Promise<RgbImage> {
  const chunks = pngChunks(bytes, name);
  const ihdr = chunks.find(([t]) => t === "IHDR")?.[1];
  if (!ihdr || ihdr.length !== 13) throw new ImageReadError(`${name} has no valid IHDR chunk`);
  const v = new DataView(ihdr.buffer, ihdr.byteOffset, 13);
  const width = v.getUint32(0), height = v.getUint32(4);
  const [depth, colour, , , interlace] = [ihdr[8]!, ihdr[9]!, ihdr[10]!, ihdr[11]!, ihdr[12]!];
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colour];
  if (depth !== 8 || channels === undefined || interlace !== 0) {
    throw new ImageReadError(
      `${name} is a PNG with bit depth ${depth}, colour type ${colour}${
        interlace ? ", interlaced" : ""
      }; save it as an 8-bit, non-interlaced RGB or RGBA PNG`,
    );
  }
  if (width < 1 || height < 1 || width * height > 2 ** 28) {
    throw new ImageReadError(`${name} has an unusable size ${width}x${height}`);
  }
  const idat = chunks.filter(([t]) => t === "IDAT").map(([, d]) => d);
  const joined = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  idat.reduce((at, d) => (joined.set(d, at), at + d.length), 0);
  const raw = await inflate(joined, name);
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) {
    throw new ImageReadError(`${name} has ${raw.length} bytes of pixels, too few for its size`);
  }
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!, src = y * (stride + 1) + 1, row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[row + i - channels]! : 0;
      const b = y > 0 ? px[row - stride + i]! : 0;
      const c = i >= channels && y > 0 ? px[row - stride + i - channels]! : 0;
      const pred = f === 0
        ? 0
        : f === 1
        ? a
        : f === 2
        ? b
        : f === 3
        ? (a + b) >> 1
        : paeth(a, b, c);
      if (f > 4) throw new ImageReadError(`${name} uses an unknown PNG filter ${f} in row ${y}`);
      px[row + i] = (raw[src + i]! + pred) & 255;
    }
  }
  const palette = chunks.find(([t]) => t === "PLTE")?.[1];
  if (colour === 3 && !palette) throw new ImageReadError(`${name} is a palette PNG without PLTE`);
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) {
      rgb[3 * i + c] = colour === 3
        ? palette![3 * px[i]! + c] ?? 0
        : channels <= 2
        ? px[i * channels]!
        : px[i * channels + c]!;
    }
  }
  return { width, height, rgb };
}

/** The text chunks of a PNG (`tEXt`, uncompressed or compressed `iTXt`, `zTXt`) by keyword. */
export async function pngText(bytes: Uint8Array, name = "the image"): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const latin1 = new TextDecoder("latin1"), utf8 = new TextDecoder();
  for (const [type, d] of pngChunks(bytes, name)) {
    const nul = d.indexOf(0);
    if (nul < 0 || !["tEXt", "zTXt", "iTXt"].includes(type)) continue;
    const key = latin1.decode(d.subarray(0, nul));
    if (type === "tEXt") out.set(key, latin1.decode(d.subarray(nul + 1)));
    else if (type === "zTXt") out.set(key, latin1.decode(await inflate(d.subarray(nul + 2), name)));
    else {
      const compressed = d[nul + 1] === 1;
      const lang = d.indexOf(0, nul + 3), trans = d.indexOf(0, lang + 1);
      if (lang < 0 || trans < 0) continue;
      const body = d.subarray(trans + 1);
      out.set(key, utf8.decode(compressed ? await inflate(body, name) : body));
    }
  }
  return out;
}

/** Decodes a PNG or JPEG (by its first bytes) to RGB. */
export async function decodeImage(bytes: Uint8Array, name = "the image"): Promise<RgbImage> {
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return await decodePng(bytes, name);
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    try {
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
      return { width: j.width, height: j.height, rgb: new Uint8Array(j.data) };
    } catch (e) {
      throw new ImageReadError(`${name} is not a readable JPEG (${(e as Error).message})`);
    }
  }
  throw new ImageReadError(`${name} is neither a PNG nor a JPEG; give a .png or .jpg image`);
}
