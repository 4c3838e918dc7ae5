/**
 * Which weights of a checkpoint to extract a LoRA from: the modules of a U-Net or text-encoder
 * state dict (diffusers keys, or single-file LDM keys mapped back to diffusers paths with the
 * inverse of `unetKeyToOriginal`, each candidate verified by mapping it forward again).
 *
 * @module
 */
import { unetKeyToOriginal } from "../nn/checkpoint_keys.ts";
import type { UNetConfig } from "../nn/unet.ts";

const RESNET_FROM_ORIGINAL: Record<string, string> = {
  "in_layers.0": "norm1",
  "in_layers.2": "conv1",
  "emb_layers.1": "time_emb_proj",
  "out_layers.0": "norm2",
  "out_layers.3": "conv2",
  "skip_connection": "conv_shortcut",
};

function resnet(rest: string): string {
  for (const [from, to] of Object.entries(RESNET_FROM_ORIGINAL)) {
    if (rest.startsWith(`${from}.`)) return to + rest.slice(from.length);
  }
  return rest;
}

function candidates(key: string, L: number): string[] {
  let m: RegExpMatchArray | null;
  if (key.startsWith("input_blocks.0.0.")) return ["conv_in." + key.slice(17)];
  if (key.startsWith("time_embed.0.")) return ["time_embedding.linear_1." + key.slice(13)];
  if (key.startsWith("time_embed.2.")) return ["time_embedding.linear_2." + key.slice(13)];
  if (key.startsWith("out.0.")) return ["conv_norm_out." + key.slice(6)];
  if (key.startsWith("out.2.")) return ["conv_out." + key.slice(6)];
  if ((m = key.match(/^input_blocks\.(\d+)\.([01])\.(.+)$/))) {
    const i = Number(m[1]) - 1, b = Math.floor(i / (L + 1)), j = i % (L + 1);
    if (m[2] === "1") return [`down_blocks.${b}.attentions.${j}.${m[3]}`];
    if (j === L) return [`down_blocks.${b}.downsamplers.0.conv.${m[3]!.replace(/^op\./, "")}`];
    return [`down_blocks.${b}.resnets.${j}.${resnet(m[3]!)}`];
  }
  if ((m = key.match(/^middle_block\.([012])\.(.+)$/))) {
    if (m[1] === "1") return [`mid_block.attentions.0.${m[2]}`];
    return [`mid_block.resnets.${m[1] === "0" ? 0 : 1}.${resnet(m[2]!)}`];
  }
  if ((m = key.match(/^output_blocks\.(\d+)\.([012])\.(.+)$/))) {
    const i = Number(m[1]), b = Math.floor(i / (L + 1)), j = i % (L + 1);
    const up = `up_blocks.${b}.upsamplers.0.conv.${m[3]!.replace(/^conv\./, "")}`;
    if (m[2] === "0") return [`up_blocks.${b}.resnets.${j}.${resnet(m[3]!)}`];
    if (m[2] === "2") return [up];
    // Attention children are never named "conv": a ".1.conv" is the upsampler of a block
    // without attention.
    return m[3]!.startsWith("conv.") ? [up] : [`up_blocks.${b}.attentions.${j}.${m[3]}`];
  }
  return [];
}

/**
 * The diffusers key of an LDM U-Net key (without the `model.diffusion_model.` prefix), or
 * undefined when none maps back to it.
 *
 * @example
 * ```ts
 * import { unetKeyFromOriginal } from "./svd_extract_keys.ts";
 * import { SD15_UNET_CONFIG } from "../nn/unet.ts";
 * console.log(unetKeyFromOriginal("input_blocks.3.0.op.weight", SD15_UNET_CONFIG));
 * // down_blocks.0.downsamplers.0.conv.weight
 * ```
 */
export function unetKeyFromOriginal(key: string, config: UNetConfig): string | undefined {
  return candidates(key, config.layersPerBlock).find((c) => unetKeyToOriginal(c, config) === key);
}
