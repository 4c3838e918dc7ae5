/**
 * Group normalization followed by SiLU in one kernel (the ResNet blocks' `silu(norm(x))`): one
 * dispatch instead of two forward, and no silu backward dispatch or saved activation.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";
import { groupGeometry, groupNormRef, rowNorm } from "./group_norm.ts";
import type { RowKernelOptions } from "./row_variant.ts";

// x: [B, C, ...spatial], weight, bias: [C] | null -> y: [B, C, ...spatial]
/**
 * `silu(groupNorm(x, groups, weight, bias, eps))` in one pass: the backward recomputes the norm's
 * output from x and the saved statistics, so it keeps nothing more than `groupNorm` does.
 *
 * @example
 * ```ts
 * import { getDevice, groupNormSilu, ones, randn, zeros } from "../../mod.ts";
 * await getDevice();
 * const y = groupNormSilu(randn([2, 8, 4, 4]), 4, ones([8]), zeros([8]), 1e-5);
 * console.log(y.shape); // [2, 8, 4, 4]
 * ```
 */
export function groupNormSilu(
  x: Tensor,
  groups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
  options: RowKernelOptions = {},
): Tensor {
  const g = groupGeometry("groupNormSilu", x, groups, weight, bias, eps);
  return rowNorm(g, x, weight, bias, eps, options.variant, true);
}

/** CPU reference of `groupNormSilu` (float64): `groupNormRef`, then `v / (1 + exp(-v))`. */
export function groupNormSiluRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  groups: number,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  eps: number,
): Float64Array {
  return groupNormRef(x, shape, groups, weight, bias, eps).map((v) => v / (1 + Math.exp(-v)));
}
