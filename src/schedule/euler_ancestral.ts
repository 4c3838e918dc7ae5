/**
 * Euler ancestral ("Euler a"): an Euler step down to `sigma_down`, then fresh noise of scale
 * `sigma_up` (k-diffusion's `sample_euler_ancestral` with eta 1; diffusers'
 * `EulerAncestralDiscreteScheduler`).
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { randn, type RandomStream } from "../ops/rng.ts";
import {
  checkIndex,
  combine,
  type SamplerOptions,
  SigmaSampler,
  type StepResult,
} from "./sampler.ts";

/** k-diffusion's `get_ancestral_step` (eta 1): `[sigma_down, sigma_up]` of a step. */
export function ancestralStep(sigma: number, next: number): [number, number] {
  const up = Math.sqrt(Math.max(next * next * (sigma * sigma - next * next) / (sigma * sigma), 0));
  const down = Math.sqrt(Math.max(next * next - up * up, 0));
  return [down, up];
}

/**
 * The Euler ancestral sampler; its noise comes from `options.generator`, so a seed reproduces a
 * run exactly.
 *
 * @example
 * ```ts
 * import { EulerAncestralSampler } from "./euler_ancestral.ts";
 * import { Generator } from "../ops/rng.ts";
 * const s = new EulerAncestralSampler(30, { generator: new Generator(42) });
 * console.log(s.sigmas.length); // 31
 * ```
 */
export class EulerAncestralSampler extends SigmaSampler {
  /** Always `euler_a`. */
  readonly name = "euler_a" as const;
  readonly #generator: RandomStream | undefined;

  /** Tables by diffusers' Euler rule (`linspace` spacing by default). */
  constructor(steps: number, options: SamplerOptions = {}) {
    super(steps, "euler", options);
    this.#generator = options.generator;
  }

  /** One ancestral step. */
  step(modelOutput: Tensor, i: number, x: Tensor): StepResult {
    checkIndex(this, i);
    const sigma = this.sigmas[i]!, next = this.sigmas[i + 1]!;
    const [down, up] = ancestralStep(sigma, next);
    const denoised = this.denoised(modelOutput, i, x);
    // x' = x + (sigma_down - sigma) (x - D) / sigma + sigma_up z,  z ~ N(0, I)
    // (sigma_up^2 = sigma'^2 (sigma^2 - sigma'^2) / sigma^2, sigma_down^2 = sigma'^2 - sigma_up^2)
    const k = (down - sigma) / sigma;
    if (up === 0) return { prev: combine(x, [[x, 1 + k], [denoised, -k]]), denoised };
    const z = randn(x.shape, this.#generator ? { generator: this.#generator } : {});
    const prev = combine(x, [[x, 1 + k], [denoised, -k], [z, up]]);
    z.dispose();
    return { prev, denoised };
  }
}
