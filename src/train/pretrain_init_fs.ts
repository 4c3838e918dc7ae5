/**
 * Weights a pretraining run starts from (Deno): a mini SD folder for `--init` (with the list of
 * training pieces its metadata carries) and the VAE stage's file for the U-Net stage.
 *
 * @module
 */
import { join } from "node:path";
import type { CLIPTextModel } from "../nn/clip.ts";
import type { Module } from "../nn/module.ts";
import { SafetensorsReader } from "../nn/safetensors.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import { ConfigError } from "./errors.ts";

/** One invocation of `pretrain` that trained a model, as its weights' metadata lists them. */
export interface TrainingPiece {
  command: string;
  adapter: string;
  vae_steps: number;
  unet_steps: number;
  batch_size: number;
  wall_time_s: number;
}

/**
 * Loads a mini SD folder's weights into the three models (f16 files widen to the f32 training
 * weights) and returns the training pieces its U-Net's metadata lists.
 */
export async function initFromFolder(
  dir: string,
  models: { vae: AutoencoderKL; textEncoder: CLIPTextModel; unet: UNet2DConditionModel },
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
      await m.loadSafetensors(r);
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
