/**
 * PNG chunk framing shared by the PNG encoder and the text-chunk writer (portable: web APIs only).
 *
 * @module
 */

const CRC_TABLE: Uint32Array = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/**
 * CRC-32 (ISO 3309, the PNG chunk checksum) of `bytes`.
 *
 * @example
 * ```ts
 * import { crc32 } from "./_png_chunk.ts";
 * console.log(crc32(new TextEncoder().encode("IEND")).toString(16)); // "ae426082"
 * ```
 */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// data: [n] bytes -> [12 + n]: length (4, big-endian) | type (4) | data | CRC of type and data (4)
/**
 * One PNG chunk: length, type, data and the CRC of type and data.
 *
 * @example
 * ```ts
 * import { pngChunk } from "./_png_chunk.ts";
 * console.log(pngChunk("IEND", new Uint8Array(0)).length); // 12
 * ```
 */
export function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
