/**
 * DPM2 ancestral ("DPM2 a"; k-diffusion `sample_dpm_2_ancestral`): the DPM2 midpoint step to
 * `sigma_down` (`sigma_m = sqrt(sigma sigma_down)`, `x' = x + (sigma_down - sigma) d_m`), then
 * `s_noise sigma_up z`; a step whose `sigma_down` is 0 is Euler's and adds no noise.
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
 * The DPM2 ancestral sampler (two model calls per step).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpm2Ancestral } from "./dpm2_ancestral.ts";
 * await getDevice();
 * const x = await sampleDpm2Ancestral((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDpm2Ancestral(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    const [down, up] = ancestralSigmas(s, sn, run.eta);
    if (down === 0) return await run.advance(i, run.lin([[d, 1]]), d);
    const m = Math.sqrt(s * down);
    using x2 = run.lin([[run.x, m / s], [d, 1 - m / s]]);
    using d2 = await run.denoise(m, x2);
    const k = (down - s) / m;
    using z = run.noise(i, s, sn);
    const next = run.lin([[run.x, 1], [x2, k], [d2, -k], [z, run.sNoise * up]]);
    await run.advance(i, next, d);
  });
}
