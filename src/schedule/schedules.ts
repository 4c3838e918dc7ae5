/**
 * Training noise schedules: betas, `alphas_cumprod` and the matching sigmas, built the way
 * diffusers builds them (betas and `alphas_cumprod` rounded to float32, as its torch tensors are).
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";

/** Beta schedules (diffusers' `beta_schedule` names). */
export type BetaSchedule = "scaled_linear" | "linear" | "squaredcos_cap_v2";

/** Every beta schedule, for messages and menus. */
export const BETA_SCHEDULES: readonly BetaSchedule[] = Object.freeze([
  "scaled_linear",
  "linear",
  "squaredcos_cap_v2",
]);

/** Options of `createSchedule` (defaults: Stable Diffusion 1.x). */
export interface ScheduleOptions {
  /** Beta schedule (default `scaled_linear`). */
  betaSchedule?: BetaSchedule | string;
  /** First beta (default 0.00085; unused by `squaredcos_cap_v2`). */
  betaStart?: number;
  /** Last beta (default 0.012; unused by `squaredcos_cap_v2`). */
  betaEnd?: number;
  /** Training timesteps (default 1000). */
  trainSteps?: number;
}

/** Checks a name against a list and names the valid ones in the error. */
export function checkName<T extends string>(
  name: string,
  valid: readonly T[],
  what: string,
): T {
  if (!(valid as readonly string[]).includes(name)) {
    throw new ArgumentError(
      `Unknown ${what} "${name}"; use one of ${valid.map((v) => `"${v}"`).join(", ")}`,
    );
  }
  return name as T;
}

/** numpy's `linspace(start, stop, num)`: `start + i * step`, the last value exactly `stop`. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const y = new Float64Array(num);
  const step = (stop - start) / Math.max(num - 1, 1);
  for (let i = 0; i < num; i++) y[i] = start + i * step;
  if (num > 1) y[num - 1] = stop;
  return y;
}

/**
 * A training noise schedule. Index `t` runs over training timesteps `0 .. trainSteps - 1`;
 * `sigmas[t] = sqrt((1 - alphasCumprod[t]) / alphasCumprod[t])` is the same noise level in the
 * variance-exploding (k-diffusion) parametrization, where `x = x0 + sigma * noise`.
 *
 * @example
 * ```ts
 * import { createSchedule } from "./schedules.ts";
 * const s = createSchedule(); // SD 1.x: scaled_linear 0.00085 .. 0.012, 1000 steps
 * console.log(s.alphasCumprod[0], s.sigmaMax); // 0.99915, 14.6146
 * ```
 */
export class NoiseSchedule {
  /** The beta schedule's name. */
  readonly betaSchedule: BetaSchedule;
  /** Number of training timesteps. */
  readonly trainSteps: number;
  /** Per-timestep betas (float32 values, as diffusers stores them). */
  readonly betas: Float64Array;
  /** `cumprod(1 - betas)` (float32 values). */
  readonly alphasCumprod: Float64Array;
  /** `sqrt((1 - ab) / ab)`, increasing with `t`. */
  readonly sigmas: Float64Array;
  /** `log(sigmas)`. */
  readonly logSigmas: Float64Array;

  /** Builds a schedule from its betas. */
  constructor(betaSchedule: BetaSchedule, betas: Float64Array) {
    this.betaSchedule = betaSchedule;
    this.trainSteps = betas.length;
    this.betas = betas;
    const ab = new Float64Array(betas.length);
    let p = 1;
    for (let i = 0; i < betas.length; i++) {
      // torch's CPU cumprod accumulates in double and stores float32
      p *= 1 - betas[i]!;
      ab[i] = Math.fround(p);
    }
    this.alphasCumprod = ab;
    this.sigmas = ab.map((a) => Math.fround(Math.sqrt((1 - a) / a)));
    this.logSigmas = this.sigmas.map(Math.log);
  }

  /** Smallest training sigma (at `t = 0`). */
  get sigmaMin(): number {
    return this.sigmas[0]!;
  }

  /** Largest training sigma (at `t = trainSteps - 1`). */
  get sigmaMax(): number {
    return this.sigmas[this.trainSteps - 1]!;
  }

  /** `alphasCumprod[t]` for a whole timestep in range (throws otherwise). */
  alphaCumprod(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.trainSteps) {
      throw new ArgumentError(
        `Timestep ${t} is outside this schedule; use whole numbers 0..${this.trainSteps - 1}`,
      );
    }
    return this.alphasCumprod[t]!;
  }

  /**
   * The (fractional) timestep of a sigma: linear interpolation in log-sigma between the two
   * neighbouring training sigmas, clamped to the table (diffusers' `_sigma_to_t`, k-diffusion's
   * `sigma_to_t`).
   */
  sigmaToT(sigma: number): number {
    const ls = this.logSigmas;
    const logSigma = Math.log(Math.max(sigma, 1e-10));
    // low = last index with log_sigma >= ls[low], clipped to [0, T - 2]
    let low = 0;
    for (let i = 0; i < ls.length; i++) if (logSigma >= ls[i]!) low = i;
    low = Math.min(low, ls.length - 2);
    const w = Math.min(Math.max((ls[low]! - logSigma) / (ls[low]! - ls[low + 1]!), 0), 1);
    return (1 - w) * low + w * (low + 1);
  }

  /**
   * The sigma of a (fractional) timestep by log-linear interpolation, the inverse of `sigmaToT`
   * (k-diffusion's `t_to_sigma`). Models that need sigma from the timestep they get use this.
   */
  tToSigma(t: number): number {
    const tc = Math.min(Math.max(t, 0), this.trainSteps - 1);
    const lo = Math.floor(tc), hi = Math.ceil(tc), w = tc - lo;
    return Math.exp((1 - w) * this.logSigmas[lo]! + w * this.logSigmas[hi]!);
  }

  /** The sigma of a (fractional) timestep by linear interpolation in sigma (`np.interp`). */
  interpSigma(t: number): number {
    const tc = Math.min(Math.max(t, 0), this.trainSteps - 1);
    const lo = Math.floor(tc), hi = Math.min(lo + 1, this.trainSteps - 1), w = tc - lo;
    return (1 - w) * this.sigmas[lo]! + w * this.sigmas[hi]!;
  }
}

/** `alpha_bar` of the cosine schedule (Nichol & Dhariwal 2021, eq. 17, s = 0.008). */
function cosineAlphaBar(t: number): number {
  return Math.cos((t + 0.008) / 1.008 * Math.PI / 2) ** 2;
}

/**
 * Creates a noise schedule with diffusers' rules:
 * - `linear`: `betas = linspace(betaStart, betaEnd, T)`;
 * - `scaled_linear` (SD): `betas = linspace(sqrt(betaStart), sqrt(betaEnd), T)^2`;
 * - `squaredcos_cap_v2`: `betas_i = min(1 - abar((i+1)/T) / abar(i/T), 0.999)` (cosine abar).
 *
 * @example
 * ```ts
 * import { createSchedule } from "./schedules.ts";
 * const cosine = createSchedule({ betaSchedule: "squaredcos_cap_v2" });
 * console.log(cosine.alphasCumprod.at(-1));
 * ```
 */
export function createSchedule(options: ScheduleOptions = {}): NoiseSchedule {
  const kind = checkName(
    options.betaSchedule ?? "scaled_linear",
    BETA_SCHEDULES,
    "beta schedule",
  );
  const T = options.trainSteps ?? 1000;
  if (!Number.isInteger(T) || T < 2) {
    throw new ArgumentError(
      `A schedule needs a whole number of at least 2 training steps, got ${T}`,
    );
  }
  const b0 = options.betaStart ?? 0.00085, b1 = options.betaEnd ?? 0.012;
  if (kind !== "squaredcos_cap_v2" && !(b0 > 0 && b1 >= b0 && b1 < 1)) {
    throw new ArgumentError(
      `Betas must satisfy 0 < betaStart <= betaEnd < 1, got ${b0} and ${b1}`,
    );
  }
  let betas: Float64Array;
  if (kind === "linear") betas = linspace(b0, b1, T).map(Math.fround);
  else if (kind === "scaled_linear") {
    betas = linspace(Math.sqrt(b0), Math.sqrt(b1), T).map((v) => Math.fround(Math.fround(v) ** 2));
  } else {
    betas = Float64Array.from(
      { length: T },
      (_, i) =>
        Math.fround(Math.min(1 - cosineAlphaBar((i + 1) / T) / cosineAlphaBar(i / T), 0.999)),
    );
  }
  return new NoiseSchedule(kind, betas);
}
