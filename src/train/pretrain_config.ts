/**
 * The mini Stable Diffusion's sizes: the same classes as SD 1.x (`AutoencoderKL`,
 * `CLIPTextModel`, `UNet2DConditionModel`), scaled down for 32x32 RGB images on a software
 * WebGPU adapter. The VAE halves the side twice (factor 4), so the U-Net works on 4 x 8 x 8
 * latents. Sizes were picked from measured step times (bench/RESULTS.md, "Pretraining the mini
 * model").
 *
 * @module
 */
import type { ClipTextConfig } from "../nn/clip.ts";
import type { UNetConfig } from "../nn/unet.ts";
import type { VaeConfig } from "../nn/vae.ts";

/** The three configs of a mini model. */
export interface MiniSdConfig {
  /** The image autoencoder. */
  vae: Partial<VaeConfig>;
  /** The text encoder (its vocabulary size comes from the tokenizer). */
  textEncoder: Partial<ClipTextConfig>;
  /** The denoiser. */
  unet: Partial<UNetConfig>;
}

/** Named sizes: `mini` is the shipped model, `tiny` the one tests train in seconds. */
export const MINI_SD_SIZES: Readonly<Record<"mini" | "tiny", MiniSdConfig>> = Object.freeze({
  mini: {
    // [32, 64, 64] measured 11.5 s per batch-16 step against 4.1 s for this one
    vae: {
      blockOutChannels: [16, 32, 32],
      layersPerBlock: 1,
      normNumGroups: 8,
      latentChannels: 4,
    },
    textEncoder: {
      hiddenSize: 64,
      intermediateSize: 256,
      heads: 4,
      layers: 3,
      maxPositions: 77,
    },
    unet: {
      blockOutChannels: [64, 128],
      layersPerBlock: 1,
      attentionHeads: 4,
      crossAttentionDim: 64,
      normNumGroups: 16,
      sampleSize: 8,
    },
  },
  tiny: {
    vae: { blockOutChannels: [8, 16, 16], layersPerBlock: 1, normNumGroups: 4, latentChannels: 4 },
    textEncoder: { hiddenSize: 16, intermediateSize: 32, heads: 2, layers: 1, maxPositions: 77 },
    unet: {
      blockOutChannels: [16, 32],
      layersPerBlock: 1,
      attentionHeads: 2,
      crossAttentionDim: 16,
      normNumGroups: 4,
      sampleSize: 8,
    },
  },
});

/**
 * The configs of a named size with the text encoder's vocabulary set to the tokenizer's.
 *
 * @example
 * ```ts
 * import { miniSdConfig } from "./pretrain_config.ts";
 * console.log(miniSdConfig("tiny", 256).textEncoder.vocabSize); // 256
 * ```
 */
export function miniSdConfig(size: "mini" | "tiny", vocabSize: number): MiniSdConfig {
  const c = MINI_SD_SIZES[size];
  return {
    vae: { ...c.vae },
    textEncoder: { ...c.textEncoder, vocabSize },
    unet: { ...c.unet },
  };
}
