/**
 * DDIM (Song et al. 2021, eq. 12 with eta = 0) in sigma space: with `eps = (x - D) / sigma`,
 * `x' = D + sigma' eps`. For a variance-preserving model fed `x / sqrt(sigma^2 + 1)` this is
 * exactly the deterministic DDIM update `x_{t'} = sqrt(ab') x0 + sqrt(1 - ab') eps` rescaled, and
 * algebraically the Euler step, which is why ComfyUI runs its `ddim` sampler as Euler.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * The deterministic DDIM sampler in k-diffusion form (any sigmas; `ddim_uniform` is its
 * traditional schedule).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDdim } from "./ddim.ts";
 * await getDevice();
 * const x = await sampleDdim((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDdim(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    // D + sn (x - D) / s
    await run.advance(i, run.lin([[d, 1 - sn / s], [run.x, sn / s]]), d);
  });
}
