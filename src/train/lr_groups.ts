/**
 * Per-parameter learning rates, as kohya's `LoRANetwork.prepare_optimizer_params` builds its
 * parameter groups (sd-scripts `networks/lora.py`): the U-Net's adapters at `unet_lr` times the
 * block weight of their block (`down_lr_weight` / `mid_lr_weight` / `up_lr_weight`), the text
 * encoder's at `text_encoder_lr`, and LoRA+ (`loraplus_lr_ratio`) multiplying the rate of every
 * `lora_up` weight.
 *
 * @module
 */
import type { LoraComponent } from "../lora/file_types.ts";
import { ConfigError } from "./errors.ts";

export type { LoraComponent };

/** kohya's `LoRANetwork.NUM_OF_BLOCKS`: down and up weights have 12 entries each. */
export const LR_WEIGHT_BLOCKS = 12;

const UPDOWN = /^(up|down)_blocks\.(\d+)\.(resnets|upsamplers|downsamplers|attentions)\.(\d+)\./;

/**
 * kohya's `get_block_index` for a U-Net module path (diffusers dots): 1..11 for down blocks
 * (`3 i + j + 1`, samplers at `3 i + 2`), 12 for the mid block, 13.. for up blocks, -1 for the
 * rest (conv_in, time embedding, conv_out).
 *
 * @example
 * ```ts
 * import { blockIndex } from "./lr_groups.ts";
 * console.log(blockIndex("down_blocks.1.attentions.0.proj_in")); // 4
 * ```
 */
export function blockIndex(path: string): number {
  const m = UPDOWN.exec(path);
  if (m) {
    const i = Number(m[2]), j = Number(m[4]);
    const idx = m[3] === "upsamplers" || m[3] === "downsamplers" ? 3 * i + 2 : 3 * i + j;
    return m[1] === "down" ? 1 + idx : LR_WEIGHT_BLOCKS + 1 + idx;
  }
  return path.startsWith("mid_block.") ? LR_WEIGHT_BLOCKS : -1;
}

function preset(name: string, flag: string): number[] {
  const [kind = "", base = "0"] = name.split("+");
  const b = Number(base);
  if (!Number.isFinite(b)) throw new ConfigError(`${flag}: "${base}" after + is not a number`);
  const n = LR_WEIGHT_BLOCKS, at = (i: number) => i / (n - 1);
  const idx = Array.from({ length: n }, (_, i) => i);
  switch (kind) {
    case "cosine":
      return idx.reverse().map((i) => Math.sin(Math.PI * at(i) / 2) + b);
    case "sine":
      return idx.map((i) => Math.sin(Math.PI * at(i) / 2) + b);
    case "linear":
      return idx.map((i) => at(i) + b);
    case "reverse_linear":
      return idx.reverse().map((i) => at(i) + b);
    case "zeros":
      return idx.map(() => b);
  }
  throw new ConfigError(
    `${flag} must be 12 comma-separated numbers or one of cosine, sine, linear, ` +
      `reverse_linear, zeros (optionally +<number>); got "${name}"`,
  );
}

/**
 * Parses kohya's `down_lr_weight` / `up_lr_weight`: 12 comma-separated numbers, or a preset
 * (`cosine`, `sine`, `linear`, `reverse_linear`, `zeros`, with an optional `+base`). Shorter
 * lists are padded with 1 and longer ones cut to 12, as kohya does.
 *
 * @example
 * ```ts
 * import { parseBlockLrWeight } from "./lr_groups.ts";
 * console.log(parseBlockLrWeight("zeros+0.5", "down_lr_weight")[0]); // 0.5
 * ```
 */
export function parseBlockLrWeight(text: string, flag: string): number[] {
  const list = text.includes(",") || /^[0-9.]/.test(text.trim())
    ? text.split(",").map((s) => {
      const v = Number(s.trim());
      if (s.trim() === "" || !(v >= 0 && v < Infinity)) {
        throw new ConfigError(`${flag}: "${s.trim()}" is not a number >= 0`);
      }
      return v;
    })
    : preset(text.trim(), flag);
  const out = list.slice(0, LR_WEIGHT_BLOCKS);
  while (out.length < LR_WEIGHT_BLOCKS) out.push(1);
  return out;
}

/**
 * Block weights of the U-Net's rates; zero-threshold as kohya's `block_lr_zero_threshold`. A block
 * whose weight is 0 gets no adapter at all (kohya's `remove_block_dims_and_alphas`).
 */
export interface BlockLrWeights {
  /** 12 weights of the down blocks (index 0 has no LoRA module in SD). */
  down?: readonly number[];
  /** Weight of the mid block. */
  mid?: number;
  /** 12 weights of the up blocks. */
  up?: readonly number[];
  /** Weights at or below this count as 0, as kohya's (default 0). */
  zeroThreshold?: number;
}

/**
 * kohya's `get_lr_weight`: the multiplier of a U-Net module's rate from its block.
 *
 * @example
 * ```ts
 * import { blockLrWeight } from "./lr_groups.ts";
 * console.log(blockLrWeight("mid_block.attentions.0.proj_in", { mid: 0.5 })); // 0.5
 * ```
 */
export function blockLrWeight(path: string, w: BlockLrWeights): number {
  const b = blockIndex(path);
  let v = 1;
  if (b < 0) return v;
  if (b < LR_WEIGHT_BLOCKS) v = w.down?.[b] ?? 1;
  else if (b === LR_WEIGHT_BLOCKS) v = w.mid ?? 1;
  else v = w.up?.[b - LR_WEIGHT_BLOCKS - 1] ?? 1;
  return v <= (w.zeroThreshold ?? 0) ? 0 : v;
}

/** The rates of a run's parameter groups. */
export interface LrGroupOptions {
  /** Rate of U-Net adapters. */
  unetLr: number;
  /** Rate of text-encoder adapters. */
  textEncoderLr: number;
  /** U-Net block weights. */
  blocks?: BlockLrWeights;
  /** LoRA+ ratio of `lora_up` rates in the U-Net (kohya's loraplus_unet_lr_ratio). */
  loraplusUnet?: number;
  /** LoRA+ ratio of `lora_up` rates in the text encoder. */
  loraplusTextEncoder?: number;
}

/**
 * The learning rate of one adapter parameter, from its component, module path and parameter
 * name (`lora_up`, `lora_down`, ...).
 *
 * @example
 * ```ts
 * import { parameterLr } from "./lr_groups.ts";
 * const o = { unetLr: 1e-4, textEncoderLr: 5e-5, loraplusUnet: 16 };
 * console.log(parameterLr("unet", "mid_block.resnets.0.conv1", "lora_up", o)); // 0.0016
 * ```
 */
export function parameterLr(
  component: LoraComponent,
  path: string,
  param: string,
  o: LrGroupOptions,
): number {
  const up = param === "lora_up";
  if (component === "text_encoder") return o.textEncoderLr * (up ? o.loraplusTextEncoder ?? 1 : 1);
  const w = o.blocks ? blockLrWeight(path, o.blocks) : 1;
  return o.unetLr * w * (up ? o.loraplusUnet ?? 1 : 1);
}
