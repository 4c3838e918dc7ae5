/**
 * DDPM ancestral sampling (Ho et al. 2020, eq. 11 with `sigma_t^2 = beta~_t`; ComfyUI's
 * `sample_ddpm`) on any sigmas: with `ab = 1 / (sigma^2 + 1)`, `ab' = 1 / (sigma'^2 + 1)`,
 * `a = ab / ab'`, the variance-preserving sample `v = x sqrt(ab)` and `eps = (x - D) / sigma`:
 * `v' = (v - (1 - a) eps / sqrt(1 - ab)) / sqrt(a) + sqrt((1 - a)(1 - ab') / (1 - ab)) z`,
 * `x' = v' / sqrt(ab')` (at sigma' = 0 this is `D`).
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * The DDPM sampler in k-diffusion form.
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDdpm } from "./ddpm.ts";
 * await getDevice();
 * const x = await sampleDdpm((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDdpm(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    if (sn === 0) return await run.advance(i, run.lin([[d, 1]]), d);
    const ab = 1 / (s * s + 1), abn = 1 / (sn * sn + 1), a = ab / abn;
    const out = Math.sqrt(1 / abn); // x' = v' sqrt(sigma'^2 + 1)
    // v - k eps with v = x sqrt(ab), eps = (x - D)/s
    const k = (1 - a) / Math.sqrt(1 - ab);
    const cx = (Math.sqrt(ab) - k / s) / Math.sqrt(a) * out, cd = k / s / Math.sqrt(a) * out;
    const std = Math.sqrt((1 - a) * (1 - abn) / (1 - ab)) * out;
    using z = run.noise(i, s, sn);
    await run.advance(i, run.lin([[run.x, cx], [d, cd], [z, std * run.sNoise]]), d);
  });
}
