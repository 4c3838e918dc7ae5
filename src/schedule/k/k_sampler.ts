/**
 * The k-diffusion sampler form (Karras et al. 2022; crowsonkb/k-diffusion `sampling.py`): a
 * sampler is a function of a denoiser `D(x, sigma)` (the model's estimate of the clean sample),
 * the initial `x` (noise times `sigmas[0]`) and the sigmas to visit, ending in 0. Stochastic
 * samplers draw their noise from an optional noise source so that a run can be compared with
 * another implementation given the same noise.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";
import { randn, type RandomStream } from "../../ops/rng.ts";
import { ArgumentError } from "../../ops/errors.ts";
import { combine } from "../sampler.ts";

// x: [B, C, H, W] (any shape), sigma: a scalar noise level -> denoised: the shape of x
/** The denoiser: the clean-sample estimate for `x` at noise level `sigma` (a new tensor). */
export type SigmaDenoiser = (x: Tensor, sigma: number) => Tensor | Promise<Tensor>;

/** What a noise source is asked for. */
export interface NoiseRequest {
  /** The step (0-based). */
  step: number;
  /** Which draw within the step (0, or 1 for the second draw of DPM++ SDE). */
  substep: number;
  /** k-diffusion's `noise_sampler(sigma, sigma_next)` arguments. */
  sigma: number;
  /** See `sigma`. */
  sigmaNext: number;
  /** The shape of the sample. */
  shape: readonly number[];
}

/**
 * A noise source: standard normal noise of `shape` for a step (a new tensor, which the sampler
 * disposes). The default draws from the sampler's seeded generator, independently per call.
 */
export type NoiseSource = (request: NoiseRequest) => Tensor;

/** What the per-step callback sees; the tensors are valid only during the call. */
export interface KStepInfo {
  /** The step just taken (0-based). */
  step: number;
  /** The noise level before the step. */
  sigma: number;
  /** The noise level after the step. */
  sigmaNext: number;
  /** The sample after the step. */
  x: Tensor;
  /** The denoiser's estimate at the start of the step. */
  denoised: Tensor;
}

/** Options of the k-diffusion samplers. */
export interface KSamplerOptions {
  /** The noise of the stochastic samplers (default: `randn` from `generator`). */
  noise?: NoiseSource;
  /** The stream of the default noise (default: the process-wide one). */
  generator?: RandomStream;
  /** Ancestral / SDE noise amount (default 1; 0 makes the SDE samplers ODE solvers). */
  eta?: number;
  /** Scale of the added noise (k-diffusion's `s_noise`, default 1). */
  sNoise?: number;
  /** LMS order (default 4). */
  order?: number;
  /** Called after every step (awaited). */
  onStep?: (info: KStepInfo) => void | Promise<void>;
}

/** A sampler in k-diffusion form; returns a new tensor and leaves `x` to the caller. */
export type KSampler = (
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  options?: KSamplerOptions,
) => Promise<Tensor>;

/**
 * k-diffusion's `get_ancestral_step`: `[sigma_down, sigma_up]` with
 * `sigma_up = min(sigma', eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2))` and
 * `sigma_down = sqrt(sigma'^2 - sigma_up^2)`.
 */
export function ancestralSigmas(sigma: number, next: number, eta: number): [number, number] {
  if (!eta) return [next, 0];
  const up = Math.min(
    next,
    eta * Math.sqrt(Math.max(next * next * (sigma * sigma - next * next) / (sigma * sigma), 0)),
  );
  return [Math.sqrt(Math.max(next * next - up * up, 0)), up];
}

/** The loop state shared by every sampler: the sample, the noise, the callback, the checks. */
export class KRun {
  /** The current sample (owned by the run). */
  x: Tensor;
  /** The sigmas. */
  readonly sigmas: Float64Array;
  /** Steps in the run (`sigmas.length - 1`). */
  readonly steps: number;
  /** Resolved `eta`. */
  readonly eta: number;
  /** Resolved `sNoise`. */
  readonly sNoise: number;
  readonly #model: SigmaDenoiser;
  readonly #o: KSamplerOptions;

  /** Checks the sigmas (decreasing, finite, >= 0, at least two) and takes a handle on `x`. */
  constructor(model: SigmaDenoiser, x: Tensor, sigmas: ArrayLike<number>, o: KSamplerOptions) {
    const s = Float64Array.from(sigmas);
    if (s.length < 2) {
      throw new ArgumentError(`A sampler needs at least two sigmas, got ${s.length}`);
    }
    for (let i = 0; i < s.length; i++) {
      const ok = Number.isFinite(s[i]) && s[i]! >= 0 && (i === 0 || s[i]! < s[i - 1]!);
      if (!ok) {
        throw new ArgumentError(
          `Sigmas must be finite, >= 0 and strictly decreasing; sigma ${i} is ${s[i]}`,
        );
      }
    }
    for (const [k, v] of [["eta", o.eta], ["sNoise", o.sNoise]] as const) {
      if (v !== undefined && !(v >= 0 && Number.isFinite(v))) {
        throw new ArgumentError(`${k} must be finite and >= 0, got ${v}`);
      }
    }
    this.sigmas = s;
    this.steps = s.length - 1;
    this.eta = o.eta ?? 1;
    this.sNoise = o.sNoise ?? 1;
    this.#model = model;
    this.#o = o;
    this.x = x.view();
  }

  /** The denoiser at `sigma` on `x` (default: the current sample). */
  async denoise(sigma: number, x: Tensor = this.x): Promise<Tensor> {
    return await this.#model(x, sigma);
  }

  /** Standard normal noise for a step, from the noise source or the generator. */
  noise(step: number, sigma: number, sigmaNext: number, substep = 0): Tensor {
    const shape = this.x.shape;
    if (this.#o.noise) return this.#o.noise({ step, substep, sigma, sigmaNext, shape });
    return randn(shape, this.#o.generator ? { generator: this.#o.generator } : {});
  }

  /** `sum c_i t_i` in the sample's dtype (one dispatch per 4 terms). */
  lin(pairs: readonly (readonly [Tensor, number])[]): Tensor {
    let acc = combine(this.x, pairs.slice(0, 4));
    for (let k = 4; k < pairs.length; k += 3) {
      using prev = acc;
      acc = combine(this.x, [[prev, 1], ...pairs.slice(k, k + 3)]);
    }
    return acc;
  }

  /** Replaces the sample, reports the step and frees `denoised` unless `keep`. */
  async advance(step: number, next: Tensor, denoised: Tensor, keep = false): Promise<void> {
    this.x.dispose();
    this.x = next;
    try {
      await this.#o.onStep?.({
        step,
        sigma: this.sigmas[step]!,
        sigmaNext: this.sigmas[step + 1]!,
        x: next,
        denoised,
      });
    } finally {
      if (!keep) denoised.dispose();
    }
  }

  /** Hands the sample over (the run is done). */
  finish(): Tensor {
    return this.x;
  }

  /** Frees the sample after an error. */
  fail(): void {
    this.x.dispose();
  }
}

/**
 * Runs `body` for each step with the run's state; frees the sample if a step throws.
 * `body` must call `run.advance` exactly once.
 */
export async function runSteps(
  model: SigmaDenoiser,
  x: Tensor,
  sigmas: ArrayLike<number>,
  o: KSamplerOptions,
  body: (run: KRun, i: number, sigma: number, next: number) => Promise<void>,
  cleanup?: () => void,
): Promise<Tensor> {
  const run = new KRun(model, x, sigmas, o);
  try {
    for (let i = 0; i < run.steps; i++) await body(run, i, run.sigmas[i]!, run.sigmas[i + 1]!);
    return run.finish();
  } catch (e) {
    run.fail();
    throw e;
  } finally {
    cleanup?.();
  }
}
