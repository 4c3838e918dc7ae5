// An independent strict safetensors parser for the fuzz test, written from the reference
// implementation's rules (huggingface/safetensors `SafeTensors::read_metadata` + serde_json) with
// different code from src/nn: a regex tokenizer and JSON.parse for values. Returns the decoded
// file, or the reason it is rejected.

const DTYPE_BYTES: Record<string, number> = {
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
}; // deno-fmt-ignore

/** A file the reference accepts: metadata and each tensor's dtype, shape and raw bytes. */
export interface ReferenceFile {
  metadata: Record<string, string>;
  tensors: Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>;
}

const TOKEN =
  // deno-lint-ignore no-control-regex
  /[ \t\n\r]+|"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null|[{}[\]:,]/y;

/**
 * Checks the token stream: duplicate keys in any object, numbers with a fraction or exponent
 * inside `shape` / `data_offsets`, nesting deeper than 128. Returns a reason or null.
 */
function scan(text: string): string | null {
  const stack: { keys: Set<string> | null; key: string | null; numeric: boolean }[] = [];
  let expectKey = false;
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (!m) return `bad token at ${at}`;
    const t = m[0];
    const c = t[0]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") continue;
    const top = stack.at(-1);
    if (c === "{" || c === "[") {
      if (stack.length >= 128) return "too deep";
      const numeric = c === "[" && (top?.key === "shape" || top?.key === "data_offsets");
      stack.push({ keys: c === "{" ? new Set() : null, key: null, numeric });
      expectKey = c === "{";
    } else if (c === "}" || c === "]") {
      stack.pop();
      expectKey = false;
    } else if (c === ",") expectKey = top?.keys !== null && top !== undefined;
    else if (c === ":") expectKey = false;
    else if (c === '"' && expectKey && top?.keys) {
      const key = JSON.parse(t) as string;
      if (top.keys.has(key)) return `duplicate key ${key}`;
      top.keys.add(key);
      top.key = key;
      expectKey = false;
    } else if (top?.numeric && /[.eE]/.test(t)) return "non-integer literal";
  }
  return null;
}

const LONE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function hasLoneSurrogate(v: unknown): boolean {
  if (typeof v === "string") return LONE.test(v);
  if (Array.isArray(v)) return v.some(hasLoneSurrogate);
  if (v !== null && typeof v === "object") {
    return Object.entries(v).some(([k, x]) => LONE.test(k) || hasLoneSurrogate(x));
  }
  return false;
}

/** Parses `bytes` by the reference rules; a string is the reason for a rejection. */
export function referenceParse(bytes: Uint8Array): ReferenceFile | string {
  if (bytes.byteLength < 8) return "too short";
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > 100_000_000n) return "header too large";
  if (n > BigInt(bytes.byteLength - 8)) return "header past the end";
  const hb = bytes.subarray(8, 8 + Number(n));
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(hb);
  } catch {
    return "not UTF-8";
  }
  if (!text.startsWith("{")) return "does not start with {";
  const why = scan(text);
  if (why) return why;
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  if (hasLoneSurrogate(root)) return "lone surrogate"; // serde_json refuses; JSON.parse keeps
  if (typeof root !== "object" || root === null || Array.isArray(root)) return "not an object";
  const data = bytes.subarray(8 + Number(n));
  const out: ReferenceFile = { metadata: {}, tensors: new Map() };
  const spans: [number, number][] = [];
  for (const [key, v] of Object.entries(root as Record<string, unknown>)) {
    if (key === "__metadata__") {
      if (v === null) continue;
      if (typeof v !== "object" || Array.isArray(v)) return "metadata not an object";
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== "string") return "metadata value not a string";
        out.metadata[mk] = mv;
      }
      continue;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) return "entry not an object";
    const e = v as Record<string, unknown>;
    const size = typeof e.dtype === "string" ? DTYPE_BYTES[e.dtype] : undefined;
    if (size === undefined) return "bad dtype";
    const whole = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
    if (!Array.isArray(e.shape) || !e.shape.every(whole)) return "bad shape";
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(whole)) return "bad offsets";
    const [b, end] = off as [number, number];
    if (b > end) return "begin after end";
    const count = (e.shape as number[]).reduce((a, d) => a * d, 1);
    if (count * size !== end - b) return "size mismatch";
    if (end > data.byteLength) return "past the end";
    spans.push([b, end]);
    out.tensors.set(key, {
      dtype: e.dtype as string,
      shape: e.shape as number[],
      bytes: data.subarray(b, end),
    });
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [b, end] of spans) {
    if (b !== at) return b < at ? "overlap" : "gap";
    at = end;
  }
  if (at !== data.byteLength) return "trailing bytes";
  return out;
}
