/**
 * DPM++ 2M: the second-order multistep DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: Fast Solver
 * for Guided Sampling of Diffusion Probabilistic Models", algorithm 2), in k-diffusion's form
 * (`sample_dpmpp_2m`), with or without Karras sigmas.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { untrack } from "../ops/scope.ts";
import {
  checkIndex,
  combine,
  type SamplerOptions,
  SigmaSampler,
  type StepResult,
} from "./sampler.ts";

/**
 * The DPM++ 2M sampler. The first step and the step to sigma 0 are first order (diffusers'
 * `lower_order_final` with `final_sigmas_type = "zero"`, k-diffusion's `sigmas[i + 1] == 0`
 * branch); the others use the previous denoised sample.
 *
 * @example
 * ```ts
 * import { DPMpp2MSampler } from "./dpmpp_2m.ts";
 * const s = new DPMpp2MSampler(25, { karras: true });
 * console.log(s.sigmas[1], s.timesteps[1]); // 12.2830, 969.76
 * ```
 */
export class DPMpp2MSampler extends SigmaSampler {
  /** `dpmpp_2m_karras` with Karras sigmas, else `dpmpp_2m`. */
  readonly name: "dpmpp_2m" | "dpmpp_2m_karras";
  #prevDenoised: Tensor | null = null;
  #prevIndex = -1;

  /** Tables by diffusers' DPM-Solver rule (`linspace` spacing by default). */
  constructor(steps: number, options: SamplerOptions = {}) {
    super(steps, "dpmsolver", options);
    this.name = options.karras ? "dpmpp_2m_karras" : "dpmpp_2m";
  }

  /** One DPM++ 2M step (steps must run in order; the history is the previous step's D). */
  step(modelOutput: Tensor, i: number, x: Tensor): StepResult {
    checkIndex(this, i);
    const sigma = this.sigmas[i]!, next = this.sigmas[i + 1]!;
    const denoised = this.denoised(modelOutput, i, x);
    let prev: Tensor;
    const history = this.#prevDenoised && this.#prevIndex === i - 1 ? this.#prevDenoised : null;
    if (next === 0) {
      // t' = -log 0 = inf: x' = (0 / sigma) x - expm1(-inf) D = D
      prev = combine(x, [[denoised, 1]]);
    } else {
      // t = -log sigma, h = t' - t;  x' = (sigma' / sigma) x - expm1(-h) D'
      const h = Math.log(sigma) - Math.log(next);
      const e = -Math.expm1(-h);
      if (!history) {
        // first order (DPM-Solver++ 1, the DDIM step in sigma space)
        prev = combine(x, [[x, next / sigma], [denoised, e]]);
      } else {
        // D' = (1 + 1/(2r)) D - (1/(2r)) D_prev, r = h_last / h
        const hLast = Math.log(this.sigmas[i - 1]!) - Math.log(sigma);
        const q = 1 / (2 * (hLast / h));
        prev = combine(x, [[x, next / sigma], [denoised, e * (1 + q)], [history, -e * q]]);
      }
    }
    this.#prevDenoised?.dispose();
    // a handle of our own, outside every scope: it must live until the next step
    this.#prevDenoised = denoised.view();
    untrack(this.#prevDenoised);
    this.#prevIndex = i;
    return { prev, denoised };
  }

  /** Frees the stored denoised sample. */
  override dispose(): void {
    this.#prevDenoised?.dispose();
    this.#prevDenoised = null;
    this.#prevIndex = -1;
  }
}
