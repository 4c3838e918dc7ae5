/**
 * Heun (Karras et al. 2022, algorithm 2 without churn; k-diffusion `sample_heun`): with
 * `d = (x - D(x, sigma)) / sigma`, `x~ = x + (sigma' - sigma) d`, `d' = (x~ - D(x~, sigma')) / sigma'`:
 * `x' = x + (sigma' - sigma) (d + d') / 2`; the step to sigma 0 is Euler's.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * Heun's second-order method (two model calls per step).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleHeun } from "./heun.ts";
 * await getDevice();
 * const x = await sampleHeun((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleHeun(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    const euler = run.lin([[run.x, sn / s], [d, 1 - sn / s]]);
    if (sn === 0) return await run.advance(i, euler, d);
    using x2 = euler;
    using d2 = await run.denoise(sn, x2);
    const dt = sn - s;
    // x + dt/2 (x - D)/s + dt/2 (x~ - D~)/s'
    const next = run.lin([
      [run.x, 1 + dt / (2 * s)],
      [d, -dt / (2 * s)],
      [x2, dt / (2 * sn)],
      [d2, -dt / (2 * sn)],
    ]);
    await run.advance(i, next, d);
  });
}
