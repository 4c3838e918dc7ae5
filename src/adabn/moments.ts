/**
 * Per-channel moments of batch-norm inputs on the GPU: sums for the exact two-pass estimate,
 * a batch's mean and population variance, and the online merge of two sets of moments (Chan et
 * al.'s parallel update), with CPU references.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { noGrad } from "../ops/autograd.ts";
import { cast } from "../ops/cast.ts";
import { copy } from "../ops/creation.ts";
import { lincomb } from "../ops/lincomb.ts";
import { mean, sum, variance } from "../ops/reduce.ts";
import { sub } from "../ops/binary.ts";
import { square } from "../ops/unary.ts";
import { scope } from "../ops/scope.ts";

/** Mean and population variance per channel over `count` values each. */
export interface Moments {
  /** Mean per channel, [C] f32. */
  mean: Tensor;
  /** Population variance per channel (divided by `count`), [C] f32. */
  variance: Tensor;
  /** Values per channel the moments cover. */
  count: number;
}

/** Moments on the CPU (float64), for references and tests. */
export interface MomentsRef {
  /** Mean per channel. */
  mean: ArrayLike<number>;
  /** Population variance per channel. */
  variance: ArrayLike<number>;
  /** Values per channel. */
  count: number;
}

/** The reduced axes of a batch-norm input: batch and spatial ([B, C, H, W] -> 0, 2, 3). */
function channelAxes(x: Tensor): number[] {
  return x.shape.map((_, i) => i).filter((i) => i !== 1);
}

/** Values per channel in a batch-norm input (B H W). */
export function valuesPerChannel(x: Tensor): number {
  return x.size / x.shape[1]!;
}

const f32 = (x: Tensor): Tensor => x.dtype === "f32" ? x : cast(x, "f32");

// x: [B, C, H, W] or [B, C] -> [C] f32
/**
 * Sum per channel over batch and space (no gradient), the first pass of the exact estimate.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../ops/mod.ts";
 * import { channelSum } from "./moments.ts";
 * await getDevice();
 * console.log(await channelSum(tensor([1, 2, 3, 4], [2, 2, 1, 1])).toArray()); // 4, 6
 * ```
 */
export function channelSum(x: Tensor): Tensor {
  return noGrad(() => scope(() => sum(f32(x), channelAxes(x))));
}

// x: [B, C, H, W] or [B, C], mean: [C] -> [C] f32
/** Sum per channel of `(x - mean)^2` (no gradient), the second pass of the exact estimate. */
export function channelSquaredDeviations(x: Tensor, channelMean: Tensor): Tensor {
  const shape = x.shape.map((d, i) => (i === 1 ? d : 1));
  return noGrad(() =>
    scope(() => sum(square(sub(f32(x), channelMean.view(shape))), channelAxes(x)))
  );
}

// x: [B, C, H, W] or [B, C] -> mean, variance: [C] f32
/**
 * A batch's mean and population variance per channel (two passes over the batch, no gradient).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { batchMoments } from "./moments.ts";
 * await getDevice();
 * const m = batchMoments(randn([4, 3, 5, 5]));
 * console.log(m.count, m.mean.shape); // 100 [3]
 * ```
 */
export function batchMoments(x: Tensor): Moments {
  const axes = channelAxes(x);
  return noGrad(() =>
    scope(() => {
      const v = f32(x);
      return { mean: mean(v, axes), variance: variance(v, axes), count: valuesPerChannel(x) };
    })
  );
}

// acc, batch: [C] each -> [C] each
/**
 * The moments of the union of two sets of values from their moments (Chan et al.): with
 * `d = mean_b - mean`, `n`, `k` the counts, `mean += d k/(n+k)`,
 * `var = var n/(n+k) + var_b k/(n+k) + d^2 n k/(n+k)^2`, `n += k`. Returns new tensors (when
 * `acc` is empty, copies of `batch`); the inputs are left as they are.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../ops/mod.ts";
 * import { mergeMoments } from "./moments.ts";
 * await getDevice();
 * const a = { mean: tensor([0], [1]), variance: tensor([1], [1]), count: 2 };
 * const b = { mean: tensor([2], [1]), variance: tensor([1], [1]), count: 2 };
 * console.log(await mergeMoments(a, b).variance.toArray()); // 2
 * ```
 */
export function mergeMoments(acc: Moments, batch: Moments): Moments {
  const n = acc.count, k = batch.count, total = n + k;
  if (n === 0) return { mean: copy(batch.mean), variance: copy(batch.variance), count: k };
  return noGrad(() =>
    scope(() => {
      const d = lincomb([{ x: batch.mean, c: 1 }, { x: acc.mean, c: -1 }]);
      const m = lincomb([{ x: acc.mean, c: 1 }, { x: d, c: k / total }]);
      const v = lincomb([
        { x: acc.variance, c: n / total },
        { x: batch.variance, c: k / total },
        { x: square(d), c: (n * k) / (total * total) },
      ]);
      return { mean: m, variance: v, count: total };
    })
  );
}

/** CPU reference of {@link mergeMoments} (float64). */
export function mergeMomentsRef(acc: MomentsRef, batch: MomentsRef): {
  mean: Float64Array;
  variance: Float64Array;
  count: number;
} {
  const n = acc.count, k = batch.count, total = n + k;
  const m = new Float64Array(acc.mean.length), v = new Float64Array(acc.mean.length);
  for (let c = 0; c < m.length; c++) {
    const d = batch.mean[c]! - acc.mean[c]!;
    m[c] = total === 0 ? 0 : acc.mean[c]! + (d * k) / total;
    v[c] = total === 0 ? 0 : (acc.variance[c]! * n + batch.variance[c]! * k) / total +
      (d * d * n * k) / (total * total);
  }
  return { mean: m, variance: v, count: total };
}
