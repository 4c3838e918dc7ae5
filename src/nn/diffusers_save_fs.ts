/**
 * Writes the three SD models as a diffusers folder: `unet/`, `vae/`, `text_encoder/` (config +
 * safetensors weights), optionally `tokenizer/`, and with a scheduler config also `scheduler/`
 * and `model_index.json`. {@link saveDiffusersFolderAtomic} writes the folder beside its final
 * name and renames it into place, so a kill never leaves a half-written model under that name.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import type { Module } from "./module.ts";
import { toSafetensorsInputs } from "./safetensors.ts";
import { writeSafetensors } from "./safetensors_fs.ts";
import { type UNet2DConditionModel, unetConfigToDiffusers } from "./unet.ts";
import { type AutoencoderKL, vaeConfigToDiffusers } from "./vae.ts";
import { clipTextConfigToDiffusers, type CLIPTextModel } from "./clip.ts";

/** The models to save (a tokenizer folder's files may be copied along). */
export interface SaveModels {
  /** The denoiser. */
  unet: UNet2DConditionModel;
  /** The image autoencoder. */
  vae: AutoencoderKL;
  /** The CLIP text encoder. */
  textEncoder: CLIPTextModel;
  /** Tokenizer files to write to `tokenizer/` (diffusers folders only). */
  tokenizerFiles?: { vocab: string; merges: string };
}

/** How {@link saveDiffusersFolder} writes the folder. */
export interface SaveDiffusersOptions {
  /** The stored dtype of every weight (default: F32 for f32 tensors, F16 for f16 ones). */
  dtype?: "F32" | "F16";
  /** Goes into every weight file's `__metadata__`. */
  metadata?: Readonly<Record<string, string>>;
  /** More `tokenizer/` files by name (beside `models.tokenizerFiles`). */
  tokenizerFiles?: Readonly<Record<string, string>>;
  /** A diffusers scheduler config: written to `scheduler/`, with a `model_index.json`. */
  scheduler?: Readonly<Record<string, unknown>>;
}

const json = (v: unknown): string => JSON.stringify(v, null, 2) + "\n";

/**
 * Writes a diffusers folder (configs, safetensors weights, optional tokenizer files, scheduler
 * config and `model_index.json`) into `dir`.
 *
 * @example
 * ```ts ignore
 * await saveDiffusersFolder("models/tiny", { unet, vae, textEncoder }, { dtype: "F16" });
 * ```
 */
export async function saveDiffusersFolder(
  dir: string,
  models: SaveModels,
  options: SaveDiffusersOptions = {},
): Promise<void> {
  const parts: [string, Module, Record<string, unknown>, string][] = [
    ["unet", models.unet, unetConfigToDiffusers(models.unet.config), "diffusion_pytorch_model"],
    ["vae", models.vae, vaeConfigToDiffusers(models.vae.config), "diffusion_pytorch_model"],
    [
      "text_encoder",
      models.textEncoder,
      clipTextConfigToDiffusers(models.textEncoder.config),
      "model",
    ],
  ];
  const dtype = options.dtype ? { dtype: options.dtype } : {};
  for (const [sub, m, config, name] of parts) {
    await Deno.mkdir(join(dir, sub), { recursive: true });
    await Deno.writeTextFile(join(dir, sub, "config.json"), json(config));
    await writeSafetensors(
      join(dir, sub, `${name}.safetensors`),
      await toSafetensorsInputs(m.stateDict(), dtype),
      options.metadata,
    );
  }
  const tokenizer: Record<string, string> = {};
  if (models.tokenizerFiles) {
    tokenizer["vocab.json"] = models.tokenizerFiles.vocab;
    tokenizer["merges.txt"] = models.tokenizerFiles.merges;
  }
  Object.assign(tokenizer, options.tokenizerFiles);
  if (Object.keys(tokenizer).length > 0) {
    await Deno.mkdir(join(dir, "tokenizer"), { recursive: true });
    for (const [name, text] of Object.entries(tokenizer)) {
      await Deno.writeTextFile(join(dir, "tokenizer", name), text);
    }
  }
  if (options.scheduler) {
    await Deno.mkdir(join(dir, "scheduler"), { recursive: true });
    await Deno.writeTextFile(
      join(dir, "scheduler", "scheduler_config.json"),
      json(options.scheduler),
    );
    await Deno.writeTextFile(
      join(dir, "model_index.json"),
      json({
        _class_name: "StableDiffusionPipeline",
        feature_extractor: [null, null],
        requires_safety_checker: false,
        safety_checker: [null, null],
        scheduler: ["diffusers", String(options.scheduler["_class_name"])],
        text_encoder: ["transformers", "CLIPTextModel"],
        tokenizer: ["transformers", "CLIPTokenizer"],
        unet: ["diffusers", "UNet2DConditionModel"],
        vae: ["diffusers", "AutoencoderKL"],
      }),
    );
  }
}

/**
 * {@link saveDiffusersFolder} into a hidden folder beside `dir`, then renamed to `dir`; a
 * previous folder named `dir` is replaced only once the new one is complete.
 *
 * @example
 * ```ts ignore
 * await saveDiffusersFolderAtomic("models/merged", { unet, vae, textEncoder });
 * ```
 */
export async function saveDiffusersFolderAtomic(
  dir: string,
  models: SaveModels,
  options: SaveDiffusersOptions = {},
): Promise<void> {
  const parent = dirname(dir), base = basename(dir);
  const id = crypto.randomUUID().slice(0, 8);
  const temp = join(parent, `.${base}.${id}.tmp`), old = join(parent, `.${base}.${id}.old`);
  try {
    await saveDiffusersFolder(temp, models, options);
    const existed = await Deno.rename(dir, old).then(() => true, () => false);
    await Deno.rename(temp, dir);
    if (existed) await Deno.remove(old, { recursive: true });
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
}
