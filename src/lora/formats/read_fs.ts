/**
 * Reading LoRA files from disk.
 *
 * @module
 */
import { SafetensorsFile } from "../../nn/safetensors_fs.ts";
import type { LoraFileContents } from "../file_types.ts";
import type { LoraModelShapes } from "./model_shapes.ts";
import { readLora, type ReadLoraOptions } from "./read.ts";

/**
 * Reads the LoRA file at `path` against a model (see {@link readLora} for the checks).
 *
 * @example
 * ```ts
 * import { readLoraFile } from "./read_fs.ts";
 * import { writeLoraFile } from "./write_fs.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * const module = { component: "unet" as const, path: "mid_block.attentions.0.proj_in", kind: "conv" as const, weight: [8, 8, 1, 1], hasBias: true };
 * await writeLoraFile(path, [{
 *   component: "unet", path: module.path, kind: "lora", alpha: 1, tensors: {},
 *   down: { shape: [1, 8, 1, 1], data: new Float32Array(8) }, up: { shape: [8, 1, 1, 1], data: new Float32Array(8) },
 * }]);
 * const lora = await readLoraFile(path, { modules: [module] });
 * console.log(lora.entries.length); // 1
 * ```
 */
export async function readLoraFile(
  path: string,
  model: LoraModelShapes,
  options: ReadLoraOptions = {},
): Promise<LoraFileContents> {
  using file = await SafetensorsFile.open(path);
  return await readLora(file, model, options);
}
