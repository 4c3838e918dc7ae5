/**
 * Sigma schedules of the k-diffusion samplers, with ComfyUI's names (`comfy/samplers.py`,
 * `calculate_sigmas`): the noise levels a run visits, from the largest down to a final 0.
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";
import { checkName, createSchedule, linspace, type NoiseSchedule } from "./schedules.ts";
import { karrasSigmas } from "./karras.ts";
import { betaPpf } from "./beta_dist.ts";
import { roundHalfEven } from "./spacing.ts";

/** ComfyUI's scheduler names. */
export type SigmaScheduleName =
  | "normal"
  | "karras"
  | "exponential"
  | "sgm_uniform"
  | "simple"
  | "ddim_uniform"
  | "beta";

/** Every sigma schedule, for messages and menus. */
export const SIGMA_SCHEDULES: readonly SigmaScheduleName[] = Object.freeze([
  "normal",
  "karras",
  "exponential",
  "sgm_uniform",
  "simple",
  "ddim_uniform",
  "beta",
]);

/** Options of `sigmaSchedule`. */
export interface SigmaScheduleOptions {
  /** The training schedule (default SD 1.x). */
  schedule?: NoiseSchedule;
  /** Karras' rho (default 7). */
  rho?: number;
  /** The `beta` schedule's alpha and beta (default 0.6 and 0.6, ComfyUI's). */
  betaAlpha?: number;
  /** See `betaAlpha`. */
  betaBeta?: number;
}

function withZero(s: ArrayLike<number>): Float64Array {
  const out = new Float64Array(s.length + 1);
  out.set(Array.from(s));
  return out;
}

/**
 * The sigmas of a `steps`-step run, ending in 0 (length `steps + 1`, except `ddim_uniform` and
 * `beta`, which can visit fewer or more levels exactly as ComfyUI's do). With `T` training steps
 * and `sigma(t)` the log-linear interpolation of the training sigmas:
 * - `normal` (k-diffusion's `get_sigmas`): `sigma(linspace(T - 1, 0, steps))`;
 * - `sgm_uniform`: `sigma(linspace(T - 1, 0, steps + 1)[:-1])`;
 * - `karras`: Karras et al. eq. 5 from `sigma_max` to `sigma_min` (rho 7);
 * - `exponential`: `exp(linspace(log sigma_max, log sigma_min, steps))`;
 * - `simple`: training sigmas at `T - 1 - floor(i T / steps)`;
 * - `ddim_uniform`: training sigmas at `1, 1 + c, 1 + 2c, ... < T` (`c = floor(T / steps)`),
 *   reversed;
 * - `beta`: training sigmas at `rint(T' ppf(1 - i / steps))` for the Beta(0.6, 0.6) quantile,
 *   `T' = T - 1`, repeated timesteps visited once.
 *
 * @example
 * ```ts
 * import { sigmaSchedule } from "./sigma_schedules.ts";
 * const s = sigmaSchedule("normal", 25);
 * console.log(s.length, s[0], s[24], s[25]); // 26 14.6146 0.0292 0
 * ```
 */
export function sigmaSchedule(
  name: SigmaScheduleName | string,
  steps: number,
  options: SigmaScheduleOptions = {},
): Float64Array {
  const kind = checkName(name, SIGMA_SCHEDULES, "sigma schedule");
  if (!Number.isInteger(steps) || steps < 1) {
    throw new ArgumentError(`A sigma schedule needs a whole number of steps >= 1, got ${steps}`);
  }
  const sc = options.schedule ?? createSchedule();
  const T = sc.trainSteps;
  const tMax = sc.sigmaToT(sc.sigmaMax), tMin = sc.sigmaToT(sc.sigmaMin);
  switch (kind) {
    case "normal":
      return withZero(linspace(tMax, tMin, steps).map((t) => sc.tToSigma(t)));
    case "sgm_uniform":
      return withZero(linspace(tMax, tMin, steps + 1).slice(0, steps).map((t) => sc.tToSigma(t)));
    case "karras":
      return withZero(karrasSigmas(steps, sc.sigmaMin, sc.sigmaMax, options.rho ?? 7));
    case "exponential":
      return withZero(
        linspace(Math.log(sc.sigmaMax), Math.log(sc.sigmaMin), steps).map(Math.exp),
      );
    case "simple": {
      const ss = T / steps;
      return withZero(
        Array.from({ length: steps }, (_, i) => sc.sigmas[T - 1 - Math.floor(i * ss)]!),
      );
    }
    case "ddim_uniform": {
      const ss = Math.max(Math.floor(T / steps), 1);
      const s: number[] = [];
      for (let t = 1; t < T; t += ss) s.push(sc.sigmas[t]!);
      return withZero(s.reverse());
    }
    case "beta": {
      const a = options.betaAlpha ?? 0.6, b = options.betaBeta ?? 0.6;
      const s: number[] = [];
      let last = -1;
      for (let i = 0; i < steps; i++) {
        const t = roundHalfEven(betaPpf(1 - i / steps, a, b) * (T - 1));
        if (t !== last) s.push(sc.sigmas[t]!);
        last = t;
      }
      return withZero(s);
    }
  }
}
