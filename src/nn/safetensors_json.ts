/**
 * The strict JSON reader of safetensors headers: one pass, linear time, nesting at most
 * {@link MAX_JSON_DEPTH} levels, and as strict as the reference implementation's serde parse:
 * duplicate keys (at any level) are errors, objects keep their key order, and numbers written
 * with a fraction or an exponent (`2.0`, `1e0`) stay distinguishable from integers.
 *
 * @module
 */

/**
 * The deepest nesting accepted: serde_json's recursion limit, which bounds the reference
 * implementation (a valid header needs 3 levels: root, tensor entry, shape).
 */
export const MAX_JSON_DEPTH = 128;

/** A number written with a fraction or an exponent: never a valid count or offset. */
export class JsonFloat {
  /** Creates the wrapper of a parsed non-integer literal. */
  constructor(readonly value: number) {}
}

/**
 * A parsed JSON value: objects are `Map`s in key order, integers are numbers (integers beyond
 * 2^53 are {@link JsonFloat}s as well, since they cannot be held exactly).
 */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonFloat
  | JsonValue[]
  | Map<string, JsonValue>;

/** Where and why a header is not strict JSON. */
export class JsonSyntaxError extends Error {
  /** Creates the error for `reason` at character `at`. */
  constructor(readonly reason: string, readonly at: number) {
    super(`${reason} at character ${at}`);
  }
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const NUMBER_TAIL = /(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a, MINUS = 0x2d;
const OPEN_OBJ = 0x7b, CLOSE_OBJ = 0x7d, OPEN_ARR = 0x5b, CLOSE_ARR = 0x5d;

/**
 * Parses `text` as one JSON object (the whole text, trailing JSON whitespace allowed; the first
 * character must be `{`, as the reference requires). Throws {@link JsonSyntaxError}.
 *
 * @example
 * ```ts
 * import { JsonFloat, parseStrictJson } from "./safetensors_json.ts";
 * const m = parseStrictJson('{"shape": [2, 2.0]}');
 * console.log(m.get("shape")); // [2, JsonFloat { value: 2 }]
 * ```
 */
export function parseStrictJson(text: string): Map<string, JsonValue> {
  let i = 0;
  const n = text.length;
  const skip = () => {
    let c = text.charCodeAt(i);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i);
  };
  const fail = (reason: string): never => {
    throw new JsonSyntaxError(reason, i);
  };
  const str = (): string => {
    const start = ++i; // past the opening quote
    const close = text.indexOf('"', start);
    if (close < 0) fail("An unterminated string");
    const plain = text.slice(start, close);
    if (!plain.includes("\\")) {
      if (CONTROL.test(plain)) fail("A control character inside a string");
      i = close + 1;
      return plain;
    }
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) break;
      if (c < 0x20) fail("A control character inside a string");
      i += c === BACKSLASH ? 2 : 1;
    }
    if (i >= n) fail("An unterminated string");
    let out: string;
    try {
      out = JSON.parse(text.slice(start - 1, ++i));
    } catch {
      return fail("A bad escape in a string");
    }
    if (LONE_SURROGATE.test(out)) fail("A lone surrogate escape in a string");
    return out;
  };
  const num = (): JsonValue => {
    const start = i;
    if (text.charCodeAt(i) === MINUS) i++;
    const first = text.charCodeAt(i);
    if (!(first >= 0x30 && first <= 0x39)) fail("Expected a value");
    let v = 0;
    if (first === 0x30) i++;
    else {
      for (let c = first; c >= 0x30 && c <= 0x39; c = text.charCodeAt(++i)) v = v * 10 + c - 0x30;
    }
    NUMBER_TAIL.lastIndex = i;
    const tail = NUMBER_TAIL.exec(text)![0];
    i += tail.length;
    if (tail === "" && Number.isSafeInteger(v)) return text.charCodeAt(start) === MINUS ? -v : v;
    return new JsonFloat(Number(text.slice(start, i)));
  };
  const word = (w: string, v: JsonValue): JsonValue => {
    if (!text.startsWith(w, i)) fail("Expected a value");
    i += w.length;
    return v;
  };
  const value = (depth: number): JsonValue => {
    if (depth > MAX_JSON_DEPTH) fail(`Nesting deeper than ${MAX_JSON_DEPTH} levels`);
    skip();
    const c = text.charCodeAt(i);
    if (c === OPEN_OBJ) {
      i++;
      const map = new Map<string, JsonValue>();
      skip();
      if (text.charCodeAt(i) === CLOSE_OBJ) {
        i++;
        return map;
      }
      for (;;) {
        skip();
        if (text.charCodeAt(i) !== QUOTE) fail("Expected a quoted key");
        const keyAt = i;
        const key = str();
        if (map.has(key)) {
          i = keyAt;
          fail(`A duplicate key ${JSON.stringify(key.slice(0, 60))}`);
        }
        skip();
        if (text.charCodeAt(i++) !== COLON) fail("Expected ':' after a key");
        map.set(key, value(depth + 1));
        skip();
        const sep = text.charCodeAt(i++);
        if (sep === CLOSE_OBJ) return map;
        if (sep !== COMMA) fail("Expected ',' or '}' in an object");
      }
    }
    if (c === OPEN_ARR) {
      i++;
      const arr: JsonValue[] = [];
      skip();
      if (text.charCodeAt(i) === CLOSE_ARR) {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        skip();
        const sep = text.charCodeAt(i++);
        if (sep === CLOSE_ARR) return arr;
        if (sep !== COMMA) fail("Expected ',' or ']' in an array");
      }
    }
    if (c === QUOTE) return str();
    if (c === 0x74) return word("true", true);
    if (c === 0x66) return word("false", false);
    if (c === 0x6e) return word("null", null);
    return num();
  };
  if (text.charCodeAt(0) !== OPEN_OBJ) fail("The header must start with '{'");
  const root = value(1) as Map<string, JsonValue>;
  skip();
  if (i < n) fail("Extra text after the header object");
  return root;
}
