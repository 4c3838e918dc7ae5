/**
 * TOML parsing for the trainer's config files through smol-toml (pinned in deno.json), with syntax
 * errors turned into `ConfigError`s naming the file and line.
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "./errors.ts";

/** A parsed TOML table. */
export type TomlTable = Record<string, unknown>;

/**
 * Parses TOML text; a syntax error names `file` and the line.
 *
 * @example
 * ```ts
 * import { parseToml } from "./toml.ts";
 * console.log(parseToml("[general]\nbatch_size = 2", "dataset.toml")); // { general: { batch_size: 2 } }
 * ```
 */
export function parseToml(text: string, file: string): TomlTable {
  try {
    return parse(text) as TomlTable;
  } catch (e) {
    if (e instanceof TomlError) {
      const what = e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw new ConfigError(
        `${file} line ${e.line}, column ${e.column}: ${what}; fix the TOML syntax there`,
      );
    }
    throw e;
  }
}

/** The 1-based line where `key = ...` is first set in `text`, or 0 when not found. */
export function keyLine(text: string, key: string): number {
  const lines = text.split(/\r?\n/);
  const re = new RegExp(`^\\s*["']?${key.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&")}["']?\\s*=`);
  const i = lines.findIndex((l) => re.test(l));
  return i + 1;
}
