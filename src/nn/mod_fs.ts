/**
 * File-system helpers of the model layer (Deno): safetensors files read tensor by tensor and
 * written atomically, and the CLIP tokenizer loaded from a folder.
 *
 * @example
 * ```ts
 * import { SafetensorsFile, writeSafetensors } from "./mod_fs.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, { w: { data: new Float32Array([1, 2]), shape: [2] } }, { a: "b" });
 * using f = await SafetensorsFile.open(path);
 * console.log(f.metadata, await f.read("w"));
 * ```
 *
 * @module
 */
export * from "./safetensors_fs.ts";
export * from "./tokenizer_fs.ts";
export * from "./loaders_fs.ts";
export * from "./diffusers_save_fs.ts";
