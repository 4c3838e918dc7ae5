/**
 * LoRA, LoCon and norm adapters for the SD U-Net and CLIP text encoder: plans (kohya defaults,
 * block-wise ranks, presets), adapters attached in place, merge / unmerge, composition of several
 * files with multipliers and block weights, and the format-neutral entry types the file readers
 * and writers share.
 *
 * @example
 * ```ts
 * import { SD15_CLIP_CONFIG, SD15_UNET_CONFIG } from "../nn/mod.ts";
 * import { makePlan } from "./mod.ts";
 * console.log(makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { convRank: 4 }).entries.length);
 * ```
 *
 * @module
 */
export * from "./file_types.ts";
export type {
  LoraModels,
  LoraModelShapes,
  LoraModuleKind,
  LoraModuleShape,
} from "./formats/model_shapes.ts";
export * from "./tree.ts";
export * from "./plan.ts";
export * from "./block_weights.ts";
export * from "./attached_adapter.ts";
export * from "./lora_module.ts";
export * from "./norm_adapter.ts";
export * from "./delta_adapter.ts";
export * from "./weight_copy_adapter.ts";
export * from "./finite.ts";
export * from "./network.ts";
export * from "./compose.ts";
export * from "./apply.ts";
export * from "./merge.ts";
