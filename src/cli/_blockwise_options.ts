/**
 * The options of `mod.ts eval --ablation blockwise`: the table they are parsed from and its help
 * printed from, and the checked settings of a run.
 *
 * @module
 */
import { unetConfigFromDiffusers } from "../nn/unet.ts";
import {
  choiceOption,
  formatOptions,
  intOption,
  listOption,
  type OptionTable,
  type OptionValues,
} from "./_args.ts";
import {
  ADAPTER_TYPES,
  type AdapterType,
  BLOCKWISE_PRESETS,
  type BlockwisePreset,
  presetMapping,
} from "./_blockwise_plan.ts";
import { bundledModelDir } from "./bundled.ts";
import { DEMO } from "./train_demo.ts";

/** The default run folder. */
const OUTPUT_DIR = "runs/ablation_blockwise";

/** The options, parsed from this table and printed as the help. */
export const BLOCKWISE_OPTIONS = {
  seeds: {
    type: "string",
    value: "<list>",
    help: "training seeds, comma-separated whole numbers from 0 to 4294967295 (default " +
      "1,2,3); the prompts and their noise are the same for every seed",
  },
  steps: {
    type: "string",
    value: "<n>",
    help: `training steps of every adapter, 1 to 100000 (default ${DEMO.steps}, the demo's)`,
  },
  images: {
    type: "string",
    value: "<n>",
    help: `prompts per prompt set, 1 to 1000 (default ${DEMO.images})`,
  },
  "sample-steps": {
    type: "string",
    value: "<n>",
    help: `sampling steps per image, 1 to 1000 (default ${DEMO.sampleSteps})`,
  },
  presets: {
    type: "string",
    value: "<list>",
    help: `block-wise presets, comma-separated from ${BLOCKWISE_PRESETS.join(", ")} (default all)`,
  },
  types: {
    type: "string",
    value: "<list>",
    help: `adapter types, comma-separated from ${ADAPTER_TYPES.join(", ")} (default both)`,
  },
  "output-dir": {
    type: "string",
    value: "<dir>",
    help: `run folder, created if needed (default ${OUTPUT_DIR})`,
  },
  model: {
    type: "string",
    value: "<folder>",
    help: "diffusers folder of the base model (default: the shipped models/mini_sd)",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** A run's checked settings. */
export interface BlockwiseSettings {
  /** Training seeds. */
  seeds: number[];
  /** Training steps per adapter. */
  steps: number;
  /** Prompts per set. */
  images: number;
  /** Sampling steps per image. */
  sampleSteps: number;
  /** Presets. */
  presets: BlockwisePreset[];
  /** Adapter types. */
  types: AdapterType[];
  /** Run folder. */
  outputDir: string;
  /** Base model folder. */
  model: string;
}

/**
 * Reads the parsed options into settings; a bad value is a {@link UsageError} naming the option,
 * the value and what it accepts.
 *
 * @example
 * ```ts
 * import { readBlockwiseSettings } from "./_blockwise_options.ts";
 * console.log(readBlockwiseSettings({ seeds: "4,5", types: "locon" }).types); // ["locon"]
 * ```
 */
export function readBlockwiseSettings(
  v: OptionValues<typeof BLOCKWISE_OPTIONS>,
): BlockwiseSettings {
  const small = { min: 1, max: 1000 };
  return {
    seeds: listOption(
      "seeds",
      v.seeds,
      [1, 2, 3],
      (s) => intOption("seeds", s, 0, { min: 0, max: 2 ** 32 - 1 }),
    ),
    steps: intOption("steps", v.steps, DEMO.steps, { min: 1, max: 100_000 }),
    images: intOption("images", v.images, DEMO.images, small),
    sampleSteps: intOption("sample-steps", v["sample-steps"], DEMO.sampleSteps, small),
    presets: listOption(
      "presets",
      v.presets,
      BLOCKWISE_PRESETS,
      (s) => choiceOption("presets", s, "upper", BLOCKWISE_PRESETS),
    ),
    types: listOption(
      "types",
      v.types,
      ADAPTER_TYPES,
      (s) => choiceOption("types", s, "lora", ADAPTER_TYPES),
    ),
    outputDir: v["output-dir"] ?? OUTPUT_DIR,
    model: v.model ?? bundledModelDir(),
  };
}

/**
 * The help text, with the presets' blocks on the shipped mini SD (read from its U-Net config).
 *
 * @example
 * ```ts ignore
 * console.log(await blockwiseHelp());
 * ```
 */
export async function blockwiseHelp(): Promise<string> {
  const json = JSON.parse(await Deno.readTextFile(`${bundledModelDir()}/unet/config.json`));
  const mapping = presetMapping(unetConfigFromDiffusers(json));
  return `Usage: deno run -A mod.ts eval --ablation blockwise [options]

Seed 002's claim, measured: block-wise adapters (only some U-Net blocks) combine an identity and
a style better than all-block LoRA / LoCon, the "upper" blocks keeping them best. Per seed it
trains the identity LoRA (datasets/zqstar) and the style LoRA (datasets/vxstripe) on all blocks
and on each preset, as LoRA and LoCon, with the train demo's settings (rank = alpha =
${DEMO.rank}, batch ${DEMO.batchSize}, 32x32, learning rate ${DEMO.learningRate}, text encoder included). It measures each
adapter alone (identity accuracy with the ID trigger, style score with the style trigger), and
per type the compositions ID + style, block-wise ID + style, ID + block-wise style and both
block-wise (same preset), applied unmerged, on prompts with both triggers; and everything on
prompts without triggers (mean attribute accuracy: does it forget?). Identity accuracy = share
the attribute classifier reads as a star; style score = share read with the striped fill.
Sampling: ${DEMO.sampler}, cfg ${DEMO.cfg}, prompt i with noise seed i.

Presets as kohya block_dims / conv_block_dims (rank ${DEMO.rank} on these indices, 0 = no adapter
elsewhere) on the shipped mini SD, where in<i> = down_blocks.<i>, out<i> = up_blocks.<i>:
${mapping.map((l) => `  ${l}`).join("\n")}

Writes table.md, results.json, chart.svg and index.html (claims and every sample grid) into the
run folder, the LoRA files and grids under seed<k>/, and prints the table.

Options:
${formatOptions(BLOCKWISE_OPTIONS)}`;
}
