/**
 * kohya's LoRA module names: the prefix for the model part, then the diffusers module path with
 * every "." replaced by "_" (sd-scripts `networks/lora.py`, `LoRANetwork.create_modules`).
 *
 * @module
 */

import type { LoraComponent } from "../file_types.ts";

/** kohya's prefix for U-Net modules. */
export const KOHYA_UNET_PREFIX = "lora_unet";
/** kohya's prefix for SD 1.x / 2.x text-encoder modules. */
export const KOHYA_TE_PREFIX = "lora_te";

/**
 * The kohya module name of a diffusers module path.
 *
 * @example
 * ```ts
 * import { kohyaName } from "./names.ts";
 * kohyaName("unet", "down_blocks.0.attentions.0.proj_in"); // "lora_unet_down_blocks_0_attentions_0_proj_in"
 * kohyaName("text_encoder", "text_model.encoder.layers.0.mlp.fc1"); // "lora_te_text_model_encoder_layers_0_mlp_fc1"
 * ```
 */
export function kohyaName(component: LoraComponent, path: string): string {
  const prefix = component === "unet" ? KOHYA_UNET_PREFIX : KOHYA_TE_PREFIX;
  return `${prefix}_${path.replaceAll(".", "_")}`;
}
