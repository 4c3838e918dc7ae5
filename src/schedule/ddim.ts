/**
 * DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12), diffusers'
 * `DDIMScheduler`: deterministic for eta 0, ancestral noise for eta > 0.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { ArgumentError } from "../ops/errors.ts";
import {
  checkIndex,
  combine,
  type SamplerOptions,
  type StepResult,
  vpCoefs,
  VpSampler,
} from "./sampler.ts";

/**
 * The DDIM sampler. It works on variance-preserving samples (`initNoiseSigma` 1, unscaled model
 * input); the step after timestep `t` goes to `t - T // steps` (diffusers' rule for every
 * spacing), and past 0 to `alphas_cumprod[0]` (or 1 with `setAlphaToOne`).
 *
 * @example
 * ```ts
 * import { DDIMSampler } from "./ddim.ts";
 * const s = new DDIMSampler(25); // SD 1.x: leading spacing, steps_offset 1
 * console.log(s.timesteps[0], s.timesteps[24]); // 961, 1
 * ```
 */
export class DDIMSampler extends VpSampler {
  /** Always `ddim`. */
  readonly name = "ddim" as const;
  /** Sigma of each step's timestep, then the sigma of the last `alphasPrev`. */
  readonly sigmas: Float64Array;
  /** `alphas_cumprod` after each step. */
  readonly alphasPrev: Float64Array;
  readonly #eta: number;

  /** Timesteps by diffusers' DDIM rule (`leading` spacing, offset 1 by default). */
  constructor(steps: number, options: SamplerOptions = {}) {
    super("ddim", steps, options);
    const eta = options.eta ?? 0;
    if (!(eta >= 0)) throw new ArgumentError(`DDIM's eta must be >= 0, got ${eta}`);
    const schedule = this.schedule;
    const ratio = Math.floor(schedule.trainSteps / steps);
    const final = options.setAlphaToOne ? 1 : schedule.alphasCumprod[0]!;
    this.alphasPrev = this.timesteps.map((t) =>
      t - ratio >= 0 ? schedule.alphasCumprod[t - ratio]! : final
    );
    const sig = (ab: number) => Math.sqrt((1 - ab) / ab);
    this.sigmas = Float64Array.from(
      [...this.timesteps.map((t) => sig(schedule.alphasCumprod[t]!)), sig(this.alphasPrev.at(-1)!)],
    );
    this.#eta = eta;
  }

  /** One DDIM step. */
  step(modelOutput: Tensor, i: number, x: Tensor): StepResult {
    checkIndex(this, i);
    const ab = this.schedule.alphasCumprod[this.timesteps[i]!]!;
    const abPrev = this.alphasPrev[i]!;
    const { eps } = vpCoefs(this.prediction, ab);
    const denoised = this.cleanSample(modelOutput, x, ab);
    // sigma_t(eta) = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev)   (eq. 16)
    const std = this.#eta * Math.sqrt((1 - abPrev) / (1 - ab) * (1 - ab / abPrev));
    // x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - std^2) eps + std z   (eq. 12)
    const dir = Math.sqrt(Math.max(1 - abPrev - std * std, 0));
    const pairs: [Tensor, number][] = [
      [denoised, Math.sqrt(abPrev)],
      [x, dir * eps[0]],
      [modelOutput, dir * eps[1]],
    ];
    if (std > 0) {
      const z = this.noise(x);
      const prev = combine(x, [...pairs, [z, std]]);
      z.dispose();
      return { prev, denoised };
    }
    return { prev: combine(x, pairs), denoised };
  }
}
