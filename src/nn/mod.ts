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
