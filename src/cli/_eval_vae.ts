/**
 * VAE reconstruction quality for `mod.ts eval`: each image encoded to its latent mean, decoded,
 * rounded to bytes, and compared with the original by PSNR and SSIM.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { scope } from "../ops/scope.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import { psnr } from "../eval/psnr.ts";
import { ssim } from "../eval/ssim.ts";

/** Mean reconstruction quality over a set of images. */
export interface ReconstructionScores {
  /** Images measured. */
  n: number;
  /** Mean PSNR in dB over the images (Infinity when one comes back exact). */
  psnr: number;
  /** Mean SSIM over the images. */
  ssim: number;
}

// images: n RGB byte arrays [side, side, 3] -> batches [b, 3, side, side] in [-1, 1]
/**
 * Encodes each image to the mean of the VAE encoder's distribution, decodes that latent, rounds
 * the pixels to bytes and averages PSNR and SSIM over the images.
 *
 * @example
 * ```ts ignore
 * const models = await loadStableDiffusion("models/mini_sd");
 * const items = new ProceduralWorld({ seed: 99 }).items(0, 8);
 * const r = await vaeReconstruction(models.vae, items.map((i) => i.rgb), 32);
 * console.log(r.psnr, r.ssim);
 * ```
 */
export async function vaeReconstruction(
  vae: AutoencoderKL,
  images: readonly Uint8Array[],
  side: number,
  batchSize = 16,
): Promise<ReconstructionScores> {
  const hw = side * side, n = images.length;
  let psnrSum = 0, ssimSum = 0;
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const x = new Float32Array(b * 3 * hw);
    for (let i = 0; i < b; i++) {
      const rgb = images[start + i]!;
      for (let p = 0; p < hw; p++) {
        for (let c = 0; c < 3; c++) x[(i * 3 + c) * hw + p] = rgb[3 * p + c]! / 127.5 - 1;
      }
    }
    const decoded = scope(() =>
      noGrad(() => {
        const { mean } = vae.encode(tensor(x, [b, 3, side, side]));
        return vae.decode(mean);
      })
    );
    let px: Float32Array;
    try {
      px = await decoded.toArray();
    } finally {
      decoded.dispose();
    }
    for (let i = 0; i < b; i++) {
      const out = new Uint8Array(3 * hw);
      for (let p = 0; p < hw; p++) {
        for (let c = 0; c < 3; c++) {
          const v = px[(i * 3 + c) * hw + p]!;
          out[3 * p + c] = Math.round(Math.min(Math.max((v + 1) * 127.5, 0), 255));
        }
      }
      psnrSum += psnr(images[start + i]!, out);
      ssimSum += ssim(images[start + i]!, out, side, side);
    }
  }
  return { n, psnr: n ? psnrSum / n : 0, ssim: n ? ssimSum / n : 0 };
}
