/**
 * Writes the pretrained mini SD as a diffusers folder in f16: `model_index.json`, `unet/`,
 * `vae/`, `text_encoder/` (config + weights with the run's metadata), `tokenizer/` and
 * `scheduler/` (SD 1.x's training schedule). The folder is written beside its final name and
 * renamed into place, so a kill never leaves a half-written model under that name.
 *
 * @module
 */
import { saveDiffusersFolderAtomic } from "../nn/diffusers_save_fs.ts";
import type { CLIPTextModel } from "../nn/clip.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { AutoencoderKL } from "../nn/vae.ts";

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
  await saveDiffusersFolderAtomic(dir, models, {
    dtype: "F16",
    metadata: { format: "pt", ...metadata },
    tokenizerFiles,
    scheduler: SD15_SCHEDULER_CONFIG,
  });
}
