/**
 * One sample image for a run's report: encode the prompt and the negative prompt, sample latents
 * with classifier-free guidance, decode with the VAE and compress to JPEG. The trainer and the
 * pretraining both make their report grids with it.
 *
 * @module
 */
import sharp from "sharp";
import { noGrad } from "../ops/autograd.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import type { CLIPTextModel } from "../nn/clip.ts";
import type { ClipTokenizer } from "../nn/tokenizer.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import { sample } from "../schedule/sample.ts";

/** The three models a sample needs. */
export interface SampleModels {
  /** The denoiser. */
  unet: UNet2DConditionModel;
  /** Decodes the latents. */
  vae: AutoencoderKL;
  /** Encodes the prompts. */
  textEncoder: CLIPTextModel;
}

/** What to draw and how. */
export interface SampleJpegSettings {
  /** The prompt. */
  prompt: string;
  /** The negative prompt (default ""). */
  negativePrompt?: string;
  /** Image width in pixels, a multiple of the VAE factor. */
  width: number;
  /** Image height in pixels. */
  height: number;
  /** Sampling steps. */
  steps: number;
  /** Noise seed. */
  seed: number;
  /** Guidance scale. */
  cfgScale: number;
  /** Sampler name (default ddim). */
  sampler?: string;
  /** Text encoder layer from the end (default 1). */
  clipSkip?: number;
}

// captions: B strings -> [B, T, width] hidden states
/**
 * The text encoder's hidden states for captions, padded to its positions.
 *
 * @example
 * ```ts ignore
 * const ctx = encodeText(models, tokenizer, ["a red circle"], 1);
 * ```
 */
export function encodeText(
  models: Pick<SampleModels, "textEncoder">,
  tok: ClipTokenizer,
  captions: string[],
  clipSkip: number,
): Tensor {
  const T = models.textEncoder.config.maxPositions;
  const ids = captions.flatMap((c) => tok.encode(c, { maxLength: T }).ids);
  return models.textEncoder.forward(ids, [captions.length, T], { clipSkip });
}

// px: [C, h, w] in [-1, 1] -> [h, w, 3] bytes
/**
 * RGB bytes of a decoded image.
 *
 * @example
 * ```ts
 * import { toRgbBytes } from "./sample_jpeg_fs.ts";
 * console.log(toRgbBytes(new Float32Array([1, -1, 0]), 3, 1, 1)); // Uint8Array [255, 0, 128]
 * ```
 */
export function toRgbBytes(px: Float32Array, C: number, w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) {
      const v = px[Math.min(c, C - 1) * w * h + i]!;
      rgb[i * 3 + c] = Math.round(Math.min(Math.max((v + 1) * 127.5, 0), 255));
    }
  }
  return rgb;
}

/**
 * Draws one image and returns it as JPEG bytes (quality 90).
 *
 * @example
 * ```ts ignore
 * const jpeg = await sampleJpeg(models, tokenizer, {
 *   prompt: "a red circle", width: 32, height: 32, steps: 20, seed: 1, cfgScale: 5,
 * });
 * ```
 */
export async function sampleJpeg(
  models: SampleModels,
  tok: ClipTokenizer,
  s: SampleJpegSettings,
): Promise<Uint8Array> {
  const clipSkip = s.clipSkip ?? 1;
  const vaeFactor = 2 ** (models.vae.config.blockOutChannels.length - 1);
  const [cond, uncond] = noGrad(() => [
    encodeText(models, tok, [s.prompt], clipSkip),
    encodeText(models, tok, [s.negativePrompt ?? ""], clipSkip),
  ]);
  let latents: Tensor | undefined, img: Tensor | undefined;
  try {
    latents = await sample((x, t, ctx) => noGrad(() => models.unet.forward(x, t, ctx!)), {
      shape: [1, models.unet.config.inChannels, s.height / vaeFactor, s.width / vaeFactor],
      sampler: s.sampler ?? "ddim",
      steps: s.steps,
      seed: s.seed,
      context: cond!,
      negativeContext: uncond!,
      guidanceScale: s.cfgScale,
    });
    const z = latents;
    img = scope(() => noGrad(() => models.vae.decode(scale(z, 1 / models.vae.scalingFactor))));
    const rgb = toRgbBytes(await img.toArray(), img.shape[1]!, s.width, s.height);
    return new Uint8Array(
      await sharp(rgb, { raw: { width: s.width, height: s.height, channels: 3 } })
        .jpeg({ quality: 90 }).toBuffer(),
    );
  } finally {
    for (const t of [cond, uncond, latents, img]) t?.dispose();
  }
}
