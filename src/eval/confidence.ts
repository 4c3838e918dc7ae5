/**
 * Means with 95% confidence intervals over seeds (Student's t), for the ablations' tables.
 *
 * @module
 */
import { ArgumentError } from "../ops/errors.ts";

/** Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (standard tables). */
const T975: readonly number[] = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.16,
  2.145,
  2.131,
  2.12,
  2.11,
  2.101,
  2.093,
  2.086,
  2.08,
  2.074,
  2.069,
  2.064,
  2.06,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/** A mean and the half-width of its 95% confidence interval. */
export interface MeanCi {
  /** Sample mean. */
  mean: number;
  /** Half-width of the 95% interval (`mean ± ci95`); NaN with a single value. */
  ci95: number;
  /** Number of values. */
  n: number;
}

/** The 0.975 quantile of Student's t with `df` degrees of freedom (normal's 1.96 beyond 30). */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) {
    throw new ArgumentError(`Degrees of freedom must be a positive integer, got ${df}`);
  }
  return T975[df - 1] ?? 1.96;
}

/**
 * Mean and 95% t-interval half-width of `values` (sample standard deviation, n - 1).
 *
 * @example
 * ```ts
 * import { meanCi } from "./confidence.ts";
 * const { mean, ci95 } = meanCi([1, 2, 3]); // 2, 4.303 * 1 / sqrt(3)
 * ```
 */
export function meanCi(values: readonly number[]): MeanCi {
  const n = values.length;
  if (n === 0) throw new ArgumentError("A confidence interval needs at least one value, got none");
  const mean = values.reduce((a, v) => a + v, 0) / n;
  if (n === 1) return { mean, ci95: NaN, n };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, ci95: tQuantile975(n - 1) * Math.sqrt(variance / n), n };
}
