/**
 * Euler ancestral ("Euler a"; k-diffusion `sample_euler_ancestral`): an Euler step to
 * `sigma_down`, then noise of scale `sigma_up`:
 * `x' = x + (sigma_down - sigma) (x - D) / sigma + s_noise sigma_up z`, with
 * `sigma_up = min(sigma', eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2))`,
 * `sigma_down = sqrt(sigma'^2 - sigma_up^2)`.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import {
  ancestralSigmas,
  type KSamplerOptions,
  runSteps,
  type SigmaDenoiser,
} from "./k_sampler.ts";

/**
 * The Euler ancestral sampler (noise from `options.noise`, else the seeded generator).
 *
 * @example
 * ```ts
 * import { Generator, getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleEulerAncestral } from "./euler_ancestral.ts";
 * await getDevice();
 * const g = new Generator(1);
 * const x = await sampleEulerAncestral((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0], {
 *   generator: g,
 * });
 * console.log(x.shape);
 * ```
 */
export function sampleEulerAncestral(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    const [down, up] = ancestralSigmas(s, sn, run.eta);
    const k = down / s;
    if (sn > 0 && up > 0) {
      using z = run.noise(i, s, sn);
      await run.advance(i, run.lin([[run.x, k], [d, 1 - k], [z, run.sNoise * up]]), d);
    } else await run.advance(i, run.lin([[run.x, k], [d, 1 - k]]), d);
  });
}
