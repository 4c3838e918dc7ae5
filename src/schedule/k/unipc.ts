/**
 * UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of
 * Diffusion Models", algorithms 2-3, data prediction; diffusers' `UniPCMultistepScheduler` with
 * AUTOMATIC1111's defaults: order 3, `bh1`, lower order at the first and last steps), in sigma
 * space. With `lambda = -log sigma`, `h = lambda' - lambda`, the last model outputs `m_0, m_k`
 * at `lambda_k`, `r_k = (lambda_k - lambda) / h`, `D1_k = (m_k - m_0) / r_k`:
 * predictor (UniP) `x~' = (sigma' / sigma) x - expm1(-h) m_0 - B(h) sum_k rho_k D1_k`;
 * corrector (UniC), once `m' = D(x~', sigma')` is known,
 * `x' = (sigma' / sigma) x - expm1(-h) m_0 - B(h) (sum_k rho^c_k D1_k + rho^c_p (m' - m_0))`,
 * `B(h) = -h` (bh1) or `expm1(-h)` (bh2), the rhos solving `R rho = b` with
 * `R_jk = r_k^j`, `b_j = j! phi_{j+1}(-h) / B(h)` (`phi_1 = expm1(-h) / -h - 1`,
 * `phi_{j+1} = phi_j / -h - 1 / (j + 1)!`).
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { ArgumentError } from "../../ops/errors.ts";
import { type KSamplerOptions, runSteps, type SigmaDenoiser } from "./k_sampler.ts";

/** The B(h) of UniPC: `bh1` (`-h`) or `bh2` (`expm1(-h)`). */
export type UniPcVariant = "bh1" | "bh2";

/** Solves a small dense system by Gaussian elimination with partial pivoting. */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row.slice(0, n), b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

/**
 * Coefficients of one UniP (or UniC) update from `sigma` to `next` of order `order`, given the
 * sigmas of the previous model outputs (newest first, `order - 1` of them): the update is
 * `cx x + sum_k cm[k] m_k (+ cNew m')`, `m_0` the output at `sigma`.
 */
export function uniPcCoefficients(
  sigma: number,
  next: number,
  prevSigmas: readonly number[],
  order: number,
  variant: UniPcVariant,
  corrector: boolean,
): { cx: number; cm: number[]; cNew: number } {
  const h = Math.log(sigma) - Math.log(next), hh = -h;
  const rks = prevSigmas.slice(0, order - 1).map((s) => (Math.log(sigma) - Math.log(s)) / h);
  const phi1 = Math.expm1(hh);
  const bh = variant === "bh1" ? hh : Math.expm1(hh);
  const full = [...rks, 1];
  const rMat: number[][] = [], b: number[] = [];
  let phiK = phi1 / hh - 1, fact = 1;
  for (let j = 1; j <= order; j++) {
    rMat.push(full.map((r) => r ** (j - 1)));
    b.push(phiK * fact / bh);
    fact *= j + 1;
    phiK = phiK / hh - 1 / fact;
  }
  const cm = new Array<number>(rks.length + 1).fill(0);
  cm[0] = -phi1;
  let cNew = 0;
  let rhos: number[] = [];
  if (corrector) {
    rhos = order === 1 ? [0.5] : solve(rMat, b);
    cNew = -bh * rhos[rhos.length - 1]!;
    cm[0]! -= cNew; // D1_t = m' - m_0
  } else if (rks.length > 0) {
    rhos = order === 2 ? [0.5] : solve(rMat.slice(0, -1), b.slice(0, -1));
  }
  for (let k = 0; k < rks.length; k++) {
    // -B(h) rho_k (m_k - m_0) / r_k
    const c = -bh * rhos[k]! / rks[k]!;
    cm[k + 1] = c;
    cm[0]! -= c;
  }
  return { cx: next / sigma, cm, cNew };
}

/**
 * The UniPC sampler (one model call per step; the corrector reuses the next step's call).
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { sampleUniPc } from "./unipc.ts";
 * await getDevice();
 * const x = await sampleUniPc((x) => scale(x, 0), randn([1, 4, 8, 8]), [14.6, 5, 1, 0]);
 * console.log(x.shape);
 * ```
 */
export async function sampleUniPc(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options: KSamplerOptions & { variant?: UniPcVariant; uniOrder?: number } = {},
): Promise<Tensor> {
  const variant = options.variant ?? "bh1", maxOrder = options.uniOrder ?? 3;
  if (variant !== "bh1" && variant !== "bh2") {
    throw new ArgumentError(`Unknown UniPC variant "${variant}"; use "bh1" or "bh2"`);
  }
  if (!Number.isInteger(maxOrder) || maxOrder < 1 || maxOrder > 3) {
    throw new ArgumentError(`UniPC order must be 1, 2 or 3, got ${maxOrder}`);
  }
  const ms: Tensor[] = []; // model outputs, newest first
  const msSigma: number[] = [];
  let last: Tensor | null = null; // the sample the last predictor started from
  let lastOrder = 0;
  return await runSteps(model, x, sigmas, options, async (run, i, s, sn) => {
    const d = await run.denoise(s);
    if (last && i > 0) {
      // UniC: correct x_i with the output just computed (at the predicted x_i)
      const c = uniPcCoefficients(msSigma[0]!, s, msSigma.slice(1), lastOrder, variant, true);
      const terms: [Tensor, number][] = [[last, c.cx], [d, c.cNew]];
      c.cm.forEach((v, k) => terms.push([ms[k]!, v]));
      const corrected = run.lin(terms);
      run.x.dispose();
      run.x = corrected;
    }
    ms.unshift(d);
    msSigma.unshift(s);
    if (ms.length > maxOrder) {
      ms.pop()!.dispose();
      msSigma.pop();
    }
    // warm-up and lower order at the end (diffusers' lower_order_final)
    const order = Math.min(maxOrder, run.steps - i, i + 1);
    let next: Tensor;
    if (sn === 0) next = run.lin([[d, 1]]);
    else {
      const c = uniPcCoefficients(s, sn, msSigma.slice(1), order, variant, false);
      const terms: [Tensor, number][] = [[run.x, c.cx]];
      c.cm.forEach((v, k) => terms.push([ms[k]!, v]));
      next = run.lin(terms);
    }
    last?.dispose();
    last = run.x.view();
    lastOrder = order;
    await run.advance(i, next, d, true);
  }, () => {
    ms.forEach((t) => t.dispose());
    last?.dispose();
  });
}
