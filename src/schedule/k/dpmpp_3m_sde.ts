/**
 * DPM++ 3M SDE (k-diffusion `sample_dpmpp_3m_sde`): with `h = log(sigma / sigma')`,
 * `he = (eta + 1) h`, `phi2 = expm1(-he) / he + 1`, `phi3 = phi2 / he - 1/2`, and divided
 * differences of the last three denoised samples
 * (`r0 = h_1 / h`, `r1 = h_2 / h`, `d1_0 = (D_i - D_{i-1}) / r0`, `d1_1 = (D_{i-1} - D_{i-2}) / r1`,
 * `d1 = d1_0 + (d1_0 - d1_1) r0 / (r0 + r1)`, `d2 = (d1_0 - d1_1) / (r0 + r1)`):
 * `x' = e^{-he} x - expm1(-he) D_i + phi2 d1 - phi3 d2 + s_noise sigma' sqrt(-expm1(-2 eta h)) z`
 * (second order with two denoised samples, first with one); the step to sigma 0 returns `D`.
 *
 * Noise: as DPM++ 2M SDE, one draw per step over disjoint intervals, so our seeded default has the
 * law of k-diffusion's Brownian-tree increments but other values; pass `options.noise` to replay.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/**
 * The DPM++ 3M SDE sampler.
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpmpp3mSde } from "./dpmpp_3m_sde.ts";
 * await getDevice();
 * const x = await sampleDpmpp3mSde((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 5, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export function sampleDpmpp3mSde(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  let d1st: Tensor | null = null, d2nd: Tensor | null = null; // D_{i-1}, D_{i-2}
  let h1: number | null = null, h2: number | null = null;
  return runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    let next: Tensor;
    let h = h1 ?? 0;
    if (sn === 0) next = run.lin([[d, 1]]);
    else {
      h = Math.log(s) - Math.log(sn);
      const he = h * (run.eta + 1);
      const e = Math.exp(-he);
      // [D_i, D_{i-1}, D_{i-2}] coefficients
      const c = [-Math.expm1(-he), 0, 0];
      const phi2 = Math.expm1(-he) / he + 1;
      if (h2 !== null && h1 !== null && d2nd && d1st) {
        const r0 = h1 / h, r1 = h2 / h;
        // d1_0 = (D0 - D1)/r0, d1_1 = (D1 - D2)/r1
        const a = [1 / r0, -1 / r0, 0], b = [0, 1 / r1, -1 / r1];
        const phi3 = phi2 / he - 0.5;
        for (let k = 0; k < 3; k++) {
          const diff = a[k]! - b[k]!;
          const dd1 = a[k]! + diff * r0 / (r0 + r1), dd2 = diff / (r0 + r1);
          c[k]! += phi2 * dd1 - phi3 * dd2;
        }
      } else if (h1 !== null && d1st) {
        const r = h1 / h;
        c[0]! += phi2 / r;
        c[1]! -= phi2 / r;
      }
      const terms: [Tensor, number][] = [[run.x, e], [d, c[0]!]];
      if (d1st && c[1] !== 0) terms.push([d1st, c[1]!]);
      if (d2nd && c[2] !== 0) terms.push([d2nd, c[2]!]);
      if (run.eta > 0) {
        using z = run.noise(i, s, sn);
        terms.push([z, run.sNoise * sn * Math.sqrt(-Math.expm1(-2 * h * run.eta))]);
        next = run.lin(terms);
      } else next = run.lin(terms);
    }
    d2nd?.dispose();
    d2nd = d1st;
    d1st = d;
    h2 = h1;
    h1 = h;
    await run.advance(i, next, d, true);
  }, () => {
    d1st?.dispose();
    d2nd?.dispose();
  });
}
