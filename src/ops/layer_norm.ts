/**
 * Layer normalization over the last dimension, with a per-feature affine.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";
import { fmtShape, ShapeError } from "./errors.ts";
import { checkChannelParam, checkEps, rowNorm } from "./group_norm.ts";
import type { RowKernelOptions } from "./row_variant.ts";

// x: [..., N], weight, bias: [N] | null -> y: [..., N]
/**
 * Layer normalization: normalizes every row of the last dimension to zero mean and unit variance,
 * then applies `weight` and `bias` per feature.
 *
 * @example
 * ```ts
 * import { getDevice, layerNorm, ones, randn, zeros } from "../../mod.ts";
 * await getDevice();
 * const y = layerNorm(randn([2, 7, 32]), ones([32]), zeros([32]), 1e-5);
 * console.log(y.shape); // [2, 7, 32]
 * ```
 */
export function layerNorm(
  x: Tensor,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
  options: RowKernelOptions = {},
): Tensor {
  const N = x.shape[x.shape.length - 1];
  if (N === undefined || N === 0) {
    throw new ShapeError(
      `layerNorm() needs an input with a non-empty last dimension, got ${fmtShape(x.shape)}`,
    );
  }
  checkChannelParam("layerNorm", "weight", weight, x, N);
  checkChannelParam("layerNorm", "bias", bias, x, N);
  checkEps("layerNorm", eps);
  const rows = x.size / N;
  const g = { op: "layerNorm", rows, L: N, S: 1, Cg: N, G: 1, C: N };
  return rowNorm(g, x, weight, bias, eps, options.variant);
}

/** CPU reference of `layerNorm` (float64, two-pass statistics). */
export function layerNormRef(
  x: ArrayLike<number>,
  n: number,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  eps: number,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += n) {
    let m = 0;
    for (let j = 0; j < n; j++) m += x[base + j]!;
    m /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[base + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / n + eps);
    for (let j = 0; j < n; j++) {
      y[base + j] = (x[base + j]! - m) * rs * (weight ? weight[j]! : 1) + (bias ? bias[j]! : 0);
    }
  }
  return y;
}
