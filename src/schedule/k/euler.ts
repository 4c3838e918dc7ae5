/**
 * Euler (Karras et al. 2022, algorithm 2 without churn; k-diffusion `sample_euler`):
 * `d = (x - D(x, sigma)) / sigma`, `x' = x + (sigma' - sigma) d`.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * Euler's method on the probability-flow ODE `dx/dsigma = (x - D) / sigma`.
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleEuler } from "./euler.ts";
 * await getDevice();
 * const x = await sampleEuler((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleEuler(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    // x' = x + (sn - s)(x - D)/s = (sn/s) x + (1 - sn/s) D
    await run.advance(i, run.lin([[run.x, sn / s], [d, 1 - sn / s]]), d);
  });
}
