/**
 * Argument handling shared by the commands: one option table per command (parsed strictly and
 * printed as its help), decimal numbers with stated ranges, and output paths checked before any
 * long work starts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DenoiseError } from "../ops/errors.ts";
import { quote } from "../nn/_untrusted.ts";

/** The command line does not fit the command: exit code 2, with the command's help hint. */
export class UsageError extends DenoiseError {
  /** The command whose help the hint names, when it is more than the first word (a sub-mode). */
  readonly command: string | undefined;
  /** Creates the error; `command` (e.g. `eval --ablation adabn`) overrides the hint's command. */
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

/** One option of a command. */
export interface OptionSpec {
  /** A flag (`boolean`) or an option taking a value (`string`). */
  readonly type: "string" | "boolean";
  /** A one-letter alias (`-h`). */
  readonly short?: string;
  /** The value's placeholder in the help, e.g. `<n>`. */
  readonly value?: string;
  /** One line of help, with the default and the range where there is one. */
  readonly help: string;
  /** Whether a valued option may be given more than once (its value is then a list). */
  readonly multiple?: boolean;
}

/** A command's options by long name. */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The parsed values of an option table: strings for valued options, booleans for flags. */
export type OptionValues<T extends OptionTable> = {
  [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean
    : T[K] extends { multiple: true } ? string[]
    : string;
};

/** Formats an option table as the `Options:` lines of a help text. */
export function formatOptions(table: OptionTable): string {
  const rows = Object.entries(table).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` ${o.value}` : ""}`;
    return [flag, o.help] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return rows.map(([f, h]) => `  ${f.padEnd(width)}${wrap(h, 98 - width, width + 2)}`).join("\n");
}

/** Wraps `text` at spaces to lines of at most `cols` characters, indenting the later ones. */
function wrap(text: string, cols: number, indent: number): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > cols) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${" ".repeat(indent)}`);
}

/**
 * Parses `args` against a command's option table. Unknown options, missing values and stray
 * words are {@link UsageError}s that name the offending argument.
 */
export function parseOptions<T extends OptionTable>(
  args: readonly string[],
  table: T,
  command: string,
): OptionValues<T> {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, o] of Object.entries(table)) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length) {
      throw new UsageError(
        `${command} takes no word ${quote(positionals[0])}; options start with --`,
      );
    }
    return values as OptionValues<T>;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as { code?: string }).code;
    const flag = /'([^']*)'/.exec((e as Error).message)?.[1]?.split(" ")[0] ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`${command} has no option ${quote(flag)}`);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      throw new UsageError(
        `The option ${quote(flag)} of ${command} needs a value (write ${flag}=<value> when ` +
          'the value starts with "-")',
      );
    }
    throw new UsageError(`Cannot read the arguments of ${command}: ${quote((e as Error).message)}`);
  }
}

/** The range of a number option, and what sets its limits (named in the error). */
export interface NumberRange {
  /** Smallest value accepted. */
  min: number;
  /** Largest value accepted. */
  max: number;
  /** What sets the limits, e.g. "the model's 1000 training timesteps" (optional). */
  why?: string;
}

const INTEGER = /^[+-]?[0-9]+$/;
const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;

function rangeText(kind: string, r: NumberRange): string {
  return `${kind} from ${r.min} to ${r.max}${r.why ? ` (${r.why})` : ""}`;
}

/**
 * Reads a whole-number option written in decimal digits (no `1e1`, `0x10`, `10.0` or empty
 * value) within `range`; `undefined` gives `fallback`.
 */
export function intOption(
  name: string,
  raw: string | undefined,
  fallback: number,
  range: NumberRange,
): number {
  if (raw === undefined) return fallback;
  const n = INTEGER.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw new UsageError(
      `--${name} must be a ${rangeText("whole number", range)}, written in decimal digits; ` +
        `got ${quote(raw)}`,
    );
  }
  return n;
}

/**
 * Reads a number option written in decimal notation (`7`, `7.5`, `-0.5`; no exponent, hex,
 * `Infinity` or empty value) within `range`; `undefined` gives `fallback`.
 */
export function numberOption(
  name: string,
  raw: string | undefined,
  fallback: number,
  range: NumberRange,
): number {
  if (raw === undefined) return fallback;
  const n = DECIMAL.test(raw) ? Number(raw) : NaN;
  if (!(n >= range.min && n <= range.max)) {
    throw new UsageError(
      `--${name} must be a ${rangeText("decimal number", range)}, such as ${fallback}; ` +
        `got ${quote(raw)}`,
    );
  }
  return n;
}

/**
 * Reads a choice option: one of `valid`, else a {@link UsageError} listing them;
 * `undefined` gives `fallback`.
 */
export function choiceOption<C extends string>(
  name: string,
  raw: string | undefined,
  fallback: C,
  valid: readonly C[],
): C {
  if (raw === undefined) return fallback;
  if ((valid as readonly string[]).includes(raw)) return raw as C;
  throw new UsageError(`--${name} must be one of ${valid.join(", ")}; got ${quote(raw)}`);
}

/**
 * Reads a comma-separated list option, each item read by `one` (which throws a
 * {@link UsageError} naming the option); empty items and repeats are errors. `undefined` gives
 * `fallback`.
 */
export function listOption<T>(
  name: string,
  raw: string | undefined,
  fallback: readonly T[],
  one: (item: string) => T,
): T[] {
  if (raw === undefined) return [...fallback];
  const items = raw.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) {
    throw new UsageError(`--${name} has an empty item in ${quote(raw)}; write e.g. ${fallback}`);
  }
  const values = items.map(one);
  const repeated = values.find((v, i) => values.indexOf(v) !== i);
  if (repeated !== undefined) {
    throw new UsageError(`--${name} names ${quote(String(repeated))} twice; list each once`);
  }
  return values;
}
