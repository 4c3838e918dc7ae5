/**
 * DPM++ SDE (k-diffusion `sample_dpmpp_sde`: stochastic DPM-Solver++ with r = 1/2): with
 * `t = -log sigma`, `h = -log sigma' - t`, `s = t + h / 2`, and ancestral splits
 * `(d1, u1)` of `sigma -> sigma_s` and `(d2, u2)` of `sigma -> sigma'`:
 * `x~ = (d1 / sigma) x + (1 - d1 / sigma) D(x, sigma) + u1 z1`,
 * `x' = (d2 / sigma) x + (1 - d2 / sigma) D(x~, sigma_s) + u2 z2` (the 1/(2r) = 1 weighting
 * keeps only the midpoint estimate); the step to sigma 0 is Euler's.
 *
 * Noise: k-diffusion (and AUTOMATIC1111, ComfyUI) draw `z1`, `z2` from a torchsde Brownian tree,
 * `z = (W(sigma_b) - W(sigma_a)) / sqrt(|sigma_b - sigma_a|)`, so the two draws of a step are
 * correlated (they share the increment over `[sigma_s, sigma]`). Our default draws them
 * independently from the seeded generator: each has the right N(0, I) law but the pair does not;
 * pass `options.noise` (it gets `substep` 0 and 1 with the sigmas of each draw) to reproduce a
 * Brownian tree.
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
 * The DPM++ SDE sampler (two model calls per step).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpmppSde } from "./dpmpp_sde.ts";
 * await getDevice();
 * const x = await sampleDpmppSde((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDpmppSde(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    if (sn === 0) return await run.advance(i, run.lin([[d, 1]]), d);
    const sm = Math.sqrt(s * sn); // sigma at t + h/2
    const [d1, u1] = ancestralSigmas(s, sm, run.eta);
    let x2: Tensor = run.lin([[run.x, d1 / s], [d, 1 - d1 / s]]);
    if (u1 > 0) {
      using a = x2;
      using z1 = run.noise(i, s, sm, 0);
      x2 = run.lin([[a, 1], [z1, run.sNoise * u1]]);
    }
    using xm = x2;
    using dm = await run.denoise(sm, xm);
    const [d2, u2] = ancestralSigmas(s, sn, run.eta);
    let next = run.lin([[run.x, d2 / s], [dm, 1 - d2 / s]]);
    if (u2 > 0) {
      using a = next;
      using z2 = run.noise(i, s, sn, 1);
      next = run.lin([[a, 1], [z2, run.sNoise * u2]]);
    }
    await run.advance(i, next, d);
  });
}
