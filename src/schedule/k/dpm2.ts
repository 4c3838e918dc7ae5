/**
 * DPM2 (k-diffusion `sample_dpm_2`, after DPM-Solver-2 of Lu et al. 2022 and Karras et al.
 * algorithm 2): a midpoint step in log sigma. With `sigma_m = sqrt(sigma sigma')`,
 * `x~ = x + (sigma_m - sigma) d`, `d_m = (x~ - D(x~, sigma_m)) / sigma_m`:
 * `x' = x + (sigma' - sigma) d_m`; the step to sigma 0 is Euler's.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * The DPM2 sampler (two model calls per step).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpm2 } from "./dpm2.ts";
 * await getDevice();
 * const x = await sampleDpm2((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDpm2(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    if (sn === 0) return await run.advance(i, run.lin([[d, 1]]), d);
    const m = Math.sqrt(s * sn);
    using x2 = run.lin([[run.x, m / s], [d, 1 - m / s]]);
    using d2 = await run.denoise(m, x2);
    const k = (sn - s) / m;
    await run.advance(i, run.lin([[run.x, 1], [x2, k], [d2, -k]]), d);
  });
}
