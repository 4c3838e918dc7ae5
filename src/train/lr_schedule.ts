/**
 * Learning-rate schedules with the formulas of diffusers' / transformers' `get_scheduler` (as
 * kohya's `get_scheduler_fix` calls them): the factor that multiplies the base learning rate at
 * optimizer step `step` (0-based, the value `LambdaLR` uses for that step).
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** The schedules supported. */
export const LR_SCHEDULERS = [
  "constant",
  "constant_with_warmup",
  "linear",
  "cosine",
  "cosine_with_restarts",
  "polynomial",
] as const;

/** A schedule name. */
export type LrSchedulerName = typeof LR_SCHEDULERS[number];

/** Settings of a schedule. */
export interface LrScheduleOptions {
  /** The schedule (kohya's `--lr_scheduler`, default `constant`). */
  name?: LrSchedulerName | string;
  /** Optimizer steps in the run (`max_train_steps`). */
  totalSteps: number;
  /**
   * Warm-up (`--lr_warmup_steps`): a whole number of steps, or a fraction in (0, 1) of
   * `totalSteps` (kohya's float form), default 0.
   */
  warmup?: number;
  /** Cycles of `cosine_with_restarts` (`--lr_scheduler_num_cycles`, default 1). */
  numCycles?: number;
  /** Power of `polynomial` (`--lr_scheduler_power`, default 1). */
  power?: number;
  /** The base learning rate, needed by `polynomial` for its end value (default 1). */
  baseLr?: number;
  /** The final learning rate of `polynomial` (transformers' `lr_end`, default 1e-7). */
  lrEnd?: number;
}

/** Warm-up steps from a step count or a ratio of the total (kohya: `int(ratio * total)`). */
export function warmupSteps(warmup: number, totalSteps: number): number {
  if (!(warmup >= 0) || !Number.isFinite(warmup)) {
    throw new ConfigError(`lr_warmup_steps must be a number >= 0, got ${warmup}`);
  }
  return Number.isInteger(warmup) ? warmup : Math.floor(warmup * totalSteps);
}

/**
 * A function from step to learning-rate factor.
 *
 * @example
 * ```ts
 * import { lrSchedule } from "./lr_schedule.ts";
 * const f = lrSchedule({ name: "cosine", totalSteps: 100, warmup: 10 });
 * console.log(f(0), f(10), f(55)); // 0 1 0.5
 * ```
 */
export function lrSchedule(options: LrScheduleOptions): (step: number) => number {
  const name = options.name ?? "constant";
  if (!(LR_SCHEDULERS as readonly string[]).includes(name)) {
    throw new ConfigError(
      `Unknown lr_scheduler "${name}"; use one of ${LR_SCHEDULERS.join(", ")}`,
    );
  }
  const total = options.totalSteps;
  const warm = warmupSteps(options.warmup ?? 0, total);
  if (name === "constant") {
    if (warm !== 0) {
      throw new ConfigError(
        "lr_scheduler constant takes no warm-up; use constant_with_warmup or set lr_warmup_steps 0",
      );
    }
    return () => 1;
  }
  const ramp = (step: number): number => step / Math.max(1, warm);
  const progress = (step: number): number => (step - warm) / Math.max(1, total - warm);
  switch (name) {
    case "constant_with_warmup":
      return (s) => s < warm ? ramp(s) : 1;
    case "linear":
      return (s) => s < warm ? ramp(s) : Math.max(0, (total - s) / Math.max(1, total - warm));
    case "cosine":
      // transformers' default num_cycles = 0.5: half a cosine from 1 to 0
      return (s) =>
        s < warm ? ramp(s) : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress(s))));
    case "cosine_with_restarts": {
      const cycles = options.numCycles ?? 1;
      return (s) => {
        if (s < warm) return ramp(s);
        const p = progress(s);
        if (p >= 1) return 0;
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((cycles * p) % 1))));
      };
    }
    default: {
      // polynomial (transformers' get_polynomial_decay_schedule_with_warmup)
      const power = options.power ?? 1, lrInit = options.baseLr ?? 1, lrEnd = options.lrEnd ?? 1e-7;
      if (!(lrInit > lrEnd)) {
        throw new ConfigError(`The learning rate ${lrInit} must be above the end value ${lrEnd}`);
      }
      return (s) => {
        if (s < warm) return ramp(s);
        if (s > total) return lrEnd / lrInit;
        const remaining = 1 - (s - warm) / (total - warm);
        return ((lrInit - lrEnd) * remaining ** power + lrEnd) / lrInit;
      };
    }
  }
}
