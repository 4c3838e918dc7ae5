/**
 * A YAML reader for the subset configuration files use (LDM's `v1-inference.yaml` and kin): block
 * mappings and sequences by indentation, flow sequences and mappings of scalars (`[1, 2]`,
 * `{a: 1}`), plain / single- / double-quoted scalars, numbers, booleans, null, and `#` comments.
 * Anchors, tags, multi-line scalars and multiple documents are refused with the line number.
 *
 * @module
 */
import { DenoiseError } from "../ops/errors.ts";

/** A YAML file outside the supported subset, or malformed. */
export class YamlError extends DenoiseError {}

/** A parsed YAML value. */
export type YamlValue = string | number | boolean | null | YamlValue[] | {
  [key: string]: YamlValue;
};

interface Line {
  indent: number;
  text: string;
  no: number;
}

function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (q) {
      if (c === q) q = null;
    } else if (c === '"' || c === "'") q = c;
    else if (c === "#" && (i === 0 || /\s/u.test(s[i - 1]!))) return s.slice(0, i);
  }
  return s;
}

/** A scalar: quoted string, number, boolean, null, or plain string. */
function scalar(raw: string, no: number): YamlValue {
  const s = raw.trim();
  if (s === "") return null;
  if (s.startsWith('"')) {
    try {
      return JSON.parse(s);
    } catch {
      throw new YamlError(`Line ${no}: the quoted string ${s} is not closed or has a bad escape`);
    }
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new YamlError(`Line ${no}: unclosed ${s}`);
    return s.slice(1, -1).replaceAll("''", "'");
  }
  if (s.startsWith("[") || s.startsWith("{")) return flow(s, no);
  if (/^[&*!|>]/u.test(s)) {
    throw new YamlError(
      `Line ${no}: "${s.slice(0, 20)}" uses anchors, tags or block scalars, which this reader ` +
        "does not support; write the value out",
    );
  }
  if (/^(true|True|TRUE)$/u.test(s)) return true;
  if (/^(false|False|FALSE)$/u.test(s)) return false;
  if (/^(null|Null|NULL|~)$/u.test(s)) return null;
  if (/^[-+]?(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?$/u.test(s) && /\d/u.test(s)) {
    return Number(s.replaceAll("_", ""));
  }
  if (/^[-+]?\.(inf|Inf|INF)$/u.test(s)) return s.startsWith("-") ? -Infinity : Infinity;
  return s;
}

/** A flow collection of scalars (nesting allowed). */
function flow(s: string, no: number): YamlValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new YamlError(`Line ${no}: ${what} in the flow collection ${s}`);
  };
  const value = (): YamlValue => {
    while (s[i] === " ") i++;
    if (s[i] === "[") {
      i++;
      const out: YamlValue[] = [];
      for (;;) {
        while (s[i] === " ") i++;
        if (s[i] === "]") return i++, out;
        out.push(value());
        while (s[i] === " ") i++;
        if (s[i] === ",") i++;
        else if (s[i] !== "]") fail("a missing comma or ]");
      }
    }
    if (s[i] === "{") {
      i++;
      const out: { [k: string]: YamlValue } = {};
      for (;;) {
        while (s[i] === " ") i++;
        if (s[i] === "}") return i++, out;
        const colon = s.indexOf(":", i);
        if (colon < 0) fail("a key without a colon");
        const key = String(scalar(s.slice(i, colon), no));
        i = colon + 1;
        out[key] = value();
        while (s[i] === " ") i++;
        if (s[i] === ",") i++;
        else if (s[i] !== "}") fail("a missing comma or }");
      }
    }
    const start = i;
    if (s[i] === '"' || s[i] === "'") {
      const q = s[i]!;
      i++;
      while (i < s.length && s[i] !== q) i += s[i] === "\\" && q === '"' ? 2 : 1;
      if (i >= s.length) fail("an unclosed quote");
      i++;
    } else while (i < s.length && !",]}".includes(s[i]!)) i++;
    return scalar(s.slice(start, i), no);
  };
  const v = value();
  while (s[i] === " ") i++;
  if (i !== s.length) fail(`text after the end ("${s.slice(i, i + 10)}")`);
  return v;
}

/** The `key: value` split of a line, or null when it is not a mapping entry. */
function keyValue(text: string): [string, string] | null {
  const m = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^"'#\s][^:#]*?)\s*:(?:\s+(.*)|$)/u.exec(text);
  if (!m) return null;
  const k = m[1]!;
  const key = k.startsWith('"') ? JSON.parse(k) : k.startsWith("'") ? k.slice(1, -1) : k;
  return [key, m[2] ?? ""];
}

/**
 * Parses YAML text of the supported subset.
 *
 * @example
 * ```ts
 * import { parseYaml } from "./yaml_subset.ts";
 * console.log(parseYaml("model:\n  params:\n    channel_mult: [1, 2, 4]\n")); // { model: { params: ... } }
 * ```
 */
export function parseYaml(text: string): YamlValue {
  const lines: Line[] = [];
  text.split(/\r?\n/u).forEach((raw, i) => {
    if (raw.includes("\t") && /^\s*\t/u.test(raw)) {
      throw new YamlError(`Line ${i + 1}: a tab indents this line; YAML indents with spaces`);
    }
    const t = stripComment(raw).replace(/\s+$/u, "");
    if (t.trim() === "" || t.trim() === "---") return;
    if (t.trim() === "...") return;
    lines.push({ indent: t.length - t.trimStart().length, text: t.trim(), no: i + 1 });
  });
  let pos = 0;
  const block = (indent: number): YamlValue => {
    const first = lines[pos];
    if (!first || first.indent < indent) return null;
    const ind = first.indent;
    if (first.text.startsWith("- ") || first.text === "-") {
      const out: YamlValue[] = [];
      while (pos < lines.length && lines[pos]!.indent === ind && lines[pos]!.text.startsWith("-")) {
        const l = lines[pos]!;
        const rest = l.text.slice(1).trim();
        pos++;
        if (rest === "") out.push(block(ind + 1));
        else if (keyValue(rest) && !rest.startsWith("[") && !rest.startsWith("{")) {
          // "- key: value" starts a mapping indented at the key
          lines.splice(pos, 0, { indent: ind + 2, text: rest, no: l.no });
          out.push(block(ind + 2));
        } else out.push(scalar(rest, l.no));
      }
      return out;
    }
    const out: { [k: string]: YamlValue } = {};
    while (pos < lines.length && lines[pos]!.indent === ind) {
      const l = lines[pos]!;
      const kv = keyValue(l.text);
      if (!kv) {
        throw new YamlError(
          `Line ${l.no}: expected "key: value" at this indentation, got "${l.text.slice(0, 40)}"`,
        );
      }
      const [key, rest] = kv;
      if (key in out) throw new YamlError(`Line ${l.no}: the key "${key}" appears twice`);
      pos++;
      if (rest === "") {
        const next = lines[pos];
        // a block sequence may sit at the key's own indentation
        out[key] = next && (next.indent > ind || (next.indent === ind && next.text.startsWith("-")))
          ? block(next.indent)
          : null;
      } else out[key] = scalar(rest, l.no);
    }
    return out;
  };
  if (lines.length === 0) return null;
  const v = block(lines[0]!.indent);
  if (pos < lines.length) {
    const l = lines[pos]!;
    throw new YamlError(`Line ${l.no}: "${l.text.slice(0, 40)}" is indented inconsistently`);
  }
  return v;
}
