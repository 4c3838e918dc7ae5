/**
 * Weights a pretraining run starts from (Deno): a mini SD folder for `--init` (with the list of
 * training pieces its metadata carries) and the VAE stage's file for the U-Net stage.
 *
 * @module
 */
import { join } from "node:path";
import type { CLIPTextModel } from "../nn/clip.ts";
import type { NormKind } from "../nn/layers/_norm.ts";
import type { Module } from "../nn/module.ts";
import { SafetensorsReader } from "../nn/safetensors.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import { ConfigError } from "./errors.ts";

/** The buffers a BatchNorm2d has and a GroupNorm lacks. */
const BATCH_NORM_BUFFER = /\.(running_mean|running_var|num_batches_tracked)$/;

/** One invocation of `pretrain` that trained a model, as its weights' metadata lists them. */
export interface TrainingPiece {
  command: string;
  adapter: string;
  vae_steps: number;
  unet_steps: number;
  batch_size: number;
  wall_time_s: number;
  /** The U-Net's norm when it is batch norm (absent: group norm). */
  norm?: NormKind;
  /** How the run started from `--init`, when it converted the norms. */
  init?: string;
  /** The U-Net stage's EMA decay, when the written weights are an EMA. */
  ema_decay?: number;
}

/** The `norm` of a mini SD folder's U-Net config (`group` when the field is absent). */
export async function folderUnetNorm(dir: string): Promise<NormKind> {
  const path = join(dir, "unet", "config.json");
  let config: { norm?: unknown };
  try {
    config = JSON.parse(await Deno.readTextFile(path));
  } catch {
    throw new ConfigError(`${path} is missing; --init takes a folder written by mod.ts pretrain`);
  }
  return config.norm === "batch" ? "batch" : "group";
}

/**
 * Loads a mini SD folder's weights into the three models (f16 files widen to the f32 training
 * weights) and returns the training pieces its U-Net's metadata lists. With `convertNorms` the
 * folder's U-Net has group norms and `models.unet` batch norms: each GroupNorm's weight and bias
 * load into the BatchNorm2d of the same name (they share the keys `weight`, `bias`), and only
 * the batch norms' buffers (running statistics, batch count) are left as they were.
 */
export async function initFromFolder(
  dir: string,
  models: { vae: AutoencoderKL; textEncoder: CLIPTextModel; unet: UNet2DConditionModel },
  options: { convertNorms?: boolean } = {},
): Promise<TrainingPiece[]> {
  const parts: [string, Module][] = [
    ["vae/diffusion_pytorch_model.safetensors", models.vae],
    ["text_encoder/model.safetensors", models.textEncoder],
    ["unet/diffusion_pytorch_model.safetensors", models.unet],
  ];
  let meta: Record<string, string> = {};
  for (const [file, m] of parts) {
    const path = join(dir, file);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch {
      throw new ConfigError(`${path} is missing; --init takes a folder written by mod.ts pretrain`);
    }
    using r = await SafetensorsReader.fromBytes(bytes);
    try {
      const convert = options.convertNorms === true && m === models.unet;
      const { missing, unexpected } = await m.loadSafetensors(r, { strict: !convert });
      const notBuffer = missing.find((k) => !BATCH_NORM_BUFFER.test(k));
      if (notBuffer !== undefined || unexpected.length > 0) {
        throw new ConfigError(
          `its key ${JSON.stringify(notBuffer ?? unexpected[0])} has no counterpart in a ` +
            "batch-norm U-Net",
        );
      }
    } catch (e) {
      throw new ConfigError(
        `${path} does not fit this size's model (${(e as Error).message}); pass the --size it ` +
          "was trained with",
      );
    }
    meta = r.metadata;
  }
  const vaeConfig = JSON.parse(await Deno.readTextFile(join(dir, "vae", "config.json")));
  if (typeof vaeConfig.scaling_factor === "number") {
    models.vae.config.scalingFactor = vaeConfig.scaling_factor;
  }
  if (meta.denoise_history) return JSON.parse(meta.denoise_history) as TrainingPiece[];
  return meta.denoise_command
    ? [{
      command: meta.denoise_command,
      adapter: meta.denoise_adapter ?? "unrecorded",
      vae_steps: Number(meta.denoise_vae_steps),
      unet_steps: Number(meta.denoise_unet_steps),
      batch_size: Number(meta.denoise_batch_size),
      wall_time_s: Number(meta.denoise_wall_time_s),
    }]
    : [];
}

/** Loads the VAE stage's weights and latent scale into `vae`. */
export async function loadVae(vae: AutoencoderKL, file: string): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(file);
  } catch {
    throw new ConfigError(`${file} is missing; run the VAE stage first (--stage vae or all)`);
  }
  using r = await SafetensorsReader.fromBytes(bytes);
  const sf = Number(r.metadata.scaling_factor);
  if (Number.isFinite(sf) && sf > 0) vae.config.scalingFactor = sf;
  await vae.loadSafetensors(r);
}
