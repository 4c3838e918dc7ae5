/**
 * Writes the pretrained mini SD as a diffusers folder in f16: `model_index.json`, `unet/`,
 * `vae/`, `text_encoder/` (config + weights with the run's metadata), `tokenizer/` and
 * `scheduler/` (SD 1.x's training schedule). The folder is written beside its final name and
 * renamed into place, so a kill never leaves a half-written model under that name.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import type { Module } from "../nn/module.ts";
import { clipTextConfigToDiffusers, type CLIPTextModel } from "../nn/clip.ts";
import { serializeSafetensors, toSafetensorsInputs } from "../nn/safetensors.ts";
import { type UNet2DConditionModel, unetConfigToDiffusers } from "../nn/unet.ts";
import { type AutoencoderKL, vaeConfigToDiffusers } from "../nn/vae.ts";

/** The models to write. */
export interface MiniSdModels {
  /** The denoiser. */
  unet: UNet2DConditionModel;
  /** The autoencoder. */
  vae: AutoencoderKL;
  /** The text encoder. */
  textEncoder: CLIPTextModel;
}

/** SD 1.x's scheduler config (diffusers' PNDM, as the v1-5 folder ships it). */
export const SD15_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  _class_name: "PNDMScheduler",
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  num_train_timesteps: 1000,
  prediction_type: "epsilon",
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  clip_sample: false,
});

const json = (v: unknown): string => JSON.stringify(v, null, 2) + "\n";

/**
 * Writes `dir` (replacing a previous folder of that name only once the new one is complete).
 * `metadata` goes into every weight file's `__metadata__`.
 *
 * @example
 * ```ts ignore
 * await writeMiniSdFolder("models/mini_sd", models, { "vocab.json": v, "merges.txt": m }, {
 *   denoise_command: "deno run -A mod.ts pretrain",
 * });
 * ```
 */
export async function writeMiniSdFolder(
  dir: string,
  models: MiniSdModels,
  tokenizerFiles: Readonly<Record<string, string>>,
  metadata: Readonly<Record<string, string>>,
): Promise<void> {
  const parent = dirname(dir), base = basename(dir);
  const id = crypto.randomUUID().slice(0, 8);
  const temp = join(parent, `.${base}.${id}.tmp`), old = join(parent, `.${base}.${id}.old`);
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
  try {
    for (const [sub, m, config, name] of parts) {
      await Deno.mkdir(join(temp, sub), { recursive: true });
      await Deno.writeTextFile(join(temp, sub, "config.json"), json(config));
      const inputs = await toSafetensorsInputs(m.stateDict(), { dtype: "F16" });
      await Deno.writeFile(
        join(temp, sub, `${name}.safetensors`),
        serializeSafetensors(inputs, { format: "pt", ...metadata }),
      );
    }
    await Deno.mkdir(join(temp, "tokenizer"));
    for (const [name, text] of Object.entries(tokenizerFiles)) {
      await Deno.writeTextFile(join(temp, "tokenizer", name), text);
    }
    await Deno.mkdir(join(temp, "scheduler"));
    await Deno.writeTextFile(
      join(temp, "scheduler", "scheduler_config.json"),
      json(SD15_SCHEDULER_CONFIG),
    );
    await Deno.writeTextFile(
      join(temp, "model_index.json"),
      json({
        _class_name: "StableDiffusionPipeline",
        feature_extractor: [null, null],
        requires_safety_checker: false,
        safety_checker: [null, null],
        scheduler: ["diffusers", "PNDMScheduler"],
        text_encoder: ["transformers", "CLIPTextModel"],
        tokenizer: ["transformers", "CLIPTokenizer"],
        unet: ["diffusers", "UNet2DConditionModel"],
        vae: ["diffusers", "AutoencoderKL"],
      }),
    );
    const existed = await Deno.rename(dir, old).then(() => true, () => false);
    await Deno.rename(temp, dir);
    if (existed) await Deno.remove(old, { recursive: true });
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
}
