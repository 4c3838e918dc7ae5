/**
 * Batch normalization (PyTorch semantics): training mode normalizes with the batch statistics
 * and updates the running statistics in place; eval mode normalizes with the running statistics.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { batchNormKernel, channelGradKernel, normGroup } from "../wgsl/norm.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";
import { checkChannelParam, checkEps } from "./group_norm.ts";

/** Running statistics of a batch-norm layer, updated in place in training mode. */
export interface BatchNormState {
  /** Running mean per channel, shape [C]. */
  runningMean: Tensor;
  /** Running (unbiased) variance per channel, shape [C]. */
  runningVar: Tensor;
}

/** Options of `batchNorm`. */
export interface BatchNormOptions {
  /** Batch statistics (and running-statistics update) when true, running statistics when false. */
  training?: boolean;
  /** Weight of the new batch statistic in the running update (default 0.1). */
  momentum?: number;
  /** Added to the variance (default 1e-5). */
  eps?: number;
}

// x: [B, C, H, W] or [B, C], weight, bias: [C] | null -> y: same as x
/**
 * Batch normalization per channel over the batch and spatial positions. In training mode the
 * batch statistics normalize and `state` (when given) is updated in place:
 * `running = (1 - momentum) running + momentum batch`, with the unbiased batch variance. In eval
 * mode `state` normalizes. Backward covers both modes (eval: a per-channel affine).
 *
 * @example
 * ```ts
 * import { batchNorm, getDevice, ones, randn, zeros } from "../../mod.ts";
 * await getDevice();
 * const state = { runningMean: zeros([3]), runningVar: ones([3]) };
 * const y = batchNorm(randn([4, 3, 5, 5]), ones([3]), zeros([3]), state, { training: true });
 * console.log(y.shape, await state.runningMean.toArray());
 * ```
 */
export function batchNorm(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  state: BatchNormState | null,
  options: BatchNormOptions = {},
): Tensor {
  const training = options.training ?? true;
  const momentum = options.momentum ?? 0.1;
  const eps = options.eps ?? 1e-5;
  if (x.shape.length !== 2 && x.shape.length !== 4) {
    throw new ShapeError(
      `batchNorm() needs an input of shape [B, C, H, W] or [B, C], got ${fmtShape(x.shape)}`,
    );
  }
  const [B, C] = x.shape as [number, number];
  const S = x.shape.slice(2).reduce((a, b) => a * b, 1);
  checkChannelParam("batchNorm", "weight", weight, x, C);
  checkChannelParam("batchNorm", "bias", bias, x, C);
  if (state) {
    checkChannelParam("batchNorm", "runningMean", state.runningMean, x, C);
    checkChannelParam("batchNorm", "runningVar", state.runningVar, x, C);
  }
  checkEps("batchNorm", eps);
  if (!(momentum >= 0 && momentum <= 1)) {
    throw new ArgumentError(`batchNorm() needs momentum in [0, 1], got ${momentum}`);
  }
  if (!training && !state) {
    throw new ArgumentError(
      "batchNorm() in eval mode needs running statistics; pass a state or use training: true",
    );
  }
  if (training && B * S < 2) {
    throw new ShapeError(
      `batchNorm() in training mode needs more than one value per channel, got input ` +
        `${fmtShape(x.shape)}; use a larger batch or eval mode`,
    );
  }
  const t = x.dtype;
  const y = new Tensor(x.shape, t);
  const mean = new Tensor([C], "f32");
  const rstd = new Tensor([C], "f32");
  const track = training && state !== null;
  const hasW = weight !== null, hasB = bias !== null;
  const wg = normGroup(B * S);
  if (y.size > 0) {
    const k = cachedKernel(
      `batch_norm ${t} ${training} ${track} ${hasW} ${hasB} ${wg}`,
      () => batchNormKernel(t, training, track, hasW, hasB, wg),
    );
    const res = [x.binding];
    if (weight) res.push(weight.binding);
    if (bias) res.push(bias.binding);
    if (state) res.push(state.runningMean.binding, state.runningVar.binding);
    res.push(y.binding, mean.binding, rstd.binding);
    dispatch(k, res, [C, B, S, eps, momentum], grid1d(C));
  }
  const inputs = [x, weight, bias].filter((v): v is Tensor => v !== null);
  const mode = training ? "train" : "eval";
  const out = record("batchNorm", inputs, y, [x, mean, rstd, ...(weight ? [weight] : [])], (
    dy,
    s,
  ) => {
    const [sx, sm, sr, sw] = s as [Tensor, Tensor, Tensor, Tensor | undefined];
    const dx = x.requiresGrad ? new Tensor(x.shape, t) : null;
    const dw = weight?.requiresGrad ? new Tensor([C], t) : null;
    const db = bias?.requiresGrad ? new Tensor([C], t) : null;
    if ((dx || dw || db) && y.size > 0) {
      const f = { dx: dx ? mode : "none", hasW, dw: dw !== null, db: db !== null } as const;
      const k = cachedKernel(
        `norm_channel_grad ${t} ${f.dx} ${f.hasW} ${f.dw} ${f.db} ${wg}`,
        () => channelGradKernel(t, f, wg),
      );
      const res = [sx.binding, dy.binding];
      if (dx && sw) res.push(sw.binding);
      res.push(sm.binding, sr.binding);
      if (dx) res.push(dx.binding);
      if (dw) res.push(dw.binding);
      if (db) res.push(db.binding);
      dispatch(k, res, [C, B, S, 0, 1], grid1d(C));
    }
    const grads: (Tensor | null)[] = [dx];
    if (weight) grads.push(dw);
    if (bias) grads.push(db);
    return grads;
  });
  mean.dispose();
  rstd.dispose();
  return out;
}

/** Result of `batchNormRef`: the output and the updated running statistics. */
export interface BatchNormRefResult {
  /** The normalized output, shaped like `x`. */
  y: Float64Array;
  /** The updated running mean, one per channel. */
  runningMean: Float64Array;
  /** The updated running variance, one per channel. */
  runningVar: Float64Array;
}

/** CPU reference of `batchNorm` (float64); returns the output and the updated running stats. */
export function batchNormRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  runningMean: ArrayLike<number> | null,
  runningVar: ArrayLike<number> | null,
  options: BatchNormOptions = {},
): BatchNormRefResult {
  const training = options.training ?? true;
  const momentum = options.momentum ?? 0.1;
  const eps = options.eps ?? 1e-5;
  const B = shape[0]!, C = shape[1]!;
  const S = shape.slice(2).reduce((a, b) => a * b, 1);
  const n = B * S;
  const y = new Float64Array(x.length);
  const rm = Float64Array.from(runningMean ?? new Float64Array(C));
  const rv = Float64Array.from(runningVar ?? new Float64Array(C).fill(1));
  for (let c = 0; c < C; c++) {
    const at = (i: number) => (Math.floor(i / S) * C + c) * S + (i % S);
    let m: number, v: number;
    if (training) {
      m = 0;
      for (let i = 0; i < n; i++) m += x[at(i)]!;
      m /= n;
      v = 0;
      for (let i = 0; i < n; i++) v += (x[at(i)]! - m) ** 2;
      v /= n;
      rm[c] = (1 - momentum) * rm[c]! + momentum * m;
      rv[c] = (1 - momentum) * rv[c]! + momentum * v * n / (n - 1);
    } else {
      m = rm[c]!;
      v = rv[c]!;
    }
    const rs = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < n; i++) {
      const k = at(i);
      y[k] = (x[k]! - m) * rs * (weight ? weight[c]! : 1) + (bias ? bias[c]! : 0);
    }
  }
  return { y, runningMean: rm, runningVar: rv };
}
