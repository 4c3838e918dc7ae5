/**
 * Softmax along one axis (numerically stable), one workgroup per row.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { normGroup } from "../wgsl/norm.ts";
import {
  ROW_THREAD_GROUP,
  SOFTMAX_REGS_MAX4,
  softmaxGradKernel,
  softmaxGradVec4Kernel,
  softmaxKernel,
  softmaxRegsKernel,
  softmaxVec4Kernel,
} from "../wgsl/softmax.ts";
import { type RowKernelOptions, rowThreads } from "./row_variant.ts";
import { type DType, Tensor } from "./tensor.ts";
import { copyToTexture, dispatch, grid1d } from "./runtime.ts";
import { acquireTexture, releaseTexture } from "./pool.ts";
import { deviceInfo } from "./device.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape } from "./errors.ts";

function geometry(shape: readonly number[], axis: number): [number, number, number] {
  const ax = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= shape.length) {
    throw new ArgumentError(
      `softmax() got axis ${axis} for shape ${fmtShape(shape)}; use -${shape.length}..${
        shape.length - 1
      }`,
    );
  }
  const A = shape[ax]!;
  const inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, ax).reduce((a, b) => a * b, 1);
  return [outer, A, inner];
}

// The kernel variant, params and grid of a softmax (forward or backward) over `axis`.
function launchPlan(shape: readonly number[], axis: number, t: DType, options: RowKernelOptions) {
  const [outer, A, inner] = geometry(shape, axis);
  const rows = outer * inner;
  const wg = rowThreads(A, options.variant) ? 1 : normGroup(A);
  const grid = wg === 1 ? grid1d(Math.ceil(rows / ROW_THREAD_GROUP)) : grid1d(rows);
  // contiguous f32 rows of whole vec4s: 16-byte loads (llvmpipe, [16384, 256] forward +
  // backward 268 -> 225 ms)
  const vec4 = wg === 1 && inner === 1 && A % 4 === 0 && t === "f32";
  const params = vec4 ? [rows, A / 4] : [rows, A, inner];
  return { wg, grid, vec4, params };
}

// x: [..., A, ...] -> y: same shape, softmax over `axis`, outside the graph
/** The softmax forward as a new tensor, outside the graph (for fused ops with their own backward). */
export function softmaxRaw(x: Tensor, axis = -1, options: RowKernelOptions = {}): Tensor {
  const { wg, grid, vec4, params } = launchPlan(x.shape, axis, x.dtype, options);
  const y = new Tensor(x.shape, x.dtype);
  if (y.size > 0) {
    // rows of at most 64 vec4s are read once, into registers
    const n4 = params[1]!, rows = params[0]!;
    const regs = vec4 && n4 <= SOFTMAX_REGS_MAX4;
    // rows of whole 256 bytes read from a texture copy (software adapters load textures faster)
    const tex = regs && n4 % 16 === 0 && rows <= deviceInfo().limits.maxTextureDimension2D;
    const k = regs
      ? cachedKernel(`softmax regs ${n4} ${tex}`, () => softmaxRegsKernel(n4, tex))
      : vec4
      ? cachedKernel("softmax vec4", softmaxVec4Kernel)
      : cachedKernel(`softmax ${x.dtype} ${wg}`, () => softmaxKernel(x.dtype, wg));
    const xt = tex ? acquireTexture(n4, rows) : null;
    if (xt) {
      copyToTexture(
        { buffer: x.buffer, bytesPerRow: n4 * 16 },
        {
          texture: xt,
        },
        n4,
        rows,
      );
    }
    dispatch(k, [xt ?? x.binding, y.binding], params, grid);
    if (xt) releaseTexture(xt);
  }
  return y;
}

// x: [..., A, ...] -> y: same shape, softmax over `axis`
/**
 * Softmax over `axis` (default the last): `exp(x - max) / sum(exp(x - max))`.
 *
 * @example
 * ```ts
 * import { getDevice, softmax, tensor } from "../../mod.ts";
 * await getDevice();
 * console.log(await softmax(tensor([1, 2, 3, 1, 1, 1], [2, 3])).toArray());
 * ```
 */
export function softmax(x: Tensor, axis = -1, options: RowKernelOptions = {}): Tensor {
  const t = x.dtype;
  const y = softmaxRaw(x, axis, options);
  return record("softmax", [x], y, [y], (dy, [sy]) => {
    const dx = new Tensor(x.shape, t);
    if (dx.size > 0) {
      const { wg, grid, vec4, params } = launchPlan(x.shape, axis, t, options);
      const k = vec4
        ? cachedKernel("softmax grad vec4", softmaxGradVec4Kernel)
        : cachedKernel(`softmax_grad ${t} ${wg}`, () => softmaxGradKernel(t, wg));
      dispatch(k, [sy!.binding, dy.binding, dx.binding], params, grid);
    }
    return [dx];
  });
}

/** CPU reference of `softmax` (float64). */
export function softmaxRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis = -1,
): Float64Array {
  const [outer, A, inner] = geometry(shape, axis);
  const y = new Float64Array(x.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * A * inner + i;
      let m = -Infinity;
      for (let a = 0; a < A; a++) m = Math.max(m, x[base + a * inner]!);
      let s = 0;
      for (let a = 0; a < A; a++) s += Math.exp(x[base + a * inner]! - m);
      for (let a = 0; a < A; a++) y[base + a * inner] = Math.exp(x[base + a * inner]! - m) / s;
    }
  }
  return y;
}
