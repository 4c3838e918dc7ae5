/**
 * LoRA files of every family, both ways (portable: web APIs only): readers matched against a
 * model (kohya with diffusers- or LDM-style names, PEFT / diffusers, LyCORIS LoHa / LoKr /
 * Tucker / full / DoRA / norm), `entryDelta` (each entry's weight delta as upstream defines it),
 * writers (kohya, diffusers-safe, PEFT) and kohya's metadata with its hashes. File-system
 * reading and writing: `mod_fs.ts`.
 *
 * @example
 * ```ts
 * import { entryDelta, kohyaName } from "./mod.ts";
 * console.log(kohyaName("unet", "mid_block.attentions.0.proj_in"));
 * const d = entryDelta({
 *   component: "unet", path: "p", kind: "full", tensors: { diff: { shape: [1], data: new Float32Array([2]) } },
 * }, { multiplier: 0.5 });
 * console.log(d.weight?.data); // Float32Array [1]
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./names.ts";
export * from "./model_shapes.ts";
export * from "./match.ts";
export * from "./read.ts";
export * from "./file_shapes.ts";
export * from "./delta.ts";
export * from "./peft_metadata.ts";
export * from "./write.ts";
export * from "./metadata.ts";
