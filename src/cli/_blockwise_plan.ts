/**
 * The block-wise ablation's adapters (issue 12, seed 002): which U-Net blocks each preset
 * selects, as kohya's 25-entry `block_dims` / `conv_block_dims` that the trainer takes, and the
 * trainer options of every adapter (the `train` demo's settings, one concept, one block choice,
 * LoRA or LoCon).
 *
 * @module
 */
import type { UNetConfig } from "../nn/unet.ts";
import { unetTree } from "../lora/tree.ts";
import { type ConceptSet, IDENTITY_CONCEPT } from "../eval/concepts.ts";
import type { TrainOptions } from "../train/trainer_fs.ts";
import { bundledDatasetDir } from "./bundled.ts";
import { DEMO } from "./train_demo.ts";

/** A block-wise preset. */
export type BlockwisePreset = "upper" | "middle" | "lower";

/** Every preset, in the order of the tables. */
export const BLOCKWISE_PRESETS: readonly BlockwisePreset[] = ["upper", "middle", "lower"];

/** Which blocks an adapter covers: all of them, or a preset's. */
export type BlockChoice = "all" | BlockwisePreset;

/** LoRA (attention and 1x1 layers) or LoCon (the 3x3 convs too). */
export type AdapterType = "lora" | "locon";

/** Every adapter type. */
export const ADAPTER_TYPES: readonly AdapterType[] = ["lora", "locon"];

/** How the tables write each type. */
export const TYPE_LABEL: Readonly<Record<AdapterType, string>> = { lora: "LoRA", locon: "LoCon" };

/** The kohya block list length (index 0 = conv_in, 1-11 down, 12 mid, 13-24 up). */
const KOHYA_BLOCKS = 25;

/**
 * The paper blocks of a preset on a U-Net with `n` levels: upper = the highest-resolution down
 * block and the last up block (in0 + out{n-1}), middle = the mid block, lower = the
 * lowest-resolution down block and the first up block (in{n-1} + out0). On SD 1.x (4 levels)
 * "upper" is the paper's in0 + out3.
 *
 * @example
 * ```ts
 * import { presetBlocks } from "./_blockwise_plan.ts";
 * console.log(presetBlocks("upper", 2)); // ["in0", "out1"]
 * ```
 */
export function presetBlocks(preset: BlockwisePreset, levels: number): string[] {
  if (preset === "middle") return ["mid"];
  return preset === "upper" ? ["in0", `out${levels - 1}`] : [`in${levels - 1}`, "out0"];
}

/**
 * kohya's block indices (1..24) of the preset's blocks on this U-Net: the indices its modules
 * carry in the trainer's plan (`unetTree`), sorted.
 *
 * @example
 * ```ts
 * import { unetConfig } from "../nn/unet.ts";
 * import { presetIndices } from "./_blockwise_plan.ts";
 * const mini = unetConfig({ blockOutChannels: [64, 128], layersPerBlock: 1 });
 * console.log(presetIndices("middle", mini)); // [12]
 * ```
 */
export function presetIndices(preset: BlockwisePreset, config: UNetConfig): number[] {
  const blocks = new Set(presetBlocks(preset, config.blockOutChannels.length));
  const found = unetTree(config).filter((m) => m.block !== null && blocks.has(m.block));
  return [...new Set(found.map((m) => m.kohyaIndex))].sort((a, b) => a - b);
}

/**
 * One line per preset stating its blocks (`in<i>` = `down_blocks.<i>`, `out<i>` = `up_blocks.<i>`,
 * `mid` = `mid_block`), their kohya indices on this U-Net, and which of them hold attention (what
 * a plain LoRA adapts there).
 *
 * @example
 * ```ts ignore
 * for (const line of presetMapping(models.unet.config)) console.log(line);
 * ```
 */
export function presetMapping(config: UNetConfig): string[] {
  const n = config.blockOutChannels.length, tree = unetTree(config);
  return BLOCKWISE_PRESETS.map((p) => {
    const blocks = presetBlocks(p, n);
    const attention = blocks.filter((b) =>
      tree.some((m) => m.block === b && m.holder === "transformer")
    );
    const note = attention.length === blocks.length
      ? "attention in each"
      : attention.length
      ? `attention only in ${attention.join(", ")}`
      : "no attention, so a LoRA there adapts only the text encoder";
    return `${p}: ${blocks.join(" + ")}, kohya indices ` +
      `${presetIndices(p, config).join(", ")}; ${note}`;
  });
}

/** One trained adapter of the ablation. */
export interface AdapterSpec {
  /** The concept it learns. */
  concept: ConceptSet;
  /** The blocks it covers. */
  blocks: BlockChoice;
  /** LoRA or LoCon. */
  type: AdapterType;
}

/**
 * The adapter's file stem: `<trigger>_<blocks>_<type>`.
 *
 * @example
 * ```ts
 * import { IDENTITY_CONCEPT } from "../eval/concepts.ts";
 * import { adapterName } from "./_blockwise_plan.ts";
 * console.log(adapterName({ concept: IDENTITY_CONCEPT, blocks: "upper", type: "locon" }));
 * // "zqstar_upper_locon"
 * ```
 */
export function adapterName(spec: AdapterSpec): string {
  return `${spec.concept.trigger}_${spec.blocks}_${spec.type}`;
}

/**
 * The adapter's row label: `ID upper LoCon`, `style all LoRA`.
 *
 * @example
 * ```ts
 * import { STYLE_CONCEPT } from "../eval/concepts.ts";
 * import { adapterLabel } from "./_blockwise_plan.ts";
 * console.log(adapterLabel({ concept: STYLE_CONCEPT, blocks: "all", type: "lora" }));
 * // "style all LoRA"
 * ```
 */
export function adapterLabel(spec: AdapterSpec): string {
  const who = spec.concept === IDENTITY_CONCEPT ? "ID" : "style";
  return `${who} ${spec.blocks} ${TYPE_LABEL[spec.type]}`;
}

/** Where and how long one adapter trains. */
export interface AdapterRun {
  /** The base model. */
  model: string;
  /** Its U-Net's config (for the block indices). */
  config: UNetConfig;
  /** The folder of the LoRA file. */
  outputDir: string;
  /** Training steps. */
  steps: number;
  /** Seed of the data order, noise and adapter initialization. */
  seed: number;
}

/**
 * The trainer options of one adapter: the `train` demo's settings (rank = alpha = 8, batch 4,
 * 32x32, learning rate 1e-3) on the concept's shipped set; LoCon adds 3x3 convs at the same rank
 * and alpha; a preset puts the rank on its blocks' kohya indices and 0 (no module) elsewhere.
 *
 * @example
 * ```ts ignore
 * const o = adapterTrainOptions({ concept: STYLE_CONCEPT, blocks: "upper", type: "locon" }, run);
 * console.log(o.blockDims, o.convBlockDims);
 * ```
 */
export function adapterTrainOptions(spec: AdapterSpec, run: AdapterRun): TrainOptions {
  const rank = DEMO.rank;
  const dims = spec.blocks === "all" ? undefined : (() => {
    const on = new Set(presetIndices(spec.blocks, run.config));
    return Array.from({ length: KOHYA_BLOCKS }, (_, i) => (on.has(i) ? rank : 0));
  })();
  const locon = spec.type === "locon";
  return {
    // the network, then the data and the run (the demo's values)
    networkDim: rank,
    networkAlpha: rank,
    learningRate: DEMO.learningRate,
    trainBatchSize: DEMO.batchSize,
    seed: run.seed,
    maxTrainSteps: run.steps,
    logEvery: Math.min(5, run.steps),
    pretrainedModelNameOrPath: run.model,
    trainDataDir: bundledDatasetDir(spec.concept.name),
    captionExtension: ".txt",
    resolution: 32,
    cacheLatents: true,
    outputDir: run.outputDir,
    outputName: adapterName(spec),
    ...(locon ? { convDim: rank, convAlpha: rank } : {}),
    ...(dims ? { blockDims: dims } : {}),
    ...(dims && locon ? { convBlockDims: dims } : {}),
  };
}
