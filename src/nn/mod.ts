/**
 * The model layer's portable core (web APIs only, so it also runs in a browser with WebGPU):
 * safetensors over bytes or any random-access source, the CLIP BPE tokenizer, and the module
 * system whose parameter paths equal diffusers' state-dict keys. File-system helpers for Deno
 * (`SafetensorsFile`, `writeSafetensors`, `loadTokenizer`) are in `./mod_fs.ts` (export
 * `./nn/fs`); the package root exports both.
 *
 * @example
 * ```ts
 * import { ClipTokenizer, parseSafetensors, serializeSafetensors } from "./mod.ts";
 * const bytes = serializeSafetensors({ w: { data: new Float32Array([1, 2]), shape: [2] } });
 * console.log(parseSafetensors(bytes).tensors.w?.data); // Float32Array [1, 2]
 * const tok = new ClipTokenizer({ "<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2 }, []);
 * console.log(tok.encode("A", { padding: false }).ids); // [0, 2, 1]
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./safetensors.ts";
export * from "./tokenizer.ts";
export * from "./module.ts";
export type { InitOptions } from "./layers/_init.ts";
export type { NormKind, NormLayer } from "./layers/_norm.ts";
export type { LayerAdapter } from "./layers/adapter_hook.ts";
export * from "./layers/linear.ts";
export * from "./layers/conv2d.ts";
export * from "./layers/group_norm.ts";
export * from "./layers/layer_norm.ts";
export * from "./layers/batch_norm.ts";
export * from "./layers/attention.ts";
export * from "./layers/feed_forward.ts";
export * from "./layers/transformer_block.ts";
export * from "./layers/transformer_2d.ts";
export * from "./layers/resnet.ts";
export * from "./layers/downsample.ts";
export * from "./layers/upsample.ts";
export * from "./layers/timestep_embedding.ts";
export * from "./layers/unet_down_blocks.ts";
export * from "./layers/unet_mid_block.ts";
export * from "./layers/unet_up_blocks.ts";
export * from "./unet.ts";
export * from "./layers/embedding.ts";
export * from "./layers/vae_blocks.ts";
export * from "./vae.ts";
export * from "./clip.ts";
export * from "./checkpoint_keys.ts";
