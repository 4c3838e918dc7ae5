/**
 * Euler: the first-order solver of the probability-flow ODE in sigma space (Karras et al. 2022,
 * algorithm 2 without churn; diffusers' `EulerDiscreteScheduler`, k-diffusion's `sample_euler`).
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import {
  checkIndex,
  combine,
  type SamplerOptions,
  SigmaSampler,
  type StepResult,
} from "./sampler.ts";

/**
 * The Euler sampler.
 *
 * @example
 * ```ts
 * import { EulerSampler } from "./euler.ts";
 * const s = new EulerSampler(25);
 * console.log(s.timesteps[0], s.sigmas[0], s.initNoiseSigma); // 999, 14.6146, 14.6146
 * ```
 */
export class EulerSampler extends SigmaSampler {
  /** Always `euler`. */
  readonly name = "euler" as const;

  /** Tables by diffusers' Euler rule (`linspace` spacing by default). */
  constructor(steps: number, options: SamplerOptions = {}) {
    super(steps, "euler", options);
  }

  /** One Euler step. */
  step(modelOutput: Tensor, i: number, x: Tensor): StepResult {
    checkIndex(this, i);
    const sigma = this.sigmas[i]!, next = this.sigmas[i + 1]!;
    const denoised = this.denoised(modelOutput, i, x);
    // Euler on dx/dsigma = (x - D) / sigma (Karras et al. 2022, eq. 4 and alg. 2):
    //   x' = x + (sigma' - sigma) (x - D) / sigma
    const k = (next - sigma) / sigma;
    const prev = combine(x, [[x, 1 + k], [denoised, -k]]);
    return { prev, denoised };
  }
}
