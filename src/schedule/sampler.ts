/**
 * The one small interface every sampler implements, its options, and the shared pieces: model
 * parametrizations (epsilon, v) turned into denoised-sample coefficients, and the sigma tables of
 * the sigma-space (k-diffusion) samplers.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { randn, type RandomStream } from "../ops/rng.ts";
import { affine } from "../ops/unary.ts";
import { lincomb, type LincombTerm } from "../ops/lincomb.ts";
import { ArgumentError, DenoiseError } from "../ops/errors.ts";
import { checkName, createSchedule, type NoiseSchedule } from "./schedules.ts";
import { spacedTimesteps, type SpacingRule, type TimestepSpacing } from "./spacing.ts";
import { karrasSigmas } from "./karras.ts";

/** What the model predicts: the noise (`epsilon`) or the velocity (`v_prediction`, SD 2.x-v). */
export type Prediction = "epsilon" | "v_prediction";

/** Every prediction type, for messages and menus. */
export const PREDICTIONS: readonly Prediction[] = Object.freeze(["epsilon", "v_prediction"]);

/** Sampler names (`dpmpp_2m_karras` is `dpmpp_2m` with `karras: true`). */
export type SamplerName = "ddpm" | "ddim" | "euler" | "euler_a" | "dpmpp_2m" | "dpmpp_2m_karras";

/** Every sampler name, for messages and menus. */
export const SAMPLER_NAMES: readonly SamplerName[] = Object.freeze([
  "ddpm",
  "ddim",
  "euler",
  "euler_a",
  "dpmpp_2m",
  "dpmpp_2m_karras",
]);

/** A model output held NaN or infinity. */
export class NonFiniteError extends DenoiseError {}

/** Options shared by the samplers (defaults follow Stable Diffusion 1.x's scheduler configs). */
export interface SamplerOptions {
  /** The training schedule (default SD 1.x: `scaled_linear`, 0.00085 .. 0.012, 1000 steps). */
  schedule?: NoiseSchedule;
  /** What the model predicts (default `epsilon`). */
  prediction?: Prediction | string;
  /**
   * Timestep spacing (default `leading` for `ddpm` / `ddim`, `linspace` for the sigma-space
   * samplers: the diffusers class defaults under SD 1.x's configs).
   */
  spacing?: TimestepSpacing | string;
  /** Offset added to `leading` timesteps (default 1, SD 1.x's `steps_offset`). */
  stepsOffset?: number;
  /** Karras sigmas (`euler`, `euler_a`, `dpmpp_2m`; default false, true for `dpmpp_2m_karras`). */
  karras?: boolean;
  /**
   * DDIM's eta: 0 is deterministic DDIM, 1 is DDPM-like (default 0). For the k-diffusion
   * samplers, the ancestral / SDE noise amount (default 1).
   */
  eta?: number;
  /** Clip the predicted clean sample to `[-clipSampleRange, clipSampleRange]` (ddpm, ddim). */
  clipSample?: boolean;
  /** The clip range (default 1). */
  clipSampleRange?: number;
  /** DDIM: the step after the last timestep uses `alphas_cumprod = 1` (default false, as SD). */
  setAlphaToOne?: boolean;
  /**
   * DPM++ 2M with Karras sigmas: round model timesteps to whole numbers as diffusers'
   * `DPMSolverMultistepScheduler` does (default false: fractional timesteps, as k-diffusion,
   * AUTOMATIC1111 and ComfyUI pass them).
   */
  roundTimesteps?: boolean;
  /** The random stream of ancestral noise (default: the process-wide one). */
  generator?: RandomStream;
}

/** What a step returns; the caller owns (and disposes) both tensors. */
export interface StepResult {
  /** The sample after the step. */
  prev: Tensor;
  /** The model's estimate of the clean sample at this step (for previews). */
  denoised: Tensor;
}

/**
 * A sampler for one run of `steps` steps (like a diffusers scheduler after `set_timesteps`).
 * The loop: `x = noise * initNoiseSigma`; for each step `i`, call the model on
 * `scaleModelInput(x, i)` at `timesteps[i]`, then `x = step(output, i, x).prev`.
 * Stateful samplers (DPM++ 2M) keep history; call `dispose()` when done.
 */
export interface Sampler {
  /** The sampler's name. */
  readonly name: SamplerName;
  /** What the model predicts. */
  readonly prediction: Prediction;
  /** Number of steps. */
  readonly steps: number;
  /** The model timestep at each step (fractional for some samplers). */
  readonly timesteps: Float64Array;
  /**
   * Noise levels as k-diffusion sigmas: `sigmas[i]` before step `i`, `sigmas[steps]` after the
   * last (0, or the smallest training sigma for DDIM).
   */
  readonly sigmas: Float64Array;
  /** Scale of the initial noise. */
  readonly initNoiseSigma: number;
  /** The factor `scaleModelInput` applies at step `i`. */
  modelInputScale(i: number): number;
  /** The model's input at step `i` (a new tensor). */
  scaleModelInput(x: Tensor, i: number): Tensor;
  /** One step from `x` given the model's output at step `i`. */
  step(modelOutput: Tensor, i: number, x: Tensor): StepResult;
  /** Frees the sampler's history. */
  dispose(): void;
}

/** Resolves the shared options (schedule, prediction) with their defaults. */
export function baseOptions(
  o: SamplerOptions,
): { schedule: NoiseSchedule; prediction: Prediction } {
  return {
    schedule: o.schedule ?? createSchedule(),
    prediction: checkName(o.prediction ?? "epsilon", PREDICTIONS, "prediction type"),
  };
}

/** Checks a step index. */
export function checkIndex(s: Sampler, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= s.steps) {
    throw new ArgumentError(`Step ${i} is outside this ${s.steps}-step ${s.name} run`);
  }
}

/**
 * Coefficients `[a, b]` of the denoised sample `D = a x + b out` in sigma space (k-diffusion's
 * `c_skip`, `c_out` for a discrete VP model fed `x / sqrt(sigma^2 + 1)`):
 * epsilon: `D = x - sigma eps`; v: `D = x / (sigma^2 + 1) - v sigma / sqrt(sigma^2 + 1)`.
 */
export function sigmaDenoiseCoefs(prediction: Prediction, sigma: number): [number, number] {
  if (prediction === "epsilon") return [1, -sigma];
  return [1 / (sigma * sigma + 1), -sigma / Math.sqrt(sigma * sigma + 1)];
}

/**
 * Coefficients of the clean sample `x0 = a x + b out` and of the noise `eps = c x + d out` for a
 * variance-preserving sample `x = sqrt(ab) x0 + sqrt(1 - ab) eps` (DDPM, DDIM).
 */
export function vpCoefs(
  prediction: Prediction,
  ab: number,
): { x0: [number, number]; eps: [number, number] } {
  const a = Math.sqrt(ab), s = Math.sqrt(1 - ab);
  if (prediction === "epsilon") return { x0: [1 / a, -s / a], eps: [0, 1] };
  // v = a eps - s x0  =>  x0 = a x - s v, eps = s x + a v
  return { x0: [a, -s], eps: [s, a] };
}

/** `lincomb` of `[tensor, coefficient]` pairs, dropping zero coefficients, in `like`'s dtype. */
export function combine(
  like: Tensor,
  pairs: readonly (readonly [Tensor, number])[],
  clip?: readonly [number, number],
): Tensor {
  const kept = pairs.filter(([, c]) => c !== 0);
  const terms: LincombTerm[] = (kept.length ? kept : pairs.slice(0, 1)).map(([x, c]) => ({ x, c }));
  return lincomb(terms, clip ? { dtype: like.dtype, clip } : { dtype: like.dtype });
}

/** Sigma tables of the sigma-space samplers (`euler`, `euler_a`, `dpmpp_2m`). */
export interface SigmaTable {
  timesteps: Float64Array;
  sigmas: Float64Array;
  initNoiseSigma: number;
}

/**
 * diffusers' `set_timesteps` of `EulerDiscreteScheduler` (rule `euler`) and
 * `DPMSolverMultistepScheduler` (rule `dpmsolver`): sigmas interpolated linearly in sigma at the
 * spaced timesteps, or Karras sigmas (Euler: over the spaced range; DPM-Solver: over the whole
 * training range) whose timesteps come from `sigmaToT`; then a final 0. The initial noise scale is
 * `sigma_max` for `linspace` / `trailing` and `sqrt(sigma_max^2 + 1)` for `leading` (diffusers'
 * `init_noise_sigma`).
 */
export function sigmaTable(
  steps: number,
  rule: SpacingRule,
  schedule: NoiseSchedule,
  o: SamplerOptions,
): SigmaTable {
  const spacing = o.spacing ?? "linspace";
  let ts: Float64Array = spacedTimesteps(steps, {
    spacing,
    stepsOffset: o.stepsOffset ?? 1,
    trainSteps: schedule.trainSteps,
    rule,
  });
  let sig: Float64Array = ts.map((t) => schedule.interpSigma(t));
  if (o.karras) {
    const [lo, hi] = rule === "dpmsolver"
      ? [schedule.sigmaMin, schedule.sigmaMax]
      : [sig[sig.length - 1]!, sig[0]!];
    sig = karrasSigmas(steps, lo, hi);
    ts = sig.map((s) => schedule.sigmaToT(s));
    if (o.roundTimesteps) ts = ts.map(Math.round);
  }
  const sigmas = new Float64Array(steps + 1);
  sigmas.set(sig);
  const max = Math.max(...sig);
  return {
    timesteps: ts,
    sigmas,
    initNoiseSigma: spacing === "leading" ? Math.sqrt(max * max + 1) : max,
  };
}

/** Shared parts of the sigma-space samplers: tables, input scaling, the denoised sample. */
export abstract class SigmaSampler implements Sampler {
  abstract readonly name: SamplerName;
  readonly prediction: Prediction;
  readonly steps: number;
  readonly timesteps: Float64Array;
  readonly sigmas: Float64Array;
  readonly initNoiseSigma: number;
  /** The training schedule. */
  readonly schedule: NoiseSchedule;

  /** Builds the tables by `rule`. */
  constructor(steps: number, rule: SpacingRule, options: SamplerOptions) {
    const { schedule, prediction } = baseOptions(options);
    const t = sigmaTable(steps, rule, schedule, options);
    this.schedule = schedule;
    this.prediction = prediction;
    this.steps = steps;
    this.timesteps = t.timesteps;
    this.sigmas = t.sigmas;
    this.initNoiseSigma = t.initNoiseSigma;
  }

  /** `1 / sqrt(sigma^2 + 1)`: the variance-preserving input the model was trained on. */
  modelInputScale(i: number): number {
    checkIndex(this, i);
    const s = this.sigmas[i]!;
    return 1 / Math.sqrt(s * s + 1);
  }

  /** `x / sqrt(sigma^2 + 1)`. */
  scaleModelInput(x: Tensor, i: number): Tensor {
    return affine(x, this.modelInputScale(i), 0);
  }

  /** The denoised sample `D = c_skip x + c_out out` at step `i`. */
  denoised(out: Tensor, i: number, x: Tensor): Tensor {
    const [a, b] = sigmaDenoiseCoefs(this.prediction, this.sigmas[i]!);
    return combine(x, [[x, a], [out, b]]);
  }

  abstract step(modelOutput: Tensor, i: number, x: Tensor): StepResult;

  /** Nothing to free by default. */
  dispose(): void {}
}

/** Rejects Karras sigmas for the timestep samplers. */
export function noKarras(name: string, o: SamplerOptions): void {
  if (o.karras) {
    throw new ArgumentError(
      `Karras sigmas apply to euler, euler_a and dpmpp_2m, not ${name}; drop karras`,
    );
  }
}

/** The clip range of `clipSample`, or undefined. */
export function clipRange(o: SamplerOptions): readonly [number, number] | undefined {
  if (!o.clipSample) return undefined;
  const r = o.clipSampleRange ?? 1;
  if (!(r > 0)) throw new ArgumentError(`clipSampleRange must be > 0, got ${r}`);
  return [-r, r];
}

/**
 * Shared parts of the variance-preserving timestep samplers (DDPM, DDIM): diffusers' DDIM
 * timestep rule, unscaled model input, the (optionally clipped) clean-sample estimate and the
 * ancestral noise.
 */
export abstract class VpSampler implements Sampler {
  abstract readonly name: SamplerName;
  abstract readonly sigmas: Float64Array;
  readonly prediction: Prediction;
  readonly steps: number;
  readonly timesteps: Float64Array;
  readonly initNoiseSigma = 1;
  /** The training schedule. */
  readonly schedule: NoiseSchedule;
  readonly #clip: readonly [number, number] | undefined;
  readonly #generator: RandomStream | undefined;

  /** Timesteps by diffusers' DDIM/DDPM rule (`leading` spacing, offset 1 by default). */
  constructor(name: SamplerName, steps: number, options: SamplerOptions) {
    noKarras(name, options);
    const { schedule, prediction } = baseOptions(options);
    this.schedule = schedule;
    this.prediction = prediction;
    this.steps = steps;
    this.timesteps = spacedTimesteps(steps, {
      spacing: options.spacing ?? "leading",
      stepsOffset: options.stepsOffset ?? 1,
      trainSteps: schedule.trainSteps,
      rule: "ddim",
    });
    this.#clip = clipRange(options);
    this.#generator = options.generator;
  }

  /** 1: these samplers take the sample as it is. */
  modelInputScale(i: number): number {
    checkIndex(this, i);
    return 1;
  }

  /** A new handle on `x` (no copy). */
  scaleModelInput(x: Tensor, i: number): Tensor {
    checkIndex(this, i);
    return x.view();
  }

  /** The clean-sample estimate `x0 = a x + b out` at `alphas_cumprod` `ab`, clipped if asked. */
  protected cleanSample(modelOutput: Tensor, x: Tensor, ab: number): Tensor {
    const { x0 } = vpCoefs(this.prediction, ab);
    return combine(x, [[x, x0[0]], [modelOutput, x0[1]]], this.#clip);
  }

  /** Standard normal noise of `x`'s shape from the sampler's generator. */
  protected noise(x: Tensor): Tensor {
    return randn(x.shape, this.#generator ? { generator: this.#generator } : {});
  }

  abstract step(modelOutput: Tensor, i: number, x: Tensor): StepResult;

  /** Nothing to free. */
  dispose(): void {}
}
