/**
 * img2img inputs for `sample`: an RGB image to VAE latents and a mask image to a latent-size
 * repaint mask (white = repaint).
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { tensor } from "../ops/creation.ts";
import { scale } from "../ops/unary.ts";
import { noGrad } from "../ops/autograd.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import type { RgbImage } from "./_image.ts";
import { UsageError } from "./_args.ts";
import { quote } from "../nn/_untrusted.ts";

// image: H x W x 3 bytes -> [1, 3, H, W] in [-1, 1]
/** An RGB image as a `[1, 3, H, W]` tensor in [-1, 1]. */
export function imageTensor(img: RgbImage): Tensor {
  const { width: W, height: H, rgb } = img;
  const out = new Float32Array(3 * H * W);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) out[c * H * W + i] = rgb[3 * i + c]! / 127.5 - 1;
  }
  return tensor(out, [1, 3, H, W]);
}

// image [1, 3, H, W] -> latents [1, 4, H/8, W/8]
/**
 * The latents of an image: the mean of the VAE encoder's distribution (deterministic, diffusers'
 * "argmax" mode) times the scaling factor.
 */
export function encodeImage(vae: AutoencoderKL, img: RgbImage): Tensor {
  return noGrad(() => {
    using x = imageTensor(img);
    const { mean, logvar } = vae.encode(x);
    logvar.dispose();
    using m = mean;
    return scale(m, vae.scalingFactor);
  });
}

// mask: H x W x 3 bytes -> [1, 1, H/f, W/f]
/**
 * A mask image as a latent-size repaint mask in [0, 1]: the mean luminance of each `f x f` block
 * (white = 1 = repaint, black = keep).
 */
export function latentMask(mask: RgbImage, factor: number): Tensor {
  const h = Math.floor(mask.height / factor), w = Math.floor(mask.width / factor);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h * factor; y++) {
    for (let x = 0; x < w * factor; x++) {
      const i = 3 * (y * mask.width + x);
      const lum = (0.299 * mask.rgb[i]! + 0.587 * mask.rgb[i + 1]! + 0.114 * mask.rgb[i + 2]!) /
        255;
      out[Math.floor(y / factor) * w + Math.floor(x / factor)]! += lum / (factor * factor);
    }
  }
  return tensor(out, [1, 1, h, w]);
}

/** The most bytes an input image may have (a 8192 x 8192 RGBA PNG stored raw is 268 MB). */
const MAX_IMAGE_BYTES = 300 * 2 ** 20;

/** Reads an image file's bytes: a regular file of at most 300 MiB, else a `UsageError`. */
export async function readImageFile(path: string, option: string): Promise<Uint8Array> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new UsageError(`--${option} ${quote(path)} cannot be read (${(e as Error).message})`);
  }
  if (!info.isFile) throw new UsageError(`--${option} ${quote(path)} is not a regular file`);
  if (info.size > MAX_IMAGE_BYTES) {
    throw new UsageError(
      `--${option} ${quote(path)} is ${info.size} bytes, over the 300 MiB limit`,
    );
  }
  return await Deno.readFile(path);
}
