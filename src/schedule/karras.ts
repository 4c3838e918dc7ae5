/**
 * Karras et al. (2022) sigmas, "Elucidating the Design Space of Diffusion-Based Generative
 * Models", eq. 5: `sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho`.
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";
import { linspace } from "./schedules.ts";

/**
 * `n` Karras sigmas from `sigmaMax` down to `sigmaMin` (no final 0; samplers append it), with
 * diffusers' and k-diffusion's `rho = 7`.
 *
 * @example
 * ```ts
 * import { karrasSigmas } from "./karras.ts";
 * console.log(karrasSigmas(25, 0.0291675, 14.614642)); // 14.6146, 12.2830, ..., 0.0291675
 * ```
 */
export function karrasSigmas(
  n: number,
  sigmaMin: number,
  sigmaMax: number,
  rho = 7,
): Float64Array {
  if (!Number.isInteger(n) || n < 1) {
    throw new ArgumentError(`Karras sigmas need a whole number of steps >= 1, got ${n}`);
  }
  if (!(sigmaMin > 0 && sigmaMax >= sigmaMin && rho > 0)) {
    throw new ArgumentError(
      `Karras sigmas need 0 < sigmaMin <= sigmaMax and rho > 0, got ${sigmaMin}, ${sigmaMax}, ${rho}`,
    );
  }
  const lo = sigmaMin ** (1 / rho), hi = sigmaMax ** (1 / rho);
  return linspace(0, 1, n).map((r) => (hi + r * (lo - hi)) ** rho);
}
