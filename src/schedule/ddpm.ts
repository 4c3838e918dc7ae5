/**
 * DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eq. 6-7)
 * with the fixed-small variance, diffusers' `DDPMScheduler`.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { checkIndex, combine, type SamplerOptions, type StepResult, VpSampler } from "./sampler.ts";

/**
 * The DDPM sampler: posterior mean of `q(x_prev | x_t, x0)` plus noise of the posterior variance
 * `beta~_t` (clamped at 1e-20, "fixed_small"). Steps may skip timesteps; the step after the last
 * goes to `alphas_cumprod = 1`. Noise comes from `options.generator`.
 *
 * @example
 * ```ts
 * import { DDPMSampler } from "./ddpm.ts";
 * const s = new DDPMSampler(1000, { spacing: "trailing" });
 * console.log(s.timesteps[0], s.timesteps[999]); // 999, 0
 * ```
 */
export class DDPMSampler extends VpSampler {
  /** Always `ddpm`. */
  readonly name = "ddpm" as const;
  /** Sigma of each step's timestep, then 0 after the last. */
  readonly sigmas: Float64Array;

  /** Timesteps by diffusers' DDPM rule (`leading` spacing, offset 1 by default). */
  constructor(steps: number, options: SamplerOptions = {}) {
    super("ddpm", steps, options);
    const sigmas = this.schedule.sigmas;
    this.sigmas = Float64Array.from([...this.timesteps].map((t) => sigmas[t]!).concat([0]));
  }

  /** One DDPM step. */
  step(modelOutput: Tensor, i: number, x: Tensor): StepResult {
    checkIndex(this, i);
    const t = this.timesteps[i]!;
    const ac = this.schedule.alphasCumprod;
    const ab = ac[t]!;
    const abPrev = i + 1 < this.steps ? ac[this.timesteps[i + 1]!]! : 1;
    const alpha = ab / abPrev, beta = 1 - alpha;
    const denoised = this.cleanSample(modelOutput, x, ab);
    // posterior mean (eq. 7): mu = sqrt(ab_prev) beta_t / (1 - ab) x0 + sqrt(alpha_t) (1 - ab_prev) / (1 - ab) x_t
    const cx0 = Math.sqrt(abPrev) * beta / (1 - ab);
    const cx = Math.sqrt(alpha) * (1 - abPrev) / (1 - ab);
    if (t > 0) {
      // fixed-small variance beta~_t = (1 - ab_prev) / (1 - ab) beta_t, clamped at 1e-20
      const std = Math.sqrt(Math.max((1 - abPrev) / (1 - ab) * beta, 1e-20));
      const z = this.noise(x);
      const prev = combine(x, [[denoised, cx0], [x, cx], [z, std]]);
      z.dispose();
      return { prev, denoised };
    }
    return { prev: combine(x, [[denoised, cx0], [x, cx]]), denoised };
  }
}
