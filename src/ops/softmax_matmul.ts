/**
 * `softmax(s) v` as one op (attention with materialized scores): its backward folds the softmax's
 * backward into the `dO v^T` product (FlashAttention's identity `rowsum(dP * P) = rowsum(dO *
 * O)`), so the pass over the score-sized gradient that softmax's own backward makes goes away.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { negRowDotKernel, ROW_THREAD_GROUP } from "../wgsl/softmax.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { fmtShape, ShapeError } from "./errors.ts";
import { matmulRaw, type MatmulVariant } from "./matmul.ts";
import { softmaxRaw } from "./softmax.ts";

/** Options of `softmaxMatmul`. */
export interface SoftmaxMatmulOptions {
  /** Matmul kernel choice (default auto). */
  variant?: MatmulVariant;
}

// o, dO: [..., T, D] -> -rowsum(dO * o): [rows] f32
function negRowDot(o: Tensor, dO: Tensor): Tensor {
  const D = o.shape.at(-1)!, rows = o.size / D;
  const d = new Tensor([rows], "f32");
  const vec4 = D % 4 === 0 && o.dtype === "f32" && dO.dtype === "f32";
  const k = cachedKernel(`neg row dot ${o.dtype} ${vec4}`, () => negRowDotKernel(o.dtype, vec4));
  dispatch(
    k,
    [dO.binding, o.binding, d.binding],
    [rows, vec4 ? D / 4 : D],
    grid1d(Math.ceil(rows / ROW_THREAD_GROUP)),
  );
  return d;
}

// s: [..., Tq, Tk], v: [..., Tk, D] -> o: [..., Tq, D]
/**
 * `matmul(softmax(s), v)`, the softmax over the last axis. The backward needs no pass over the
 * score gradient of its own: with `D = rowsum(dO * O)` (one value per query row),
 * `ds = P * (dO v^T - D)` is written by the `dO v^T` product's epilogue, and `dv = P^T dO`.
 *
 * @example
 * ```ts
 * import { getDevice, randn, softmaxMatmul } from "../../mod.ts";
 * await getDevice();
 * const o = softmaxMatmul(randn([2, 4, 7, 9]), randn([2, 4, 9, 16]));
 * console.log(o.shape); // [2, 4, 7, 16]
 * ```
 */
export function softmaxMatmul(
  s: Tensor,
  v: Tensor,
  options: SoftmaxMatmulOptions = {},
): Tensor {
  if (
    s.shape.length < 2 || v.shape.length !== s.shape.length ||
    s.shape.slice(0, -2).join() !== v.shape.slice(0, -2).join() || s.shape.at(-1) !== v.shape.at(-2)
  ) {
    throw new ShapeError(
      `softmaxMatmul() needs s [..., Tq, Tk] and v [..., Tk, D] with equal leading dimensions, ` +
        `got ${fmtShape(s.shape)} and ${fmtShape(v.shape)}`,
    );
  }
  const variant = options.variant ?? "auto";
  const p = softmaxRaw(s);
  const o = matmulRaw(p, v, { variant });
  const out = record("softmaxMatmul", [s, v], o, [p, v, o], (dO, [sp, sv, so]) => {
    let ds: Tensor | null = null, dv: Tensor | null = null;
    if (s.requiresGrad) {
      const negD = negRowDot(so!, dO);
      ds = matmulRaw(dO, sv!, { transB: true, variant, sampleBias: negD, gate: sp! });
      negD.dispose();
    }
    if (v.requiresGrad) dv = matmulRaw(sp!, dO, { transA: true, variant });
    return [ds, dv];
  });
  p.dispose();
  return out;
}

/** CPU reference of `softmaxMatmul` for s [B, Tq, Tk] and v [B, Tk, D] (float64). */
export function softmaxMatmulRef(
  s: ArrayLike<number>,
  v: ArrayLike<number>,
  [B, Tq, Tk]: readonly [number, number, number],
  D: number,
): Float64Array {
  const o = new Float64Array(B * Tq * D);
  const e = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Tq; i++) {
      const row = (b * Tq + i) * Tk;
      let m = -Infinity, sum = 0;
      for (let j = 0; j < Tk; j++) m = Math.max(m, s[row + j]!);
      for (let j = 0; j < Tk; j++) sum += e[j] = Math.exp(s[row + j]! - m);
      for (let j = 0; j < Tk; j++) {
        for (let d = 0; d < D; d++) {
          o[(b * Tq + i) * D + d]! += e[j]! / sum * v[(b * Tk + j) * D + d]!;
        }
      }
    }
  }
  return o;
}
