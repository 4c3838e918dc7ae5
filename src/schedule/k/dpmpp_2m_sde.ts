/**
 * DPM++ 2M SDE (k-diffusion `sample_dpmpp_2m_sde`, midpoint or Heun correction): with
 * `h = log(sigma / sigma')`, `eh = eta h`, `r = h_last / h`:
 * `x' = (sigma' / sigma) e^{-eh} x - expm1(-h - eh) D_i
 *       + c (D_i - D_{i-1}) / r + s_noise sigma' sqrt(-expm1(-2 eh)) z`,
 * `c = -expm1(-h - eh) / 2` (midpoint) or `-expm1(-h - eh) / (-h - eh) + 1` (heun); the step to
 * sigma 0 returns `D`. With eta 0 it is a second-order ODE solver.
 *
 * Noise: k-diffusion draws `z` from a torchsde Brownian tree over `[sigma_min, sigma_max]`
 * (`z = (W(sigma') - W(sigma)) / sqrt(sigma - sigma')`); with one draw per step and disjoint
 * intervals those increments are independent N(0, I), which is what our default (the seeded
 * generator) draws; only the values differ, so pass `options.noise` to replay another run.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { ArgumentError } from "../../ops/errors.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/** The correction of DPM++ 2M SDE. */
export type SolverType = "midpoint" | "heun";

/**
 * The DPM++ 2M SDE sampler.
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleDpmpp2mSde } from "./dpmpp_2m_sde.ts";
 * await getDevice();
 * const x = await sampleDpmpp2mSde((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 5, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export async function sampleDpmpp2mSde(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions & { solverType?: SolverType } = {},
): Promise<Tensor> {
  const solver = options.solverType ?? "midpoint";
  if (solver !== "midpoint" && solver !== "heun") {
    throw new ArgumentError(`Unknown solver type "${solver}"; use "midpoint" or "heun"`);
  }
  let old: Tensor | null = null;
  let hLast = 0;
  return await runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    let next: Tensor;
    if (sn === 0) next = run.lin([[d, 1]]);
    else {
      const h = Math.log(s) - Math.log(sn), eh = run.eta * h;
      const e = -Math.expm1(-h - eh);
      const terms: [Tensor, number][] = [[run.x, sn / s * Math.exp(-eh)], [d, e]];
      if (old) {
        const r = hLast / h;
        const c = solver === "heun" ? e / (-h - eh) + 1 : 0.5 * e;
        terms[1]![1] += c / r;
        terms.push([old, -c / r]);
      }
      if (eh > 0) {
        using z = run.noise(i, s, sn);
        terms.push([z, run.sNoise * sn * Math.sqrt(-Math.expm1(-2 * eh))]);
        next = run.lin(terms);
      } else next = run.lin(terms);
      hLast = h;
    }
    old?.dispose();
    old = d;
    await run.advance(i, next, d, true);
  }, () => old?.dispose());
}
