/**
 * Slicing along one axis (a copy); its gradient scatters into zeros with one kernel.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { axisCopyKernel, axisPadKernel, SHAPE_GROUP } from "../wgsl/shape.ts";
import { numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape } from "./errors.ts";

function normAxis(shape: readonly number[], axis: number, op: string): number {
  const ax = axis < 0 ? axis + shape.length : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= shape.length) {
    throw new ArgumentError(
      `${op}() axis ${axis} is out of range for shape ${fmtShape(shape)}; use -${shape.length}..${
        shape.length - 1
      }`,
    );
  }
  return ax;
}

function padGrad(dy: Tensor, shape: readonly number[], ax: number, start: number): Tensor {
  const dx = new Tensor(shape, dy.dtype);
  if (dx.size === 0) return dx;
  const I = numel(shape.slice(ax + 1));
  const k = cachedKernel(`axis_pad ${dy.dtype}`, () => axisPadKernel(dy.dtype));
  dispatch(
    k,
    [dy.binding, dx.binding],
    [dx.size, shape[ax]!, I, dy.shape[ax]!, start],
    grid1d(Math.ceil(dx.size / SHAPE_GROUP)),
  );
  return dx;
}

// x: [..., L, ...] -> y: [..., end - start, ...] (along `axis`)
/**
 * Takes positions `start` (inclusive) to `end` (exclusive) of `axis`; negative `axis`, `start`
 * and `end` count from the end, `end` defaults to the axis length. Returns a contiguous copy.
 *
 * @example
 * ```ts
 * import { getDevice, slice, tensor } from "../../mod.ts";
 * await getDevice();
 * const y = slice(tensor([1, 2, 3, 4, 5, 6], [2, 3]), 1, 1, 3);
 * console.log(y.shape, await y.toArray()); // [2, 2], 2, 3, 5, 6
 * ```
 */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = normAxis(x.shape, axis, "slice");
  const L = x.shape[ax]!;
  const s = start < 0 ? start + L : start;
  const e = end === undefined ? L : end < 0 ? end + L : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > L || s > e) {
    throw new ArgumentError(
      `slice() range ${start}..${end ?? L} does not fit axis ${axis} (length ${L}) of ` +
        `${fmtShape(x.shape)}; use 0 <= start <= end <= ${L}`,
    );
  }
  const shape = x.shape.map((d, i) => (i === ax ? e - s : d));
  const y = new Tensor(shape, x.dtype);
  if (y.size > 0) {
    const I = numel(x.shape.slice(ax + 1));
    const k = cachedKernel(`axis_copy ${x.dtype}`, () => axisCopyKernel(x.dtype));
    dispatch(
      k,
      [x.binding, y.binding],
      [y.size, e - s, I, L, e - s, s, 0],
      grid1d(Math.ceil(y.size / SHAPE_GROUP)),
    );
  }
  const inShape = x.shape;
  return record("slice", [x], y, [], (dy) => [padGrad(dy, inShape, ax, s)]);
}

/** CPU reference of `slice` (float64; `start`, `end` already non-negative). */
export function sliceRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axis: number,
  start: number,
  end: number,
): Float64Array {
  const ax = axis < 0 ? axis + shape.length : axis;
  const O = numel(shape.slice(0, ax));
  const I = numel(shape.slice(ax + 1));
  const L = shape[ax]!;
  const out = new Float64Array(O * (end - start) * I);
  let w = 0;
  for (let o = 0; o < O; o++) {
    for (let j = start; j < end; j++) {
      for (let k = 0; k < I; k++) out[w++] = x[(o * L + j) * I + k]!;
    }
  }
  return out;
}
