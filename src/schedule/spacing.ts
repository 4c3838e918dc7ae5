/**
 * Inference timesteps: which training timesteps a sampler visits, by diffusers' three spacings
 * (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", table 2) and
 * each diffusers scheduler's own variant of them.
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";
import { checkName, linspace } from "./schedules.ts";

/** Timestep spacings (diffusers' `timestep_spacing`). */
export type TimestepSpacing = "leading" | "linspace" | "trailing";

/** Every spacing, for messages and menus. */
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = Object.freeze([
  "leading",
  "linspace",
  "trailing",
]);

/**
 * Which diffusers scheduler's rule to follow:
 * - `ddim` (`DDIMScheduler`, `DDPMScheduler`): whole timesteps, `linspace` rounded;
 * - `euler` (`EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`): as `ddim` but
 *   `linspace` is not rounded (fractional float32 timesteps);
 * - `dpmsolver` (`DPMSolverMultistepScheduler`): `linspace` and `leading` place `steps + 1` points
 *   and drop the last.
 */
export type SpacingRule = "ddim" | "euler" | "dpmsolver";

/** Options of `spacedTimesteps`. */
export interface SpacingOptions {
  /** The spacing (default `leading`, what SD 1.x's scheduler configs imply). */
  spacing?: TimestepSpacing | string;
  /** Added to `leading` timesteps (default 1, SD 1.x's `steps_offset`). */
  stepsOffset?: number;
  /** Training timesteps (default 1000). */
  trainSteps?: number;
  /** Which scheduler's rule (default `ddim`). */
  rule?: SpacingRule;
}

/** Python's and numpy's `round`: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Checks a step count against the training timesteps. */
export function checkSteps(steps: number, trainSteps: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > trainSteps) {
    throw new ArgumentError(
      `Steps must be a whole number from 1 to the ${trainSteps} training timesteps, got ${steps}`,
    );
  }
}

/** numpy's `arange(start, stop, step)` for a negative step: `start + i * step` while above stop. */
function arangeDown(start: number, stop: number, step: number): number[] {
  const n = Math.ceil((stop - start) / step);
  return Array.from({ length: n }, (_, i) => start + i * step);
}

/**
 * The timesteps a sampler visits, in visiting order (descending), per diffusers' `set_timesteps`:
 * - `linspace`: `linspace(0, T - 1, n)` (rounded for `ddim`; float32 for `euler`; `dpmsolver`
 *   takes `linspace(0, T - 1, n + 1)` rounded, minus its 0);
 * - `leading`: `arange(n) * (T // n) + stepsOffset` (`dpmsolver`: `arange(n + 1) * (T // (n + 1))`
 *   minus its 0, plus the offset);
 * - `trailing`: `round(arange(T, 0, -T / n)) - 1`.
 *
 * SD 1.x with DDIM (`leading`, offset 1) and 25 steps gives 961, 921, ..., 41, 1.
 *
 * @example
 * ```ts
 * import { spacedTimesteps } from "./spacing.ts";
 * console.log(spacedTimesteps(25, { spacing: "trailing" })); // 999, 959, ..., 39
 * ```
 */
export function spacedTimesteps(steps: number, options: SpacingOptions = {}): Float64Array {
  const T = options.trainSteps ?? 1000;
  const spacing = checkName(options.spacing ?? "leading", TIMESTEP_SPACINGS, "timestep spacing");
  const rule = options.rule ?? "ddim";
  const offset = options.stepsOffset ?? 1;
  checkSteps(steps, T);
  let ts: number[];
  if (spacing === "linspace") {
    if (rule === "dpmsolver") {
      ts = [...linspace(0, T - 1, steps + 1)].map(roundHalfEven).reverse().slice(0, steps);
    } else if (rule === "euler") {
      ts = [...linspace(0, T - 1, steps)].map(Math.fround).reverse();
    } else {
      ts = [...linspace(0, T - 1, steps)].map(roundHalfEven).reverse();
    }
  } else if (spacing === "leading") {
    const m = rule === "dpmsolver" ? steps + 1 : steps;
    const ratio = Math.floor(T / m);
    ts = Array.from({ length: m }, (_, i) => i * ratio).reverse().slice(0, steps)
      .map((t) => t + offset);
  } else {
    ts = arangeDown(T, 0, -T / steps).map((t) => roundHalfEven(t) - 1);
  }
  for (const t of ts) {
    if (!(t >= 0 && t <= T - 1)) {
      throw new ArgumentError(
        `Spacing "${spacing}" with ${steps} steps and stepsOffset ${offset} gives timestep ${t}, ` +
          `outside 0..${T - 1}; use fewer steps, stepsOffset 0 or another spacing`,
      );
    }
  }
  return Float64Array.from(ts);
}
