/**
 * LMS: the linear multistep (Adams-Bashforth) method in sigma (k-diffusion `sample_lms`): with
 * the last `p` derivatives `d_{i-j} = (x_{i-j} - D_{i-j}) / sigma_{i-j}`,
 * `x' = x + sum_j c_j d_{i-j}`, `c_j = int_{sigma_i}^{sigma_{i+1}} prod_{k != j}
 * (tau - sigma_{i-k}) / (sigma_{i-j} - sigma_{i-k}) dtau` (order `p = min(i + 1, order)`).
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { ArgumentError } from "../../ops/errors.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

// Gauss-Legendre nodes and weights on [-1, 1], 4 points: exact for polynomials of degree <= 7
const GL_X = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
const GL_W = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

/**
 * The coefficient of `d_{i-j}` in an order-`order` step `i` (k-diffusion's
 * `linear_multistep_coeff`; the integrand is a polynomial of degree < 4, which 4-point
 * Gauss-Legendre integrates exactly where k-diffusion calls `scipy.integrate.quad`).
 */
export function lmsCoefficient(
  order: number,
  t: ArrayLike<number>,
  i: number,
  j: number,
): number {
  if (order - 1 > i) throw new ArgumentError(`LMS order ${order} is too high for step ${i}`);
  const a = t[i]!, b = t[i + 1]!;
  let sum = 0;
  for (let q = 0; q < GL_X.length; q++) {
    const tau = (a + b) / 2 + (b - a) / 2 * GL_X[q]!;
    let prod = 1;
    for (let k = 0; k < order; k++) {
      if (k !== j) prod *= (tau - t[i - k]!) / (t[i - j]! - t[i - k]!);
    }
    sum += GL_W[q]! * prod;
  }
  return sum * (b - a) / 2;
}

/**
 * The LMS sampler (order 4 by default, `options.order`).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleLms } from "./lms.ts";
 * await getDevice();
 * const x = await sampleLms((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 5, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export async function sampleLms(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions = {},
): Promise<Tensor> {
  const order = options.order ?? 4;
  if (!Number.isInteger(order) || order < 1 || order > 4) {
    throw new ArgumentError(`LMS order must be 1, 2, 3 or 4, got ${order}`);
  }
  const ds: Tensor[] = []; // newest last
  return await runSteps(model, x, sigmas, options, async (run, i, s) => {
    const d = await run.denoise(s);
    ds.push(run.lin([[run.x, 1 / s], [d, -1 / s]]));
    if (ds.length > order) ds.shift()!.dispose();
    const p = Math.min(i + 1, order);
    const terms: [Tensor, number][] = [[run.x, 1]];
    for (let j = 0; j < p; j++) {
      terms.push([ds[ds.length - 1 - j]!, lmsCoefficient(p, run.sigmas, i, j)]);
    }
    await run.advance(i, run.lin(terms), d);
  }, () => ds.forEach((t) => t.dispose()));
}
