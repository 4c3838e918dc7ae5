/**
 * Peak signal-to-noise ratio between two images of the same size: `10 log10(peak^2 / MSE)` dB,
 * over every value (all channels), Infinity for identical images.
 *
 * @module
 */
import { WorldError } from "./errors.ts";

// a, b: [n] values in [0, peak] (e.g. RGB bytes)
/**
 * PSNR in dB of `b` against `a`.
 *
 * @example
 * ```ts
 * import { psnr } from "./psnr.ts";
 * console.log(psnr(new Uint8Array([0, 255]), new Uint8Array([0, 250]))); // 37.16...
 * ```
 */
export function psnr(a: ArrayLike<number>, b: ArrayLike<number>, peak = 255): number {
  if (a.length !== b.length || a.length === 0) {
    throw new WorldError(
      `PSNR compares images of the same size, got ${a.length} and ${b.length} values`,
    );
  }
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return 10 * Math.log10((peak * peak) / (se / a.length));
}
