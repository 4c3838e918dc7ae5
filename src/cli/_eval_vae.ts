/**
 * VAE reconstructions for `mod.ts eval` and the train demo: each image encoded to its latent
 * mean, decoded and rounded to bytes; compared with the original by PSNR and SSIM.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { scope } from "../ops/scope.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import { psnr } from "../eval/psnr.ts";
import { ssim } from "../eval/ssim.ts";
import { rgbToChw } from "../eval/render.ts";
import { toRgbBytes } from "../train/sample_jpeg_fs.ts";

/** Mean reconstruction quality over a set of images. */
export interface ReconstructionScores {
  /** Images measured. */
  n: number;
  /** Mean PSNR in dB over the images (Infinity when one comes back exact). */
  psnr: number;
  /** Mean SSIM over the images. */
  ssim: number;
}

// images: n RGB byte arrays [side, side, 3] -> n RGB byte arrays, through [b, 3, side, side]
/**
 * Each image encoded to the mean of the VAE encoder's distribution, decoded, and rounded back to
 * RGB bytes: what every generated image's decoder can show at best.
 *
 * @example
 * ```ts ignore
 * const models = await loadStableDiffusion("models/mini_sd");
 * const items = new ProceduralWorld({ seed: 99 }).items(0, 8);
 * const back = await reconstructImages(models.vae, items.map((i) => i.rgb), 32);
 * ```
 */
export async function reconstructImages(
  vae: AutoencoderKL,
  images: readonly Uint8Array[],
  side: number,
  batchSize = 16,
): Promise<Uint8Array[]> {
  const hw = side * side, n = images.length, out: Uint8Array[] = [];
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const x = new Float32Array(b * 3 * hw);
    for (let i = 0; i < b; i++) x.set(rgbToChw(images[start + i]!, side, side), i * 3 * hw);
    const decoded = scope(() =>
      noGrad(() => vae.decode(vae.encode(tensor(x, [b, 3, side, side])).mean))
    );
    let px: Float32Array;
    try {
      px = await decoded.toArray();
    } finally {
      decoded.dispose();
    }
    for (let i = 0; i < b; i++) {
      out.push(toRgbBytes(px.subarray(i * 3 * hw, (i + 1) * 3 * hw), 3, side, side));
    }
  }
  return out;
}

/**
 * Mean PSNR and SSIM of images against their reconstructions.
 *
 * @example
 * ```ts ignore
 * const back = await reconstructImages(models.vae, images, 32);
 * console.log(reconstructionScores(images, back, 32).psnr);
 * ```
 */
export function reconstructionScores(
  images: readonly Uint8Array[],
  reconstructed: readonly Uint8Array[],
  side: number,
): ReconstructionScores {
  const n = images.length;
  let psnrSum = 0, ssimSum = 0;
  images.forEach((img, i) => {
    psnrSum += psnr(img, reconstructed[i]!);
    ssimSum += ssim(img, reconstructed[i]!, side, side);
  });
  return { n, psnr: n ? psnrSum / n : 0, ssim: n ? ssimSum / n : 0 };
}
