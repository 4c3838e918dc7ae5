/**
 * AUTOMATIC1111's generation parameters ("infotext"): the text its PNG Info tab reads, written as
 * a PNG `parameters` text chunk or a JPEG's EXIF UserComment, and read back. The line format
 * follows `modules/processing.py` (`create_infotext`) and `modules/infotext_utils.py`
 * (`parse_generation_parameters`, `quote`); the JPEG form follows `piexif.dump` with
 * `UserComment.dump(text, encoding="unicode")`, as A1111's `save_image_with_geninfo`.
 *
 * @module
 */
import { pngChunk } from "../eval/_png_chunk.ts";
import { ImageReadError, pngChunks, pngText } from "./_image_read.ts";

/** One `key: value` of the last infotext line, in order. */
export type InfoFields = [key: string, value: string][];

/** A parsed infotext. */
export interface Infotext {
  /** The prompt (may span lines). */
  prompt: string;
  /** The negative prompt ("" when absent). */
  negative: string;
  /** The settings line's fields (quoted values unquoted; `Size` kept as `WxH`). */
  fields: Map<string, string>;
}

/** A1111's `quote`: JSON-quoted when the value holds `,`, `:` or a newline. */
function quote(v: string): string {
  return /[,:\n]/u.test(v) ? JSON.stringify(v) : v;
}

/**
 * Formats an infotext: the prompt, `Negative prompt: ...` when there is one, then the fields as
 * `Key: value, ...`.
 *
 * @example
 * ```ts
 * import { formatInfotext } from "./_parameters.ts";
 * console.log(formatInfotext("a cat", "", [["Steps", "20"], ["Seed", "1"]]));
 * // a cat
 * // Steps: 20, Seed: 1
 * ```
 */
export function formatInfotext(prompt: string, negative: string, fields: InfoFields): string {
  const line = fields.map(([k, v]) => (k === v ? k : `${k}: ${quote(v)}`)).join(", ");
  return `${prompt}${negative ? `\nNegative prompt: ${negative}` : ""}\n${line}`.trim();
}

const PARAM = /\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/gu;

/**
 * Parses an infotext as A1111's `parse_generation_parameters`: the last line is the settings line
 * when it holds at least 3 `key: value` fields; lines from `Negative prompt:` on are the negative
 * prompt.
 *
 * @example
 * ```ts
 * import { parseInfotext } from "./_parameters.ts";
 * const p = parseInfotext("a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, Seed: 5");
 * console.log(p.negative, p.fields.get("Sampler")); // dog Euler a
 * ```
 */
export function parseInfotext(text: string): Infotext {
  const lines = text.trim().split("\n");
  let last = lines.pop() ?? "";
  if ([...last.matchAll(PARAM)].length < 3) {
    lines.push(last);
    last = "";
  }
  let prompt = "", negative = "", inNegative = false;
  for (let line of lines) {
    line = line.trim();
    if (line.startsWith("Negative prompt:")) {
      inNegative = true;
      line = line.slice(16).trim();
    }
    if (inNegative) negative += (negative === "" ? "" : "\n") + line;
    else prompt += (prompt === "" ? "" : "\n") + line;
  }
  const fields = new Map<string, string>();
  for (const m of last.matchAll(PARAM)) {
    let v = m[2]!;
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
      try {
        v = JSON.parse(v);
      } catch { /* A1111 keeps a value it cannot unquote */ }
    }
    fields.set(m[1]!, v);
  }
  return { prompt, negative, fields };
}

/**
 * A PNG with a text chunk `key` after its IHDR: `tEXt` when the value is Latin-1, else an
 * uncompressed `iTXt` (PIL's `PngInfo.add_text`, which A1111 uses).
 */
export function pngWithText(png: Uint8Array, key: string, value: string): Uint8Array {
  const chunks = pngChunks(png, "the encoded PNG");
  const latin1 = [...value].every((c) => c.codePointAt(0)! < 256);
  const k = Uint8Array.from(key, (c) => c.charCodeAt(0));
  const body = latin1
    ? Uint8Array.from(value, (c) => c.charCodeAt(0))
    : new TextEncoder().encode(value);
  const head = latin1 ? [...k, 0] : [...k, 0, 0, 0, 0, 0]; // iTXt: flag, method, lang, key
  const data = new Uint8Array(head.length + body.length);
  data.set(head);
  data.set(body, head.length);
  const text = pngChunk(latin1 ? "tEXt" : "iTXt", data);
  const parts = [png.subarray(0, 8)];
  for (const [type, d] of chunks) {
    parts.push(pngChunk(type, d));
    if (type === "IHDR") parts.push(text);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

const UNICODE = [0x55, 0x4e, 0x49, 0x43, 0x4f, 0x44, 0x45, 0]; // "UNICODE\0"
const ASCII = [0x41, 0x53, 0x43, 0x49, 0x49, 0, 0, 0];

/**
 * A JPEG with an EXIF APP1 segment whose Exif IFD holds `text` as UserComment (tag 0x9286,
 * "UNICODE\0" + UTF-16BE, big-endian TIFF as `piexif.dump` writes), placed after SOI and JFIF.
 */
export function jpegWithUserComment(jpg: Uint8Array, text: string): Uint8Array {
  const comment = new Uint8Array(8 + 2 * text.length);
  comment.set(UNICODE);
  for (let i = 0; i < text.length; i++) {
    comment[8 + 2 * i] = text.charCodeAt(i) >> 8;
    comment[9 + 2 * i] = text.charCodeAt(i) & 255;
  }
  // TIFF: header (8), IFD0 with one entry (2 + 12 + 4), Exif IFD with one entry (18), comment
  const tiff = new Uint8Array(8 + 18 + 18 + comment.length);
  const v = new DataView(tiff.buffer);
  tiff.set([0x4d, 0x4d, 0, 42, 0, 0, 0, 8]);
  v.setUint16(8, 1);
  v.setUint16(10, 0x8769); // ExifIFDPointer, LONG
  v.setUint16(12, 4);
  v.setUint32(14, 1);
  v.setUint32(18, 26);
  v.setUint32(22, 0);
  v.setUint16(26, 1);
  v.setUint16(28, 0x9286); // UserComment, UNDEFINED
  v.setUint16(30, 7);
  v.setUint32(32, comment.length);
  v.setUint32(36, 44);
  v.setUint32(40, 0);
  tiff.set(comment, 44);
  const size = 2 + 6 + tiff.length;
  if (size > 65535) throw new RangeError(`The parameters are too long for a JPEG's EXIF (${size})`);
  const app1 = new Uint8Array(2 + size);
  app1.set([0xff, 0xe1, size >> 8, size & 255, 0x45, 0x78, 0x69, 0x66, 0, 0]);
  app1.set(tiff, 10);
  // after SOI, and after a JFIF APP0 if one follows
  let at = 2;
  if (jpg[2] === 0xff && jpg[3] === 0xe0) at = 4 + ((jpg[4]! << 8) | jpg[5]!);
  const out = new Uint8Array(jpg.length + app1.length);
  out.set(jpg.subarray(0, at));
  out.set(app1, at);
  out.set(jpg.subarray(at), at + app1.length);
  return out;
}

/** The EXIF UserComment of a JPEG, or undefined. */
export function jpegUserComment(jpg: Uint8Array): string | undefined {
  for (let at = 2; at + 4 <= jpg.length && jpg[at] === 0xff;) {
    const marker = jpg[at + 1]!, len = (jpg[at + 2]! << 8) | jpg[at + 3]!;
    if (marker === 0xda || marker === 0xd9) break;
    const seg = jpg.subarray(at + 4, at + 2 + len);
    if (marker === 0xe1 && String.fromCharCode(...seg.subarray(0, 4)) === "Exif") {
      const tiff = seg.subarray(6);
      const v = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
      const le = tiff[0] === 0x49;
      const u16 = (o: number) => v.getUint16(o, le), u32 = (o: number) => v.getUint32(o, le);
      const find = (ifd: number, tag: number) => {
        const n = u16(ifd);
        for (let i = 0; i < n; i++) if (u16(ifd + 2 + 12 * i) === tag) return ifd + 2 + 12 * i;
        return -1;
      };
      try {
        const ptr = find(u32(4), 0x8769);
        if (ptr < 0) return undefined;
        const e = find(u32(ptr + 8), 0x9286);
        if (e < 0) return undefined;
        const n = u32(e + 4), data = tiff.subarray(u32(e + 8), u32(e + 8) + n);
        const prefix = [...data.subarray(0, 8)];
        const body = data.subarray(8);
        if (prefix.every((b, i) => b === UNICODE[i])) {
          let s = "";
          for (let i = 0; i + 1 < body.length; i += 2) {
            s += String.fromCharCode((body[i]! << 8) | body[i + 1]!);
          }
          return s;
        }
        if (prefix.every((b, i) => b === ASCII[i])) return new TextDecoder().decode(body);
        return new TextDecoder().decode(data);
      } catch {
        return undefined; // a truncated EXIF holds no readable comment
      }
    }
    at += 2 + len;
  }
  return undefined;
}

/**
 * The infotext of a PNG (`parameters` chunk) or JPEG (EXIF UserComment) file's bytes; an
 * `ImageReadError` when there is none.
 */
export async function readInfotext(bytes: Uint8Array, name: string): Promise<Infotext> {
  const text = bytes[0] === 0x89
    ? (await pngText(bytes, name)).get("parameters")
    : bytes[0] === 0xff
    ? jpegUserComment(bytes)
    : undefined;
  if (text === undefined) {
    throw new ImageReadError(
      `${name} carries no generation parameters (no PNG "parameters" text or JPEG EXIF ` +
        "UserComment); give an image written by mod.ts sample or AUTOMATIC1111",
    );
  }
  return parseInfotext(text);
}
