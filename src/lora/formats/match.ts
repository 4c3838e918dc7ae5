/**
 * Matching a LoRA file's module names against a model: kohya names in diffusers style
 * (`lora_unet_down_blocks_0_...`) and LDM style (`lora_unet_input_blocks_1_1_...`, which A1111
 * and ComfyUI accept for SD 1.x), PEFT paths, and the architecture checks that name the model a
 * foreign file was made for. kohya's underscored names are ambiguous on their own, so the index
 * is built from the model's own module names.
 *
 * @module
 */
import { unetKeyToOriginal } from "../../nn/checkpoint_keys.ts";
import type { LoraComponent } from "../file_types.ts";
import { listNames, LoraFileError } from "./errors.ts";
import type { LoraModelShapes, LoraModuleShape } from "./model_shapes.ts";
import { KOHYA_UNET_PREFIX, kohyaName } from "./names.ts";

/** Lookup tables from file names to the model's modules. */
export interface ModuleIndex {
  /** kohya name (diffusers or LDM style) -> module. */
  kohya: Map<string, LoraModuleShape>;
  /** `component:path` -> module. */
  paths: Map<string, LoraModuleShape>;
}

/**
 * Builds the name index of a model: every module under its kohya name, its LDM-style kohya name
 * (when the U-Net config is known) and its diffusers path.
 *
 * @example
 * ```ts
 * import { buildModuleIndex } from "./match.ts";
 * const index = buildModuleIndex({
 *   modules: [{ component: "unet", path: "down_blocks.0.attentions.0.proj_in", kind: "conv", weight: [32, 32, 1, 1], hasBias: true }],
 * });
 * console.log(index.kohya.has("lora_unet_down_blocks_0_attentions_0_proj_in")); // true
 * ```
 */
export function buildModuleIndex(model: LoraModelShapes): ModuleIndex {
  const kohya = new Map<string, LoraModuleShape>();
  const paths = new Map<string, LoraModuleShape>();
  for (const m of model.modules) {
    kohya.set(kohyaName(m.component, m.path), m);
    paths.set(`${m.component}:${m.path}`, m);
    if (m.component === "unet" && model.unetConfig) {
      const ldm = unetKeyToOriginal(`${m.path}.weight`, model.unetConfig);
      if (ldm !== undefined) {
        kohya.set(
          `${KOHYA_UNET_PREFIX}_${ldm.slice(0, -".weight".length).replaceAll(".", "_")}`,
          m,
        );
      }
    }
  }
  return { kohya, paths };
}

/** An architecture a file was made for, when it is not SD 1.x, from its metadata or key names. */
export function foreignArchitecture(
  keys: readonly string[],
  metadata: Readonly<Record<string, string>>,
): string | undefined {
  const version = metadata["ss_base_model_version"] ?? "";
  if (
    version.startsWith("sdxl") ||
    keys.some((k) => /^lora_te[12]_/.test(k) || k.startsWith("text_encoder_2."))
  ) {
    return "SDXL (it has lora_te1_ / lora_te2_ or text_encoder_2 keys)";
  }
  if (version.startsWith("sd_v2") || metadata["ss_v2"] === "True") {
    return "Stable Diffusion 2.x (its metadata says so)";
  }
  return undefined;
}

/**
 * The architecture a module's input width points to when it does not fit the model: 1024-wide
 * cross-attention or text-encoder inputs are SD 2.x, 2048-wide cross-attention is SDXL.
 */
export function architectureFromWidth(
  component: LoraComponent,
  path: string,
  fileIn: number,
  modelIn: number,
): string | undefined {
  if (fileIn === modelIn) return undefined;
  const context = component === "unet" && /attn2\.to_[kv]$/.test(path);
  if ((context || component === "text_encoder") && fileIn === 1024) {
    return "Stable Diffusion 2.x (1024-wide text context)";
  }
  if (context && fileIn === 2048) return "SDXL (2048-wide text context)";
  return undefined;
}

/** The error for a file made for another architecture. */
export function architectureError(file: string, arch: string): LoraFileError {
  return new LoraFileError(
    `"${file}" is a LoRA for ${arch}, but the model is Stable Diffusion 1.x; use a LoRA made ` +
      "for SD 1.x, or load the model it was made for",
  );
}

/** The error (or, lenient, the warning text) for keys that match nothing in the model. */
export function unmatchedMessage(file: string, keys: readonly string[], lenient: boolean): string {
  return lenient
    ? `Skipped ${keys.length} key(s) of "${file}" that match no module of the model: ` +
      listNames(keys)
    : `"${file}" has ${keys.length} key(s) that match no module of the model: ${
      listNames(keys)
    }; ` +
      "check the file is an SD 1.x LoRA for this model, or pass lenient to skip them with a warning";
}
