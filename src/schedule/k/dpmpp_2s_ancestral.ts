/**
 * DPM++ 2S ancestral (k-diffusion `sample_dpmpp_2s_ancestral`; DPM-Solver++(2S), Lu et al. 2022,
 * algorithm 1 with r = 1/2, stepping to `sigma_down`): with `t = -log sigma`,
 * `t_d = -log sigma_down`, `h = t_d - t`, `s = t + h / 2`:
 * `u = (sigma_s / sigma) x - expm1(-h/2) D(x, sigma)`,
 * `x' = (sigma_down / sigma) x - expm1(-h) D(u, sigma_s) + s_noise sigma_up z`.
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
 * The DPM++ 2S ancestral sampler (two model calls per step).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpmpp2sAncestral } from "./dpmpp_2s_ancestral.ts";
 * await getDevice();
 * const x = await sampleDpmpp2sAncestral((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDpmpp2sAncestral(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    const [down, up] = ancestralSigmas(s, sn, run.eta);
    let next: Tensor;
    if (down === 0) next = run.lin([[d, 1]]);
    else {
      const h = Math.log(s) - Math.log(down);
      const sm = Math.exp(-(-Math.log(s) + h / 2));
      using u = run.lin([[run.x, sm / s], [d, -Math.expm1(-h / 2)]]);
      using d2 = await run.denoise(sm, u);
      next = run.lin([[run.x, down / s], [d2, -Math.expm1(-h)]]);
    }
    if (sn > 0 && up > 0) {
      using prev = next;
      using z = run.noise(i, s, sn);
      next = run.lin([[prev, 1], [z, run.sNoise * up]]);
    }
    await run.advance(i, next, d);
  });
}
