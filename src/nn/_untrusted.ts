/**
 * Text from files and command lines made safe to print: control characters shown as escapes
 * (`\x1b`), and long values cut to a short prefix, so a crafted name can neither drive the
 * terminal nor flood an error message.
 *
 * @module
 */

/** Longest quoted value in an error message, in characters. */
export const QUOTE_CHARS = 60;

/**
 * Replaces C0/C1 control characters, DEL and the Unicode line and bidi controls with escapes
 * (`\x1b`, `\u202e`); printable text, including non-ASCII letters, passes unchanged.
 */
export function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16)}`;
  });
}

/**
 * Quotes an untrusted value for a message: at most `max` characters of it (then `...`), with
 * control characters escaped. Values that are not strings are described by their kind, never
 * serialized whole.
 */
export function quote(value: unknown, max: number = QUOTE_CHARS): string {
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (value !== null && typeof value === "object") return "an object";
  if (typeof value !== "string") return escapeControls(String(value).slice(0, max));
  const cut = value.slice(0, max);
  return `"${escapeControls(cut)}"${cut.length < value.length ? "..." : ""}`;
}
