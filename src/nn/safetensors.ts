/**
 * safetensors reading and writing over bytes or any random-access {@link ByteSource} (portable
 * core: web APIs only). The header is validated strictly before any tensor is read; tensors are
 * read one at a time, by byte range, so a multi-GB file is never held in memory at once.
 * File-system access lives in `safetensors_fs.ts`.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the
 * data section; offsets are relative to the start of the data section.
 *
 * @module
 */
import type { DType, Tensor } from "../ops/tensor.ts";
import { tensor } from "../ops/creation.ts";
import { SafetensorsError } from "./errors.ts";
import { JsonFloat, JsonSyntaxError, type JsonValue, parseStrictJson } from "./safetensors_json.ts";
import { quote } from "./_untrusted.ts";

/** Element types of the safetensors format. */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The largest header accepted, in bytes (the reference implementation's limit). */
export const MAX_HEADER_BYTES: number = 100_000_000;

/** Dtype and shape of one stored tensor. */
export interface SafetensorsTensorInfo {
  /** Element type in the file. */
  readonly dtype: SafetensorsDType;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Byte range `[begin, end)` relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number];
}

/** A validated safetensors header. */
export interface SafetensorsHeader {
  /** Bytes of header JSON (N). */
  readonly headerLength: number;
  /** Absolute offset of the data section (8 + N). */
  readonly dataStart: number;
  /** Bytes in the data section. */
  readonly dataLength: number;
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in header order. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
}

/**
 * Random-access bytes: a file, an in-memory buffer, or an HTTP resource read by ranges.
 * `read` returns the bytes at `[offset, offset + length)`, fewer only where the source ends.
 */
export interface ByteSource {
  /** Name used in error messages (a path or URL). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `offset`. A result that fills its whole buffer must not be shared
   * (readers may decode it in place); return a `subarray` of a larger buffer otherwise.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases the source (optional). */
  close?(): void;
}

/**
 * The bytes of a `Uint8Array` or an `ArrayBuffer` (no copy); a {@link SafetensorsError} for
 * anything else.
 */
function toBytes(bytes: unknown, what: string): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) {
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  throw new SafetensorsError(
    `The ${what} call needs the file's bytes as a Uint8Array or an ArrayBuffer, got ${
      bytes === null ? "null" : typeof bytes
    }; read the file first (e.g. await response.bytes())`,
  );
}

/** A {@link ByteSource} over bytes already in memory (no copy). */
export function bytesSource(bytes: Uint8Array | ArrayBuffer, name = "<bytes>"): ByteSource {
  const b = toBytes(bytes, "bytesSource()");
  return {
    name,
    size: b.byteLength,
    read: (offset: number, length: number): Promise<Uint8Array> =>
      Promise.resolve(b.subarray(offset, offset + length)),
  };
}

/** Checks a caller's {@link ByteSource} before any read: a name, a whole size and `read`. */
function checkSource(source: unknown): ByteSource {
  const s = source as Partial<ByteSource> | null;
  const name = typeof s?.name === "string" ? s.name : "<source>";
  if (s === null || typeof s !== "object" || typeof s.read !== "function") {
    throw new SafetensorsError(
      "A safetensors source must be a Uint8Array, an ArrayBuffer or a ByteSource " +
        "({ name, size, read(offset, length) }); pass one of those",
    );
  }
  if (!Number.isSafeInteger(s.size) || s.size! < 0) {
    throw new SafetensorsError(
      `The source ${qf(name)} reports size ${quote(s.size)}, but a ByteSource's size must be ` +
        "a whole number of bytes >= 0; fix the source's size",
    );
  }
  return s as ByteSource;
}

// ---------------------------------------------------------------------------------------------
// Header validation

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (v instanceof Map) return "object";
  if (v instanceof JsonFloat) return "non-integer number";
  return typeof v;
}

/** A file name or URL for a message (longer than a value, control characters escaped). */
function qf(name: string): string {
  return quote(name, 200);
}

/** An untrusted header value for a message: a short prefix, control characters escaped. */
function show(v: unknown): string {
  if (v instanceof JsonFloat) return quote(v.value);
  if (v instanceof Map) return "an object";
  if (Array.isArray(v) && v.every((x) => typeof x === "number" || x instanceof JsonFloat)) {
    const items = v.slice(0, 8).map((x) => String(x instanceof JsonFloat ? x.value : x));
    return `[${items.join(", ")}${v.length > 8 ? ", ..." : ""}]`;
  }
  return quote(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** A command that converts a PyTorch checkpoint to safetensors without running its code. */
export const CONVERT_COMMAND: string = `python3 -c "import torch, safetensors.torch as st; ` +
  `sd = torch.load('model.ckpt', map_location='cpu', weights_only=True); ` +
  `sd = sd.get('state_dict', sd); ` +
  `st.save_file({k: v.contiguous() for k, v in sd.items() if torch.is_tensor(v)}, ` +
  `'model.safetensors')"`;

/**
 * Whether the first bytes are a PyTorch checkpoint: a zip archive (`torch.save` since 1.6:
 * `PK\x03\x04`) or a bare pickle (protocol 2+: `\x80` then the protocol number).
 */
function isPyTorchPickle(first: Uint8Array): boolean {
  const zip = first[0] === 0x50 && first[1] === 0x4b && first[2] === 0x03 && first[3] === 0x04;
  const pickle = first[0] === 0x80 && first[1] !== undefined && first[1] >= 2 && first[1] <= 5;
  return zip || pickle;
}

/** Reads the header length N from the first 8 bytes and checks it against the source size. */
function headerLength(first8: Uint8Array, size: number, file: string): number {
  if (size < 8 || first8.byteLength < 8) {
    throw new SafetensorsError(
      `File ${qf(file)} is ${size} bytes, too short to be safetensors (the 8-byte header length ` +
        "alone needs 8); it is truncated or not a safetensors file, so re-download or re-save it",
    );
  }
  if (isPyTorchPickle(first8)) {
    throw new SafetensorsError(
      `File ${qf(file)} is a PyTorch checkpoint (.ckpt / .pt / .bin: a pickle, which can run ` +
        "code when loaded), not safetensors; denoise does not read pickles, so convert it " +
        `once with PyTorch: ${CONVERT_COMMAND}`,
    );
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      `File ${qf(file)} declares a ${n}-byte header, over the ${MAX_HEADER_BYTES}-byte limit; ` +
        "it is corrupt or not a safetensors file",
    );
  }
  if (n > BigInt(size - 8)) {
    throw new SafetensorsError(
      `File ${qf(file)} declares a ${n}-byte header but only ${size - 8} bytes follow the ` +
        "length field; the file is truncated or not safetensors, so re-download or re-save it",
    );
  }
  return Number(n);
}

function parseDType(v: unknown, key: string, file: string): SafetensorsDType {
  if (typeof v === "string" && Object.hasOwn(DTYPE_BYTES, v)) return v as SafetensorsDType;
  throw new SafetensorsError(
    `Tensor ${quote(key)} in ${qf(file)} has unknown dtype ${show(v)}; known dtypes are ` +
      `${
        Object.keys(DTYPE_BYTES).join(", ")
      }, so the file is corrupt or from a newer format version`,
  );
}

/** Validates the header JSON bytes of a source of `size` bytes. */
function decodeHeader(json: Uint8Array, size: number, file: string): SafetensorsHeader {
  const n = json.byteLength;
  const dataStart = 8 + n;
  const dataLength = size - dataStart;
  if (json[0] === 0xef && json[1] === 0xbb && json[2] === 0xbf) {
    throw new SafetensorsError(
      `The header of ${qf(file)} starts with a UTF-8 byte-order mark, which the safetensors ` +
        "format does not allow; re-save the file with a safetensors library",
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    throw new SafetensorsError(
      `The header of ${qf(file)} is not valid UTF-8; the file is corrupt or not safetensors, ` +
        "so re-download or re-save it",
    );
  }
  if (text[0] !== "{") {
    throw new SafetensorsError(
      `The header of ${qf(file)} must be a JSON object starting with "{", but it starts with ` +
        `${quote(text.slice(0, 20))}; the file is corrupt or not safetensors`,
    );
  }
  let root: Map<string, JsonValue>;
  try {
    root = parseStrictJson(text);
  } catch (e) {
    if (!(e instanceof JsonSyntaxError)) throw e;
    throw new SafetensorsError(
      `The header of ${qf(file)} is not valid JSON (${e.message}); the file is ` +
        "corrupt or not safetensors, so re-download or re-save it",
    );
  }
  let metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [key, entry] of root) {
    if (key === "__metadata__") {
      if (entry !== null) metadata = decodeMetadata(entry, file); // null: none, as the reference
    } else tensors.set(key, decodeEntry(key, entry, dataLength, file));
  }
  checkContiguous(tensors, dataLength, file);
  return Object.freeze({ headerLength: n, dataStart, dataLength, metadata, tensors });
}

function decodeMetadata(entry: JsonValue, file: string): Record<string, string> {
  if (!(entry instanceof Map)) {
    throw new SafetensorsError(
      `The __metadata__ of ${qf(file)} is a ${kind(entry)}, not an object of strings; ` +
        "re-save the file with string metadata",
    );
  }
  const out: Record<string, string> = {};
  for (const [mk, mv] of entry) {
    if (typeof mv !== "string") {
      throw new SafetensorsError(
        `The __metadata__ of ${qf(file)} holds a ${kind(mv)} under ${quote(mk)}, but metadata ` +
          "values must be strings; re-save the file with string metadata",
      );
    }
    Object.defineProperty(out, mk, { value: mv, enumerable: true, writable: true });
  }
  return Object.freeze(out);
}

function decodeEntry(
  key: string,
  entry: JsonValue,
  dataLength: number,
  file: string,
): SafetensorsTensorInfo {
  if (!(entry instanceof Map)) {
    throw new SafetensorsError(
      `Tensor ${quote(key)} in ${qf(file)} has a header entry that is a ${kind(entry)}, not an ` +
        "object with dtype, shape and data_offsets; the file is corrupt",
    );
  }
  const dtype = parseDType(entry.get("dtype"), key, file);
  const shape = entry.get("shape");
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new SafetensorsError(
      `Tensor ${quote(key)} in ${qf(file)} has shape ${show(shape)}, which is not an array ` +
        "of whole numbers >= 0 written as integers; the file is corrupt",
    );
  }
  const off = entry.get("data_offsets");
  if (
    !Array.isArray(off) || off.length !== 2 || !isCount(off[0]) || !isCount(off[1]) ||
    off[0] > off[1]
  ) {
    throw new SafetensorsError(
      `Tensor ${quote(key)} in ${qf(file)} has data_offsets ${show(off)}, which is not a ` +
        "[begin, end] pair of integers with begin <= end; the file is corrupt",
    );
  }
  const [begin, end] = off as [number, number];
  let count = 1;
  for (const d of shape as number[]) count *= d;
  const want = count * DTYPE_BYTES[dtype];
  if (want !== end - begin) {
    throw new SafetensorsError(
      `Tensor ${quote(key)} in ${qf(file)} is ${dtype} of shape ${show(shape)}, which needs ` +
        `${want} bytes, but its data_offsets [${begin}, ${end}] span ${end - begin}; ` +
        "the file is corrupt",
    );
  }
  if (end > dataLength) {
    throw new SafetensorsError(
      `Tensor ${quote(key)} in ${qf(file)} has data_offsets [${begin}, ${end}] past the end ` +
        `of the ${dataLength}-byte data section; the file is truncated, so re-download or ` +
        "re-save it",
    );
  }
  return Object.freeze({
    dtype,
    shape: Object.freeze([...(shape as number[])]),
    dataOffsets: Object.freeze([begin, end] as const),
  });
}

/**
 * The reference rule: sorted by offset, the tensors tile the data section exactly, with no
 * overlap, no gap and no bytes after the last one.
 */
function checkContiguous(
  tensors: ReadonlyMap<string, SafetensorsTensorInfo>,
  dataLength: number,
  file: string,
): void {
  const order = [...tensors].sort((a, b) =>
    a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]
  );
  let at = 0, prev = "";
  for (const [key, t] of order) {
    const [begin, end] = t.dataOffsets;
    if (begin < at) {
      throw new SafetensorsError(
        `Tensors ${quote(prev)} and ${quote(key)} in ${qf(file)} overlap (bytes before ${at} ` +
          `and [${begin}, ${end})); the file is corrupt or crafted, so do not use it`,
      );
    }
    if (begin > at) {
      throw new SafetensorsError(
        `The data section of ${qf(file)} has ${begin - at} unused bytes before tensor ` +
          `${quote(key)} (bytes [${at}, ${begin})); the file is corrupt or crafted, so ` +
          "re-save it with a safetensors library",
      );
    }
    at = end;
    prev = key;
  }
  if (at !== dataLength) {
    throw new SafetensorsError(
      `The data section of ${qf(file)} has ${dataLength - at} bytes after the last tensor; ` +
        "the file is corrupt or crafted, so re-save it with a safetensors library",
    );
  }
}

async function readExactly(
  source: ByteSource,
  offset: number,
  length: number,
  what: string,
): Promise<Uint8Array> {
  const bytes: unknown = await source.read(offset, length);
  if (!(bytes instanceof Uint8Array)) {
    throw new SafetensorsError(
      `Reading ${what} of ${qf(source.name)} gave ${
        bytes === null ? "null" : typeof bytes
      }, not a Uint8Array; fix the ByteSource's read()`,
    );
  }
  if (bytes.byteLength !== length) {
    throw new SafetensorsError(
      `Reading ${what} of ${qf(source.name)} returned ${bytes.byteLength} of ${length} bytes; ` +
        "the file is truncated or changed while open, so re-download or re-save it",
    );
  }
  return bytes;
}

/**
 * Reads and validates the header of a safetensors source (only the header bytes are read).
 *
 * @example
 * ```ts
 * import { readSafetensorsHeader, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({ w: { data: new Float32Array(6), shape: [2, 3] } });
 * const header = await readSafetensorsHeader(bytes);
 * console.log(header.tensors.get("w")?.shape); // [2, 3]
 * ```
 */
export async function readSafetensorsHeader(
  source: ByteSource | Uint8Array | ArrayBuffer,
): Promise<SafetensorsHeader> {
  const src = source instanceof Uint8Array || source instanceof ArrayBuffer
    ? bytesSource(source)
    : checkSource(source);
  const first = await readExactly(src, 0, Math.min(8, src.size), "the header length");
  const n = headerLength(first, src.size, src.name);
  const json = await readExactly(src, 8, n, "the header");
  return decodeHeader(json, src.size, src.name);
}

// ---------------------------------------------------------------------------------------------
// Decoding tensor data

/**
 * An aligned buffer holding the bytes: the bytes' own buffer when they fill it (a fresh read),
 * else a copy (offsets inside a file or a shared buffer need not be aligned).
 */
function aligned(bytes: Uint8Array): ArrayBuffer {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer;
  return whole ? bytes.buffer as ArrayBuffer : bytes.slice().buffer;
}

/**
 * Decodes one tensor's bytes to f32. Little-endian hosts only (every WebGPU platform).
 * BF16 widens exactly; I64/U64 above 2^24 lose precision as f32 does.
 */
function decodeToF32(
  bytes: Uint8Array,
  dtype: SafetensorsDType,
  key: string,
  file: string,
): Float32Array {
  switch (dtype) {
    case "F32":
      return new Float32Array(aligned(bytes));
    case "F16":
      return Float32Array.from(new Float16Array(aligned(bytes)));
    case "BF16": {
      const src = new Uint16Array(aligned(bytes));
      const out = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
      return new Float32Array(out.buffer);
    }
    case "F64":
      return Float32Array.from(new Float64Array(aligned(bytes)));
    case "I64":
      return Float32Array.from(new BigInt64Array(aligned(bytes)), Number);
    case "U64":
      return Float32Array.from(new BigUint64Array(aligned(bytes)), Number);
    case "I32":
      return Float32Array.from(new Int32Array(aligned(bytes)));
    case "U32":
      return Float32Array.from(new Uint32Array(aligned(bytes)));
    case "I16":
      return Float32Array.from(new Int16Array(aligned(bytes)));
    case "U16":
      return Float32Array.from(new Uint16Array(aligned(bytes)));
    case "I8":
      return Float32Array.from(new Int8Array(aligned(bytes)));
    case "U8":
    case "BOOL":
      return Float32Array.from(bytes);
    default:
      throw new SafetensorsError(
        `Tensor ${quote(key)} in ${qf(file)} is ${dtype}, which denoise cannot read; convert the ` +
          "file to F32, F16 or BF16",
      );
  }
}

function missing(key: string, file: string, keys: readonly string[]): SafetensorsError {
  const some = keys.slice(0, 3).map((k) => `${quote(k)}`).join(", ");
  return new SafetensorsError(
    `File ${qf(file)} has no tensor ${quote(key)}` +
      (keys.length ? `; it has ${keys.length} tensors, such as ${some}` : "; it has no tensors") +
      ", so check the name or the checkpoint layout",
  );
}

// ---------------------------------------------------------------------------------------------
// Reader

/**
 * Reads tensors one at a time from a safetensors {@link ByteSource}; the header is validated
 * when the reader is created. On Deno, `SafetensorsFile.open(path)` (from `safetensors_fs.ts`)
 * gives a reader over a file.
 *
 * @example
 * ```ts
 * import { SafetensorsReader, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors({ w: { data: new Float32Array([1, 2]), shape: [2] } });
 * using r = await SafetensorsReader.fromBytes(bytes);
 * console.log(r.keys, await r.read("w")); // ["w"] Float32Array [1, 2]
 * ```
 */
export class SafetensorsReader {
  #source: ByteSource;
  #header: SafetensorsHeader;
  #keys: readonly string[];
  #closed = false;

  /** Wraps a source and its validated header; use the static constructors. */
  protected constructor(source: ByteSource, header: SafetensorsHeader) {
    this.#source = source;
    this.#header = header;
    this.#keys = Object.freeze([...header.tensors.keys()]);
  }

  /** Reads and validates the header of `source`, then returns a reader over it. */
  static async fromSource(source: ByteSource): Promise<SafetensorsReader> {
    return new SafetensorsReader(source, await readSafetensorsHeader(checkSource(source)));
  }

  /** A reader over bytes in memory (e.g. a `fetch` response's `bytes()`). */
  static fromBytes(bytes: Uint8Array | ArrayBuffer, name = "<bytes>"): Promise<SafetensorsReader> {
    return SafetensorsReader.fromSource(bytesSource(bytes, name));
  }

  /** The source's name (a path or URL). */
  get name(): string {
    return this.#source.name;
  }

  /** Tensor names in header order. */
  get keys(): readonly string[] {
    return this.#keys;
  }

  /** The `__metadata__` string map (empty when absent). */
  get metadata(): Readonly<Record<string, string>> {
    return this.#header.metadata;
  }

  /** The validated header. */
  get header(): SafetensorsHeader {
    return this.#header;
  }

  /** Whether the file holds a tensor named `key`. */
  has(key: string): boolean {
    return this.#header.tensors.has(key);
  }

  /** Dtype and shape of a tensor; throws {@link SafetensorsError} when it is missing. */
  info(key: string): { dtype: SafetensorsDType; shape: readonly number[] } {
    const t = this.#header.tensors.get(key);
    if (!t) throw missing(key, this.name, this.#keys);
    return { dtype: t.dtype, shape: t.shape };
  }

  /** The tensor's stored bytes, exactly as in the file (little-endian). */
  async readRaw(key: string): Promise<Uint8Array> {
    const t = this.#header.tensors.get(key);
    if (!t) throw missing(key, this.name, this.#keys);
    if (this.#closed) {
      throw new SafetensorsError(
        `File ${qf(this.name)} was closed before tensor ${quote(key)} was read; open it again`,
      );
    }
    const [begin, end] = t.dataOffsets;
    return await readExactly(
      this.#source,
      this.#header.dataStart + begin,
      end - begin,
      `tensor ${quote(key)}`,
    );
  }

  /** The tensor's values as f32 (F16 and BF16 widen exactly). */
  async read(key: string): Promise<Float32Array> {
    const { dtype } = this.info(key);
    return decodeToF32(await this.readRaw(key), dtype, key, this.name);
  }

  /** Closes the source. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#source.close?.();
  }

  /** `using r = ...` support. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** One tensor decoded by {@link parseSafetensors}. */
export interface SafetensorsEntry {
  /** Element type in the file. */
  dtype: SafetensorsDType;
  /** Dimensions. */
  shape: readonly number[];
  /** Values widened to f32. */
  data: Float32Array;
}

/**
 * Validates and decodes a whole safetensors buffer (small files; use {@link SafetensorsReader}
 * to read large ones tensor by tensor).
 *
 * @example
 * ```ts
 * import { parseSafetensors, serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors(
 *   { b: { data: new Float32Array([0.5]), shape: [1], dtype: "F16" } },
 *   { note: "hi" },
 * );
 * const { tensors, metadata } = parseSafetensors(bytes);
 * console.log(tensors.b?.data, metadata.note); // Float32Array [0.5] "hi"
 * ```
 */
export function parseSafetensors(
  input: Uint8Array | ArrayBuffer,
  name = "<bytes>",
): { metadata: Record<string, string>; tensors: Record<string, SafetensorsEntry> } {
  const bytes = toBytes(input, "parseSafetensors()");
  const n = headerLength(bytes.subarray(0, 8), bytes.byteLength, name);
  const header = decodeHeader(bytes.subarray(8, 8 + n), bytes.byteLength, name);
  const tensors: [string, SafetensorsEntry][] = [];
  for (const [key, t] of header.tensors) {
    const [begin, end] = t.dataOffsets;
    const raw = bytes.subarray(header.dataStart + begin, header.dataStart + end);
    tensors.push([key, {
      dtype: t.dtype,
      shape: t.shape,
      data: decodeToF32(raw, t.dtype, key, name),
    }]);
  }
  return { metadata: { ...header.metadata }, tensors: Object.fromEntries(tensors) };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** One tensor to write: f32 or f16 values, a shape, and the stored dtype (default: the data's). */
export interface SafetensorsInput {
  /** Values, row-major; their count must equal the shape's product. */
  data: Float32Array | Float16Array;
  /** Dimensions. */
  shape: readonly number[];
  /** Stored dtype; converted from `data` when it differs. */
  dtype?: "F32" | "F16";
}

/** A validated plan for writing: the header bytes, then each tensor's bytes in order. */
export interface SafetensorsPlan {
  /** The 8-byte length followed by the space-padded header JSON. */
  readonly header: Uint8Array;
  /** Total file size in bytes. */
  readonly size: number;
  /** Each tensor's stored bytes, in data-section order (converted lazily, one at a time). */
  chunks(): Iterable<Uint8Array>;
}

/**
 * Validates tensors and metadata and lays out a safetensors file without converting any data
 * yet. Throws {@link SafetensorsError} (naming `name`) before anything is written. Tensors with
 * wider elements come first so every tensor is aligned to its element size.
 */
export function planSafetensors(
  tensors: Readonly<Record<string, SafetensorsInput>>,
  metadata?: Readonly<Record<string, string>>,
  name = "<bytes>",
): SafetensorsPlan {
  const items: { key: string; t: SafetensorsInput; dtype: "F32" | "F16"; bytes: number }[] = [];
  for (const [key, t] of Object.entries(tensors)) {
    if (key === "" || key === "__metadata__") {
      throw new SafetensorsError(
        `Cannot write a tensor named ${show(key)} to ${
          qf(name)
        }; that name is reserved or empty, ` +
          "so rename the tensor",
      );
    }
    if (!isObject(t) || !(t.data instanceof Float32Array || t.data instanceof Float16Array)) {
      throw new SafetensorsError(
        `Tensor ${quote(key)} for ${
          qf(name)
        } must be { data: Float32Array | Float16Array, shape }; ` +
          "convert the data before writing",
      );
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isCount)) {
      throw new SafetensorsError(
        `Tensor ${quote(key)} for ${qf(name)} has shape ${
          show(t.shape)
        }, which is not an array of ` +
          "whole numbers >= 0; fix the shape",
      );
    }
    let count = 1;
    for (const d of t.shape) count *= d;
    if (count !== t.data.length) {
      throw new SafetensorsError(
        `Tensor ${quote(key)} for ${qf(name)} has ${t.data.length} values but shape ` +
          `[${t.shape.join(", ")}] holds ${count}; nothing was written, so fix the data or shape`,
      );
    }
    const dtype = t.dtype ?? (t.data instanceof Float16Array ? "F16" : "F32");
    if (dtype !== "F32" && dtype !== "F16") {
      throw new SafetensorsError(
        `Tensor ${quote(key)} for ${qf(name)} asks for dtype ${
          show(dtype)
        }; denoise writes F32 or F16`,
      );
    }
    items.push({ key, t, dtype, bytes: count * DTYPE_BYTES[dtype] });
  }
  if (metadata !== undefined) {
    if (!isObject(metadata)) {
      throw new SafetensorsError(
        `The metadata for ${qf(name)} must be an object of strings; got a ${kind(metadata)}`,
      );
    }
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(
          `The metadata for ${qf(name)} holds a ${kind(v)} under ${quote(k)}, but values must be ` +
            "strings; convert it (e.g. with JSON.stringify) before writing",
        );
      }
    }
  }
  // Stable: F32 before F16, insertion order otherwise.
  const layout = [...items].sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype]);
  const entries: Record<string, unknown> = {};
  if (metadata !== undefined) entries["__metadata__"] = metadata;
  let offset = 0;
  const offsets = new Map<string, [number, number]>();
  for (const it of layout) {
    offsets.set(it.key, [offset, offset + it.bytes]);
    offset += it.bytes;
  }
  for (const it of items) {
    Object.defineProperty(entries, it.key, {
      value: { dtype: it.dtype, shape: [...it.t.shape], data_offsets: offsets.get(it.key) },
      enumerable: true,
    });
  }
  let json = new TextEncoder().encode(JSON.stringify(entries));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const header = new Uint8Array(8 + json.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  header.set(json, 8);
  return {
    header,
    size: header.byteLength + offset,
    *chunks(): Iterable<Uint8Array> {
      for (const it of layout) {
        const d = it.t.data;
        const typed = it.dtype === "F32"
          ? (d instanceof Float32Array ? d : Float32Array.from(d))
          : (d instanceof Float16Array ? d : Float16Array.from(d));
        yield new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
      }
    },
  };
}

/**
 * Serializes tensors (F32 or F16) and optional `__metadata__` to safetensors bytes.
 *
 * @example
 * ```ts
 * import { serializeSafetensors } from "./safetensors.ts";
 * const bytes = serializeSafetensors(
 *   { "conv.weight": { data: new Float32Array(8), shape: [2, 1, 2, 2] } },
 *   { ss_network_dim: "4" },
 * );
 * console.log(bytes.byteLength);
 * ```
 */
export function serializeSafetensors(
  tensors: Readonly<Record<string, SafetensorsInput>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const plan = planSafetensors(tensors, metadata);
  const out = new Uint8Array(plan.size);
  out.set(plan.header);
  let at = plan.header.byteLength;
  for (const c of plan.chunks()) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// GPU tensors

/** Options of {@link loadTensor}. */
export interface LoadTensorOptions {
  /** GPU dtype (default f32). */
  dtype?: DType;
  /** Whether the tensor collects gradients. */
  requiresGrad?: boolean;
}

/**
 * Reads one tensor from a safetensors reader into a new GPU tensor.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { loadTensor, SafetensorsReader, serializeSafetensors } from "./safetensors.ts";
 * await getDevice();
 * const bytes = serializeSafetensors({ w: { data: new Float32Array([1, 2]), shape: [2] } });
 * using r = await SafetensorsReader.fromBytes(bytes);
 * using w = await loadTensor(r, "w");
 * console.log(await w.toArray());
 * ```
 */
export async function loadTensor(
  file: SafetensorsReader,
  key: string,
  options: LoadTensorOptions = {},
): Promise<Tensor> {
  const { dtype, shape } = file.info(key);
  const gpu = options.dtype ?? "f32";
  const data = gpu === "f16" && dtype === "F16"
    ? new Float16Array(aligned(await file.readRaw(key)))
    : await file.read(key);
  return tensor(data, shape, { dtype: gpu, requiresGrad: options.requiresGrad ?? false });
}

/**
 * Reads GPU tensors back into {@link SafetensorsInput}s for writing (all readbacks in flight at
 * once). `dtype` chooses the stored type (default: F32 for f32 tensors, F16 for f16 ones).
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { tensor } from "../ops/creation.ts";
 * import { serializeSafetensors, toSafetensorsInputs } from "./safetensors.ts";
 * await getDevice();
 * const inputs = await toSafetensorsInputs({ w: tensor([1, 2], [2]) });
 * console.log(serializeSafetensors(inputs).byteLength);
 * ```
 */
export async function toSafetensorsInputs(
  tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  options: { dtype?: "F32" | "F16" } = {},
): Promise<Record<string, SafetensorsInput>> {
  const list: [string, Tensor][] = tensors instanceof Map
    ? [...tensors]
    : Object.entries(tensors as Record<string, Tensor>);
  const data = await Promise.all(list.map(([, t]) => t.toArray()));
  return Object.fromEntries(list.map(([key, t], i) => [key, {
    data: data[i]!,
    shape: [...t.shape],
    dtype: options.dtype ?? (t.dtype === "f16" ? "F16" : "F32"),
  }]));
}
