/**
 * DPM++ 2M (k-diffusion `sample_dpmpp_2m`; DPM-Solver++(2M), Lu et al. 2022, algorithm 2): with
 * `t = -log sigma`, `h = t' - t`, `r = h_last / h`:
 * `D~ = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}`, `x' = (sigma' / sigma) x - expm1(-h) D~`; the first
 * step and the step to sigma 0 use `D~ = D_i`.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * The DPM++ 2M sampler in k-diffusion form (any sigmas, e.g. `sigmaSchedule("normal", n)`).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpmpp2m } from "./dpmpp_2m.ts";
 * await getDevice();
 * const x = await sampleDpmpp2m((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 5, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDpmpp2m(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  let old: Tensor | null = null;
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    let next: Tensor;
    if (sn === 0) next = run.lin([[d, 1]]);
    else {
      const h = Math.log(s) - Math.log(sn), e = -Math.expm1(-h);
      if (!old) next = run.lin([[run.x, sn / s], [d, e]]);
      else {
        const q = 1 / (2 * ((Math.log(run.sigmas[i - 1]!) - Math.log(s)) / h));
        next = run.lin([[run.x, sn / s], [d, e * (1 + q)], [old, -e * q]]);
      }
    }
    old?.dispose();
    old = d;
    await run.advance(i, next, d, true);
  }, () => old?.dispose());
}
