/**
 * Plans: which module gets which adapter, rank and alpha, as plain data. kohya's defaults
 * (sd-scripts `networks/lora.py`), its 25-entry block lists, LyCORIS' `full` preset, the
 * block-wise LoRA paper's blocks (arXiv 2403.07500) and their presets.
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";
import type { UNetConfig } from "../nn/unet.ts";
import type { ClipTextConfig } from "../nn/clip.ts";
import { type ModuleInfo, textEncoderTree, unetTree } from "./tree.ts";

/** Error for a plan that cannot be built from its options. */
export class PlanError extends ArgumentError {
  /** A new error with a message that says what to change. */
  constructor(message: string) {
    super(message);
    this.name = "PlanError";
  }
}

/** Named target sets. */
export type PlanPreset =
  | "all"
  | "upper"
  | "middle"
  | "lower"
  | "attn-only"
  | "conv-only"
  | "full";

/** Every preset name. */
export const PLAN_PRESETS: readonly PlanPreset[] = Object.freeze([
  "all",
  "upper",
  "middle",
  "lower",
  "attn-only",
  "conv-only",
  "full",
]);

/** Options of {@link makePlan}. */
export interface PlanOptions {
  /** Rank of Linear and 1x1 conv modules (kohya's network_dim; default 4). */
  rank?: number;
  /** Their alpha (kohya's network_alpha; default 1). */
  alpha?: number;
  /** Rank of k x k convs (kohya's conv_dim); setting it adds the ResNet and sampler modules. */
  convRank?: number;
  /** Alpha of k x k convs (default 1; with `full`, the linear alpha). */
  convAlpha?: number;
  /** kohya's `block_dims`: 25 ranks by block index (0 = conv_in, never used). */
  blockDims?: number[];
  /** kohya's `block_alphas`: 25 alphas. */
  blockAlphas?: number[];
  /** kohya's `conv_block_dims`: 25 conv ranks; setting it adds the ResNet and sampler modules. */
  convBlockDims?: number[];
  /** kohya's `conv_block_alphas`: 25 conv alphas. */
  convBlockAlphas?: number[];
  /** The paper's blocks (`in0`.., `mid`, `out0`..) with their rank; 0 removes a block. */
  blockRanks?: Record<string, number>;
  /** Target set (default `all`); `upper`, `middle` and `lower` restrict the U-Net only. */
  preset?: PlanPreset;
  /** Whether the text encoder gets modules (default true; never with `conv-only`). */
  textEncoder?: boolean;
  /** Whether GroupNorm / LayerNorm layers in targeted blocks get norm adapters (default false). */
  norms?: boolean;
}

/** How a module is adapted. */
export type AdapterKind = "lora" | "locon" | "norm";

/** One planned module. */
export interface PlanEntry extends ModuleInfo {
  /** `lora` (Linear, 1x1 conv), `locon` (k x k conv) or `norm`. */
  adapter: AdapterKind;
  /** Rank (0 for norm adapters). */
  rank: number;
  /** Alpha (0 for norm adapters). */
  alpha: number;
}

/** A plan: the planned modules in model order. */
export interface LoraPlan {
  /** The modules that get an adapter. */
  entries: PlanEntry[];
}

const UPPER_MIDDLE_LOWER: Record<string, number> = { upper: 0, middle: 1, lower: 2 };

function checkRank(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new PlanError(`${what} must be a whole number >= 0, got ${value}`);
  }
}

function checkAlpha(value: number, what: string): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new PlanError(`${what} must be a finite number >= 0, got ${value}`);
  }
}

function checkList(
  list: number[] | undefined,
  name: string,
  config: UNetConfig,
  rank: boolean,
): void {
  if (list === undefined) return;
  if (list.length !== 25) {
    throw new PlanError(
      `${name} has ${list.length} entries; kohya's block lists have 25 (index 0 = conv_in, ` +
        "1-11 the down blocks, 12 the mid block, 13-24 the up blocks)",
    );
  }
  const n = config.blockOutChannels.length;
  if (n > 4 || config.layersPerBlock > 2) {
    throw new PlanError(
      `${name} cannot describe this U-Net: kohya's 25 indices (1 + 3i + j down, 13 + 3i + j up) ` +
        `fit at most 4 levels of at most 2 layers, and this model has ${n} levels of ` +
        `${config.layersPerBlock}; use blockRanks (in0.., mid, out0..) instead`,
    );
  }
  list.forEach((v, i) => (rank ? checkRank : checkAlpha)(v, `${name}[${i}]`));
}

/** The paper block names of a U-Net config: in0.., mid, out0... */
export function paperBlocks(config: UNetConfig): string[] {
  const n = config.blockOutChannels.length;
  return [
    ...Array.from({ length: n }, (_, i) => `in${i}`),
    "mid",
    ...Array.from({ length: n }, (_, i) => `out${i}`),
  ];
}

function presetBlocks(preset: PlanPreset, config: UNetConfig): Set<string> | null {
  const k = UPPER_MIDDLE_LOWER[preset];
  if (k === undefined) return null;
  const n = config.blockOutChannels.length;
  if (k >= n) {
    throw new PlanError(
      `The "${preset}" preset needs in${k} and out${n - 1 - k}, but this U-Net has only ${n} ` +
        "levels; pick blocks with blockRanks instead",
    );
  }
  return new Set([`in${k}`, `out${n - 1 - k}`]);
}

/**
 * Builds a plan for a U-Net (and optionally a text encoder) from their configs.
 *
 * @example
 * ```ts
 * import { SD15_CLIP_CONFIG } from "../nn/clip.ts";
 * import { SD15_UNET_CONFIG } from "../nn/unet.ts";
 * import { makePlan } from "./plan.ts";
 * const plan = makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { rank: 8, alpha: 4 });
 * console.log(plan.entries.length); // 264 (192 U-Net + 72 text encoder)
 * ```
 */
export function makePlan(
  unet: UNetConfig,
  textEncoder: ClipTextConfig | null,
  options: PlanOptions = {},
): LoraPlan {
  const preset = options.preset ?? "all";
  if (!PLAN_PRESETS.includes(preset)) {
    throw new PlanError(`Unknown preset "${preset}"; use one of ${PLAN_PRESETS.join(", ")}`);
  }
  const full = preset === "full", convOnly = preset === "conv-only";
  const rank = options.rank ?? 4, alpha = options.alpha ?? 1;
  checkRank(rank, "The rank");
  checkAlpha(alpha, "The alpha");
  const convOn = options.convRank !== undefined || options.convBlockDims !== undefined || full ||
    convOnly;
  const convRank = options.convRank ?? rank;
  const convAlpha = options.convAlpha ?? (full || convOnly ? alpha : 1);
  checkRank(convRank, "The conv rank");
  checkAlpha(convAlpha, "The conv alpha");
  checkList(options.blockDims, "blockDims", unet, true);
  checkList(options.blockAlphas, "blockAlphas", unet, false);
  checkList(options.convBlockDims, "convBlockDims", unet, true);
  checkList(options.convBlockAlphas, "convBlockAlphas", unet, false);
  const names = paperBlocks(unet);
  for (const [name, r] of Object.entries(options.blockRanks ?? {})) {
    if (!names.includes(name)) {
      throw new PlanError(`Unknown block "${name}"; this U-Net has ${names.join(", ")}`);
    }
    checkRank(r, `The rank of block ${name}`);
  }
  const only = presetBlocks(preset, unet);

  const targeted = (m: ModuleInfo): boolean => {
    if (preset === "attn-only") {
      return m.holder === "te_attn" || /\.attn[12]\./.test(m.path);
    }
    if (convOnly) return m.holder === "resnet" || m.holder === "sampler";
    switch (m.holder) {
      case "transformer":
      case "te_attn":
      case "te_mlp":
        return true;
      case "resnet":
      case "sampler":
        return convOn;
      case "top":
        return full && m.kind !== "group_norm";
      default:
        return false;
    }
  };
  const rankOf = (m: ModuleInfo, conv: boolean): [number, number] => {
    const i = m.kohyaIndex;
    let r = conv
      ? (i >= 0 && options.convBlockDims ? options.convBlockDims[i]! : convRank)
      : (i >= 0 && options.blockDims ? options.blockDims[i]! : rank);
    const a = conv
      ? (i >= 0 && options.convBlockAlphas ? options.convBlockAlphas[i]! : convAlpha)
      : (i >= 0 && options.blockAlphas ? options.blockAlphas[i]! : alpha);
    if (m.block !== null && options.blockRanks?.[m.block] !== undefined) {
      r = options.blockRanks[m.block]!;
    }
    if (only && m.component === "unet" && (m.block === null || !only.has(m.block))) r = 0;
    return [r, a];
  };

  const entries: PlanEntry[] = [];
  const teOn = textEncoder !== null && (options.textEncoder ?? true) && !convOnly;
  const modules = [...unetTree(unet), ...(teOn ? textEncoderTree(textEncoder) : [])];
  for (const m of modules) {
    const norm = m.kind === "group_norm" || m.kind === "layer_norm";
    if (norm) {
      if (!options.norms || m.holder === "top" || m.holder === "te_norm") continue;
      if (!targeted({ ...m, kind: "linear" })) continue;
      if (rankOf(m, false)[0] === 0) continue;
      entries.push({ ...m, adapter: "norm", rank: 0, alpha: 0 });
      continue;
    }
    if (!targeted(m)) continue;
    const conv = m.kind === "conv" && m.shape[2]! > 1;
    const [r, a] = rankOf(m, conv);
    if (r === 0) continue;
    entries.push({ ...m, adapter: conv ? "locon" : "lora", rank: r, alpha: a });
  }
  return { entries };
}
