/**
 * The low-rank adapter op `y = W0 x + b + s * B (A x)` (LoRA, Hu et al. 2021): for linear
 * weights the low-rank product is accumulated straight into the base output by the matmul
 * kernel (no extra pass); for conv weights it composes conv2d (down: the base kernel size,
 * stride and padding; up: 1x1).
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";
import { isGradEnabled, noGrad, record } from "./autograd.ts";
import { matmulInto, matmulRaw } from "./matmul.ts";
import { add } from "./binary.ts";
import { scale as scaleOp } from "./unary.ts";
import { sumTo } from "./reduce.ts";
import { conv2d, type Conv2dOptions, conv2dRef } from "./conv2d.ts";
import { fmtShape, ShapeError } from "./errors.ts";

function flat2d(t: Tensor): Tensor {
  const last = t.shape.at(-1)!;
  return t.view([t.size / last, last]);
}

// x: [..., K], w0: [N, K], bias: [N] | null, down (A): [r, K], up (B): [N, r] -> y: [..., N]
/**
 * A linear layer with a LoRA adapter, fused: `x W0^T + b + scale * (x A^T) B^T`.
 *
 * @example
 * ```ts
 * import { getDevice, loraLinear, randn, zeros } from "../../mod.ts";
 * await getDevice();
 * const y = loraLinear(randn([2, 77, 768]), randn([320, 768]), null, randn([4, 768]), zeros([320, 4]), 1);
 * console.log(y.shape); // [2, 77, 320]
 * ```
 */
export function loraLinear(
  x: Tensor,
  w0: Tensor,
  bias: Tensor | null,
  down: Tensor,
  up: Tensor,
  scale: number,
): Tensor {
  const [N, K] = w0.shape as [number, number];
  const r = down.shape[0]!;
  if (
    w0.shape.length !== 2 || x.shape.at(-1) !== K || down.shape.join() !== `${r},${K}` ||
    up.shape.join() !== `${N},${r}` || (bias && bias.shape.join() !== `${N}`)
  ) {
    throw new ShapeError(
      `loraLinear() got x ${fmtShape(x.shape)}, W0 ${fmtShape(w0.shape)}, down ${
        fmtShape(down.shape)
      }, up ${fmtShape(up.shape)}${bias ? `, bias ${fmtShape(bias.shape)}` : ""}; ` +
        "expected x [..., K], W0 [N, K], down [r, K], up [N, r], bias [N]",
    );
  }
  const h = matmulRaw(x, down, { transB: true });
  const base = matmulRaw(x, w0, { transB: true });
  matmulInto(base, h, up, { transB: true, alpha: scale, beta: 1 });
  let y = base;
  if (bias) {
    y = noGrad(() => add(base, bias));
    base.dispose();
  }
  const inputs = bias ? [x, w0, down, up, bias] : [x, w0, down, up];
  const out = record("loraLinear", inputs, y, [x, w0, down, up, h], (dy, saved) => {
    const [sx, sw, sd, su, sh] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const dh = matmulRaw(dy, su, { alpha: scale });
    const x2 = flat2d(sx), dy2 = flat2d(dy), dh2 = flat2d(dh), h2 = flat2d(sh);
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = matmulRaw(dy, sw);
      matmulInto(dx, dh, sd, { beta: 1 });
    }
    const dW0 = w0.requiresGrad ? matmulRaw(dy2, x2, { transA: true }) : null;
    const dDown = down.requiresGrad ? matmulRaw(dh2, x2, { transA: true }) : null;
    const dUp = up.requiresGrad ? matmulRaw(dy2, h2, { transA: true, alpha: scale }) : null;
    const dBias = bias?.requiresGrad ? sumTo(dy, [N]) : null;
    return bias ? [dx, dW0, dDown, dUp, dBias] : [dx, dW0, dDown, dUp];
  });
  if (!out.node) h.dispose();
  return out;
}

// x: [B, Cin, H, W], w0: [Cout, Cin, k, k], down: [r, Cin, k, k], up: [Cout, r, 1, 1]
/**
 * A conv layer with a LoCon adapter: `conv(x, W0) + b + scale * conv1x1(conv(x, A), B)`, the
 * down conv sharing the base kernel size, stride and padding. When no input needs a gradient
 * (sampling), the 1x1 up-projection is accumulated straight into the base output by the matmul
 * kernel (no extra passes); otherwise it composes differentiable ops.
 *
 * @example
 * ```ts
 * import { getDevice, loraConv2d, randn, zeros } from "../../mod.ts";
 * await getDevice();
 * const y = loraConv2d(randn([1, 8, 6, 6]), randn([4, 8, 3, 3]), null, randn([2, 8, 3, 3]),
 *   zeros([4, 2, 1, 1]), 0.5, { stride: 2, padding: 1 });
 * console.log(y.shape); // [1, 4, 3, 3]
 * ```
 */
export function loraConv2d(
  x: Tensor,
  w0: Tensor,
  bias: Tensor | null,
  down: Tensor,
  up: Tensor,
  scale: number,
  options: Conv2dOptions = {},
): Tensor {
  const r = down.shape[0]!, Cout = w0.shape[0]!;
  if (up.shape.join() !== `${Cout},${r},1,1` || down.shape[1] !== w0.shape[1]) {
    throw new ShapeError(
      `loraConv2d() got W0 ${fmtShape(w0.shape)}, down ${fmtShape(down.shape)}, up ${
        fmtShape(up.shape)
      }; expected down [r, Cin, k, k] and up [Cout, r, 1, 1]`,
    );
  }
  const grads = isGradEnabled() &&
    [x, w0, bias, down, up].some((t) => t !== null && t.requiresGrad);
  if (!grads) {
    // y[b] += scale * up[Cout, r] @ h[b][r, Ho*Wo], in the matmul's epilogue
    const base = conv2d(x, w0, bias, options);
    const h = conv2d(x, down, null, options);
    const [B, , Ho, Wo] = base.shape as [number, number, number, number];
    matmulInto(base.view([B, Cout, Ho * Wo]), up.view([Cout, r]), h.view([B, r, Ho * Wo]), {
      alpha: scale,
      beta: 1,
    });
    h.dispose();
    return base;
  }
  const base = conv2d(x, w0, bias, options);
  const h = conv2d(x, down, null, options);
  const z = conv2d(h, up, null, { variant: options.variant ?? "auto" });
  const zs = scaleOp(z, scale);
  const y = add(base, zs);
  for (const t of [base, h, z, zs]) t.dispose();
  return y;
}

/** CPU reference of `loraLinear` (float64). */
export function loraLinearRef(
  x: ArrayLike<number>,
  w0: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  down: ArrayLike<number>,
  up: ArrayLike<number>,
  scale: number,
  K: number,
  N: number,
  r: number,
): Float64Array {
  const rows = x.length / K;
  const y = new Float64Array(rows * N);
  for (let i = 0; i < rows; i++) {
    const h = new Float64Array(r);
    for (let q = 0; q < r; q++) {
      for (let k = 0; k < K; k++) h[q]! += down[q * K + k]! * x[i * K + k]!;
    }
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n]! : 0;
      for (let k = 0; k < K; k++) s += w0[n * K + k]! * x[i * K + k]!;
      for (let q = 0; q < r; q++) s += scale * up[n * r + q]! * h[q]!;
      y[i * N + n] = s;
    }
  }
  return y;
}

/** CPU reference of `loraConv2d` (float64). */
export function loraConv2dRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w0: ArrayLike<number>,
  w0Shape: readonly number[],
  bias: ArrayLike<number> | null,
  down: ArrayLike<number>,
  downShape: readonly number[],
  up: ArrayLike<number>,
  upShape: readonly number[],
  scale: number,
  stride = 1,
  padding = 0,
): Float64Array {
  const base = conv2dRef(x, xShape, w0, w0Shape, bias, stride, padding);
  const h = conv2dRef(x, xShape, down, downShape, null, stride, padding);
  const Ho = Math.floor((xShape[2]! + 2 * padding - w0Shape[2]!) / stride) + 1;
  const Wo = Math.floor((xShape[3]! + 2 * padding - w0Shape[3]!) / stride) + 1;
  const z = conv2dRef(h, [xShape[0]!, downShape[0]!, Ho, Wo], up, upShape, null);
  return base.map((v, i) => v + scale * z[i]!);
}
