/**
 * Mean squared error with an optional per-batch-element weight (min-SNR weighting), fused into
 * one elementwise kernel plus a reduction; the gradient is one fused kernel per input.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { LOSS_GROUP, mseGradKernel, mseKernel } from "../wgsl/loss.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { DTypeError, fmtShape, ShapeError } from "./errors.ts";
import { mul } from "./binary.ts";
import { scale } from "./unary.ts";
import { mean, sum } from "./reduce.ts";

/** Options of `mseLoss`. */
export interface MseLossOptions {
  /** `mean` (default) divides the weighted sum by the element count; `none` keeps every element. */
  reduction?: "mean" | "sum" | "none";
  /** Per-batch-element weights of shape `[B]` (the first axis), broadcast over the other axes. */
  weight?: Tensor;
}

function squaredError(pred: Tensor, target: Tensor, weight: Tensor | undefined): Tensor {
  const y = new Tensor(pred.shape, pred.dtype);
  if (y.size === 0) return y;
  const w = weight !== undefined;
  const k = cachedKernel(`mse ${pred.dtype} ${w}`, () => mseKernel(pred.dtype, w));
  const inner = pred.size / (pred.shape[0] ?? 1);
  dispatch(
    k,
    [pred.binding, target.binding, ...(weight ? [weight.binding] : []), y.binding],
    [y.size, inner],
    grid1d(Math.ceil(y.size / LOSS_GROUP)),
  );
  return y;
}

function gradLaunch(
  pred: Tensor,
  target: Tensor,
  weight: Tensor | undefined,
  dy: Tensor,
  k: number,
): Tensor {
  const g = new Tensor(pred.shape, pred.dtype);
  if (g.size === 0) return g;
  const w = weight !== undefined;
  const kern = cachedKernel(`mse_grad ${pred.dtype} ${w}`, () => mseGradKernel(pred.dtype, w));
  const inner = pred.size / (pred.shape[0] ?? 1);
  dispatch(
    kern,
    [pred.binding, target.binding, ...(weight ? [weight.binding] : []), dy.binding, g.binding],
    [g.size, inner, dy.size === 1 && g.size !== 1 ? 0 : 1, k],
    grid1d(Math.ceil(g.size / LOSS_GROUP)),
  );
  return g;
}

function check(pred: Tensor, target: Tensor, weight: Tensor | undefined): void {
  if (pred.shape.join() !== target.shape.join()) {
    throw new ShapeError(
      `mseLoss() got pred ${fmtShape(pred.shape)} and target ${
        fmtShape(target.shape)
      }; the shapes must match`,
    );
  }
  for (const t of weight ? [target, weight] : [target]) {
    if (t.dtype !== pred.dtype) {
      throw new DTypeError(
        `mseLoss() got a ${pred.dtype} pred and a ${t.dtype} ${
          t === target ? "target" : "weight"
        }; cast them so the dtypes match`,
      );
    }
  }
  if (weight && (pred.shape.length === 0 || weight.shape.join() !== `${pred.shape[0]}`)) {
    throw new ShapeError(
      `mseLoss() weight ${fmtShape(weight.shape)} does not fit pred ${fmtShape(pred.shape)}; ` +
        "pass one weight per batch element, of shape [B]",
    );
  }
}

// pred, target: [B, ...], weight: [B] -> loss: [] ("mean", "sum") or [B, ...] ("none")
/**
 * Squared error `weight[b] * (pred - target)^2`, averaged over all elements (`mean`, the
 * default), summed (`sum`) or kept (`none`). Gradients flow to `pred`, `target` and `weight`
 * where they require one.
 *
 * @example
 * ```ts
 * import { getDevice, mseLoss, tensor } from "../../mod.ts";
 * await getDevice();
 * const pred = tensor([1, 2, 3, 4], [2, 2]);
 * const target = tensor([0, 2, 3, 2], [2, 2]);
 * const w = tensor([1, 0.5], [2]);
 * console.log(await mseLoss(pred, target, { weight: w }).item()); // (1 + 0.5 * 4) / 4 = 0.75
 * ```
 */
export function mseLoss(pred: Tensor, target: Tensor, options: MseLossOptions = {}): Tensor {
  const { weight } = options;
  const reduction = options.reduction ?? "mean";
  check(pred, target, weight);
  const sq = squaredError(pred, target, weight);
  let out = sq;
  if (reduction !== "none") {
    out = reduction === "mean" ? mean(sq) : sum(sq);
    sq.dispose();
  }
  const inputs = weight ? [pred, target, weight] : [pred, target];
  const c = reduction === "mean" ? 1 / Math.max(1, pred.size) : 1;
  return record("mseLoss", inputs, out, inputs, (dy, [p, t, w]) => {
    const grads: (Tensor | null)[] = [
      pred.requiresGrad ? gradLaunch(p!, t!, w, dy, 2 * c) : null,
      target.requiresGrad ? gradLaunch(p!, t!, w, dy, -2 * c) : null,
    ];
    if (weight) {
      let dw: Tensor | null = null;
      if (weight.requiresGrad) {
        const e2 = squaredError(p!, t!, undefined);
        const prod = mul(e2, dy);
        const axes = pred.shape.map((_, i) => i).slice(1);
        const s = axes.length > 0 ? sum(prod, axes) : prod;
        dw = c === 1 ? s.view() : scale(s, c);
      }
      grads.push(dw);
    }
    return grads;
  });
}

/** CPU reference of `mseLoss` (float64): a one-element array, or every element for `none`. */
export function mseLossRef(
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  shape: readonly number[],
  options: { reduction?: "mean" | "sum" | "none"; weight?: ArrayLike<number> } = {},
): Float64Array {
  const n = pred.length;
  const inner = n / (shape[0] ?? 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const e = pred[i]! - target[i]!;
    out[i] = (options.weight ? options.weight[Math.floor(i / inner)]! : 1) * e * e;
  }
  const reduction = options.reduction ?? "mean";
  if (reduction === "none") return out;
  let s = 0;
  for (let i = 0; i < n; i++) s += out[i]!;
  return Float64Array.of(reduction === "mean" ? s / n : s);
}
