/**
 * The whole-run config file (`--config train.toml`): keys are flag names (kohya's underscores or
 * our hyphens), at the top level or inside tables, whose names only group them (kohya's
 * `read_config_from_file` flattens one level the same way). Flags given on the command line win.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { keyLine, parseToml } from "./toml.ts";

/** A flag value from the config file. */
export type FlagValue = string | number | boolean | (string | number)[];

/** Flag name in our spelling: `learning_rate` and `learning-rate` both give `learning-rate`. */
export function flagName(key: string): string {
  return key.replaceAll("_", "-");
}

/**
 * Reads a run config: every key becomes a flag in hyphen form. With `known`, a key that is not a
 * known flag is an error naming the file, line and key.
 *
 * @example
 * ```ts
 * import { parseRunConfig } from "./run_config.ts";
 * const flags = parseRunConfig('[training]\nlearning_rate = 1e-4\nnetwork_dim = 8', "train.toml");
 * console.log(flags); // { "learning-rate": 0.0001, "network-dim": 8 }
 * ```
 */
export function parseRunConfig(
  text: string,
  file: string,
  known?: readonly string[],
): Record<string, FlagValue> {
  const root = parseToml(text, file);
  const out: Record<string, FlagValue> = {};
  const knownSet = known ? new Set(known.map(flagName)) : null;
  const put = (key: string, value: unknown): void => {
    const at = (): string => `${file} line ${keyLine(text, key) || "?"}`;
    const flag = flagName(key);
    if (knownSet && !knownSet.has(flag)) {
      throw new ConfigError(
        `${at()}: ${key} is not a flag of this command; remove it or fix its name`,
      );
    }
    const ok = typeof value === "string" || typeof value === "boolean" ||
      (typeof value === "number" && Number.isFinite(value)) ||
      (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number"));
    if (!ok) {
      throw new ConfigError(`${at()}: ${key} must be a string, number, boolean or list of them`);
    }
    if (flag in out) throw new ConfigError(`${at()}: ${key} is set twice; keep one`);
    out[flag] = value as FlagValue;
  };
  for (const [key, value] of Object.entries(root)) {
    if (typeof value === "object" && value !== null && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) put(k, v);
    } else put(key, value);
  }
  return out;
}

/**
 * Turns config flags into command-line arguments to put before the real ones (so those win):
 * `true` gives `--flag`, `false` nothing, a list repeats the flag.
 *
 * @example
 * ```ts
 * import { configArgs } from "./run_config.ts";
 * console.log(configArgs({ "learning-rate": 0.0001, "save-state": true })); // ["--learning-rate", "0.0001", "--save-state"]
 * ```
 */
export function configArgs(flags: Record<string, FlagValue>): string[] {
  const args: string[] = [];
  for (const [flag, value] of Object.entries(flags)) {
    if (value === true) args.push(`--${flag}`);
    else if (value === false) continue;
    else if (Array.isArray(value)) { for (const v of value) args.push(`--${flag}`, String(v)); }
    else args.push(`--${flag}`, String(value));
  }
  return args;
}
