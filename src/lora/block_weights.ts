/**
 * Per-block weights at inference, as A1111's LoRA Block Weight extension (hako-mikan,
 * `scripts/lora_block_weight.py`) defines them: 26 values BASE, IN00..IN11, M00, OUT00..OUT11
 * (BASE = the text encoder), or the 17-value form BASE, IN01, IN02, IN04, IN05, IN07, IN08, M00,
 * OUT03..OUT11 (blocks it leaves out get 0), or a preset name; plus our paper blocks
 * (`in0=1,out3=0.5`, unnamed blocks 1).
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";
import type { ModuleInfo } from "./tree.ts";

/** The 26 block names of A1111's LoRA Block Weight lists. */
export const LBW_BLOCKS_26: readonly string[] = Object.freeze([
  "BASE",
  ...Array.from({ length: 12 }, (_, i) => `IN${String(i).padStart(2, "0")}`),
  "M00",
  ...Array.from({ length: 12 }, (_, i) => `OUT${String(i).padStart(2, "0")}`),
]);

/** The 17 block names of the short list (the blocks a default kohya LoRA has). */
export const LBW_BLOCKS_17: readonly string[] = Object.freeze([
  "BASE",
  "IN01",
  "IN02",
  "IN04",
  "IN05",
  "IN07",
  "IN08",
  "M00",
  ...Array.from({ length: 9 }, (_, i) => `OUT${String(i + 3).padStart(2, "0")}`),
]);

const bits = (s: string) => s.split("").map(Number);

/** A1111 LoRA Block Weight's built-in presets (17 values each). */
export const LBW_PRESETS: Readonly<Record<string, readonly number[]>> = Object.freeze({
  NONE: bits("00000000000000000"),
  ALL: bits("11111111111111111"),
  INS: bits("11110000000000000"),
  IND: bits("10001110000000000"),
  INALL: bits("11111110000000000"),
  MIDD: bits("10001111111100000"),
  OUTD: bits("10000000111100000"),
  OUTS: bits("10000000000011111"),
  OUTALL: bits("10000000111111111"),
  "ALL0.5": new Array<number>(17).fill(0.5),
});

/** The paper's block names our `name=value` form accepts (besides `BASE` / `te`). */
const PAPER = /^(in\d+|mid|out\d+)$/;

/**
 * Per-block weights: `base` for the text encoder, `lbw26` for U-Net blocks by A1111 index, and
 * `paper` for the paper's blocks (multiplied in).
 */
export interface BlockWeights {
  /** The 26 A1111 weights (index 0 = BASE = text encoder). */
  lbw26: number[];
  /** Weights by paper block (`in0`, `mid`, ...), multiplied with the A1111 weight. */
  paper: Record<string, number>;
}

/**
 * Parses a block-weight spec: a preset name (`OUTD`), 17 or 26 comma-separated numbers, or
 * `name=value` pairs over BASE / te, IN00..OUT11 and in0..out3 / mid.
 *
 * @example
 * ```ts
 * import { parseBlockWeights } from "./block_weights.ts";
 * console.log(parseBlockWeights("OUTD").lbw26.length); // 26
 * console.log(parseBlockWeights("in0=0,out3=0.5").paper); // { in0: 0, out3: 0.5 }
 * ```
 */
export function parseBlockWeights(spec: string): BlockWeights {
  const s = spec.trim();
  const preset = LBW_PRESETS[s.toUpperCase()];
  if (preset) return { lbw26: expand17([...preset]), paper: {} };
  const lbw26 = new Array<number>(26).fill(1);
  if (s.includes("=")) {
    const paper: Record<string, number> = {};
    for (const part of s.split(",")) {
      const [rawName, rawValue] = part.split("=").map((t) => t.trim());
      const value = number(rawValue ?? "", `the weight of "${rawName}"`, spec);
      const name = rawName ?? "";
      const upper = name.toUpperCase() === "TE" ? "BASE" : name.toUpperCase();
      const at = LBW_BLOCKS_26.indexOf(upper);
      if (at >= 0) lbw26[at] = value;
      else if (PAPER.test(name)) paper[name] = value;
      else {
        throw new ArgumentError(
          `Unknown block "${name}" in block weights "${spec}"; use BASE (or te), IN00..IN11, ` +
            "M00, OUT00..OUT11, in0..in3, mid or out0..out3",
        );
      }
    }
    return { lbw26, paper };
  }
  const values = s.split(",").map((v, i) => number(v, `value ${i + 1}`, spec));
  if (values.length === 26) return { lbw26: values, paper: {} };
  if (values.length === 17) return { lbw26: expand17(values), paper: {} };
  throw new ArgumentError(
    `Block weights "${spec}" have ${values.length} values; give 17 or 26 numbers, a preset ` +
      `(${Object.keys(LBW_PRESETS).join(", ")}) or name=value pairs`,
  );
}

function number(text: string, what: string, spec: string): number {
  const v = text.trim() === "" ? NaN : Number(text);
  if (!Number.isFinite(v)) {
    throw new ArgumentError(`Block weights "${spec}": ${what} is "${text}", not a finite number`);
  }
  return v;
}

function expand17(values: number[]): number[] {
  const out = new Array<number>(26).fill(0);
  LBW_BLOCKS_17.forEach((name, i) => out[LBW_BLOCKS_26.indexOf(name)] = values[i]!);
  return out;
}

/**
 * The weight of one module: BASE for the text encoder; for the U-Net, the A1111 block of its
 * kohya index (conv_in is IN00) times its paper block's weight; 1 for layers in no block
 * (time embedding, conv_out), as A1111's extension leaves them.
 */
export function blockWeightOf(weights: BlockWeights, module: ModuleInfo): number {
  if (module.component === "text_encoder") return weights.lbw26[0]!;
  const at = module.path === "conv_in" ? 1 : module.kohyaIndex >= 0 ? 1 + module.kohyaIndex : -1;
  const a = at >= 0 ? weights.lbw26[at] ?? 1 : 1;
  const p = module.block !== null ? weights.paper[module.block] ?? 1 : 1;
  return a * p;
}
