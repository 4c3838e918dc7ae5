/**
 * LCM (Luo et al. 2023, "Latent Consistency Models", multistep sampling, algorithm 1; ComfyUI's
 * `sample_lcm`): the consistency model's estimate is taken as the clean sample and re-noised to
 * the next level: `x' = D(x, sigma) + sigma' z`.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * The LCM sampler (for LCM-distilled models or LCM LoRAs; few steps).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleLcm } from "./lcm.ts";
 * await getDevice();
 * const x = await sampleLcm((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleLcm(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    if (sn === 0) return await run.advance(i, run.lin([[d, 1]]), d);
    using z = run.noise(i, s, sn);
    await run.advance(i, run.lin([[d, 1], [z, sn * run.sNoise]]), d);
  });
}
