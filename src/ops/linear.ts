/**
 * A fully connected product with its bias and an optional residual in the matmul's epilogue.
 *
 * @module
 */
import { matmulRaw, type MatmulVariant, productDType } from "./matmul.ts";
import { record } from "./autograd.ts";
import { fmtShape, ShapeError } from "./errors.ts";
import { sumTo } from "./reduce.ts";
import type { Tensor } from "./tensor.ts";

/** Options of `linear`. */
export interface LinearOpOptions {
  /** Per-output bias [N] (default none). */
  bias?: Tensor | null;
  /** A tensor of the output's shape and dtype added to it (a residual connection). */
  residual?: Tensor | null;
  /** Kernel choice (default `auto`). */
  variant?: MatmulVariant;
}

function check(x: Tensor, weight: Tensor, o: LinearOpOptions): number[] {
  const [N, K] = weight.shape as [number, number];
  const shape = [...x.shape.slice(0, -1), N];
  const fail = (why: string) =>
    new ShapeError(
      `linear() cannot apply a weight ${fmtShape(weight.shape)} to x ${fmtShape(x.shape)}: ${why}`,
    );
  if (weight.shape.length !== 2) throw fail("the weight must be 2-D [out, in]");
  if (x.shape.length < 1 || x.shape.at(-1) !== K) throw fail(`x's last dimension must be ${K}`);
  if (o.bias && (o.bias.shape.length !== 1 || o.bias.size !== N)) {
    throw fail(`the bias ${fmtShape(o.bias.shape)} must be [${N}]`);
  }
  const r = o.residual;
  if (r && (r.shape.join() !== shape.join() || r.dtype !== productDType(x, weight))) {
    throw fail(
      `the residual ${fmtShape(r.shape)} ${r.dtype} must match the output ` +
        `${fmtShape(shape)} ${productDType(x, weight)}`,
    );
  }
  return shape;
}

// x: [..., K], weight: [N, K], bias: [N], residual: [..., N] -> y: [..., N]
/**
 * `y = x W^T + bias + residual` in one product: the bias is added by the matmul's epilogue and
 * the residual is copied into the output before the product accumulates onto it (`beta = 1`), so
 * neither costs an element-wise pass. Gradients: `dx = dy W` (accumulated onto x's gradient from
 * its other uses in the same way), `dW = dy^T x`, `dbias` the sum of dy's rows, `dresidual = dy`.
 *
 * @example
 * ```ts
 * import { getDevice, linear, tensor } from "../../mod.ts";
 * await getDevice();
 * const x = tensor([1, 2, 3, 4], [2, 2]);
 * const w = tensor([1, 0, 1, 1, 0, 2], [3, 2]);
 * const y = linear(x, w, { bias: tensor([10, 20, 30], [3]) });
 * console.log(await y.toArray()); // 11, 23, 34, 13, 27, 38
 * ```
 */
export function linear(x: Tensor, weight: Tensor, options: LinearOpOptions = {}): Tensor {
  const shape = check(x, weight, options);
  const [N, K] = weight.shape as [number, number];
  const rows = x.size / K;
  const bias = options.bias ?? null, residual = options.residual ?? null;
  const variant = options.variant ?? "auto";
  // 2-D handles on the operands (a batched x folds into the product's rows)
  const x2 = x.view([rows, K]);
  const r2 = residual?.view([rows, N]);
  const y2 = matmulRaw(x2, weight, {
    transB: true,
    variant,
    ...(bias ? { bias, biasN: true } : {}),
    ...(r2 ? { c: r2 } : {}),
  });
  const y = y2.view(shape);
  for (const t of [x2, r2, y2]) t?.dispose();
  const inputs = [x, weight, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  return record("linear", inputs, y, [x, weight], (dy, [sx, sw], pending) => {
    const dy2 = dy.view([rows, N]);
    // x's gradient from its other uses (q, k and v share an input) goes into dx's product
    const acc = x.requiresGrad && x.dtype === y.dtype ? pending.take(0) : null;
    const c = acc ? { c: acc.view([rows, K]) } : {};
    const grads: (Tensor | null)[] = [
      x.requiresGrad ? matmulRaw(dy2, sw!, { variant, ...c }).view(x.shape) : null,
      weight.requiresGrad ? matmulRaw(dy2, sx!.view([rows, K]), { transA: true, variant }) : null,
    ];
    if (bias) grads.push(bias.requiresGrad ? sumTo(dy2, [N]) : null);
    if (residual) grads.push(residual.requiresGrad ? dy.view() : null);
    return grads;
  });
}

/** CPU reference of `linear` (float64): x [rows, K], weight [N, K], bias [N], residual [rows, N]. */
export function linearRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  N: number,
  bias: ArrayLike<number> | null = null,
  residual: ArrayLike<number> | null = null,
): Float64Array {
  const K = weight.length / N, rows = x.length / K;
  const y = new Float64Array(rows * N);
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < N; n++) {
      let s = (bias?.[n] ?? 0) + (residual?.[r * N + n] ?? 0);
      for (let k = 0; k < K; k++) s += x[r * K + k]! * weight[n * K + k]!;
      y[r * N + n] = s;
    }
  }
  return y;
}
