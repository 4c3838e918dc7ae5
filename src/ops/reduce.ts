/**
 * Reductions: sum, mean, variance over any axes; `sumTo` (the adjoint of broadcasting) and
 * `expand` (broadcasting itself).
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP, expandKernel, MAX_DIMS } from "../wgsl/elementwise.ts";
import { BAND_COOP_MIN, bandSumKernel, sumKernel } from "../wgsl/reduce.ts";
import { numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { broadcastShapes, broadcastStrides, contiguousStrides } from "./broadcast.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";
import { sub } from "./binary.ts";
import { scale, square } from "./unary.ts";
import { reshape } from "./reshape.ts";

/** Options of the reductions. */
export interface ReduceOptions {
  /** Keep reduced axes as size 1 (default false). */
  keepDims?: boolean;
}

function normAxes(
  shape: readonly number[],
  axes: number | readonly number[] | undefined,
): number[] {
  const list = axes === undefined
    ? shape.map((_, i) => i)
    : typeof axes === "number"
    ? [axes]
    : axes;
  const out = new Set<number>();
  for (const a of list) {
    const ax = a < 0 ? a + shape.length : a;
    if (!Number.isInteger(ax) || ax < 0 || ax >= shape.length) {
      throw new ArgumentError(
        `Axis ${a} is out of range for shape ${fmtShape(shape)}; use -${shape.length}..${
          shape.length - 1
        }`,
      );
    }
    out.add(ax);
  }
  return [...out].sort((x, y) => x - y);
}

function padDims(sizes: number[], strides: number[]): [number[], number[]] {
  if (sizes.length > MAX_DIMS) {
    throw new ShapeError(`Reductions support at most ${MAX_DIMS} dimensions`);
  }
  const pad = MAX_DIMS - sizes.length;
  return [[...new Array(pad).fill(1), ...sizes], [...new Array(pad).fill(0), ...strides]];
}

/**
 * [A, n, S] when the kept axes of `shape` form one contiguous band between reduced axes (sizes-1
 * axes count as either), else null.
 */
export function band(
  shape: readonly number[],
  axes: readonly number[],
): [number, number, number] | null {
  let A = 1, n = 1, S = 1, stage = 0; // 0: leading reduced, 1: kept band, 2: trailing reduced
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (d === 1) continue;
    const reduced = axes.includes(i);
    if (stage === 0 && !reduced) stage = 1;
    else if (stage === 1 && reduced) stage = 2;
    else if (stage === 2 && !reduced) return null;
    if (stage === 0) A *= d;
    else if (stage === 1) n *= d;
    else S *= d;
  }
  return [A, n, S];
}

function sumRaw(x: Tensor, axes: number[], keepDims: boolean, mul: number): Tensor {
  const strides = contiguousStrides(x.shape);
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const outShape = keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : kept.map((i) => x.shape[i]!);
  const y = new Tensor(outShape, x.dtype);
  const R = numel(axes.map((i) => x.shape[i]!));
  if (y.size === 0) return y;
  const b = band(x.shape, axes);
  if (b) {
    const [A, n, S] = b;
    const cooperative = S >= BAND_COOP_MIN;
    const vec4 = x.dtype === "f32" && (cooperative ? S % 4 === 0 : S === 1 && n % 4 === 0);
    const v = { cooperative, vec4 };
    const k = cachedKernel(
      `sum_band ${x.dtype} ${cooperative} ${vec4}`,
      () => bandSumKernel(x.dtype, v),
    );
    const groups = cooperative ? n : Math.ceil(n / (vec4 ? 256 : 64));
    dispatch(k, [x.binding, y.binding], [n, A, S, mul], grid1d(groups));
    return y;
  }
  const [kd, ks] = padDims(kept.map((i) => x.shape[i]!), kept.map((i) => strides[i]!));
  const [rd, rs] = padDims(axes.map((i) => x.shape[i]!), axes.map((i) => strides[i]!));
  const params = [y.size, R, mul];
  for (const [d, s] of [[kd, ks], [rd, rs]]) {
    for (let i = 0; i < MAX_DIMS; i++) params.push(d![i]!, s![i]!);
  }
  const coop = R >= 256;
  const k = cachedKernel(`sum ${x.dtype} ${coop}`, () => sumKernel(x.dtype, coop));
  dispatch(k, [x.binding, y.binding], params, grid1d(coop ? y.size : Math.ceil(y.size / 64)));
  return y;
}

/** Broadcasts `x` to `shape` (a copy). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const out = broadcastShapes(x.shape, shape, "expand");
  if (out.join() !== shape.join()) {
    throw new ShapeError(`expand() cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const y = new Tensor(shape, x.dtype);
  if (y.size > 0) {
    const [d, s] = padDims([...shape], broadcastStrides(x.shape, shape));
    const params = [y.size];
    for (let i = 0; i < MAX_DIMS; i++) params.push(d[i]!, s[i]!);
    const k = cachedKernel(`expand ${x.dtype}`, () => expandKernel(x.dtype));
    dispatch(k, [x.binding, y.binding], params, grid1d(Math.ceil(y.size / EW_GROUP)));
  }
  return record("expand", [x], y, [], (dy) => [sumTo(dy, x.shape)]);
}

// x: [...] -> y: x without (or with size-1) reduced axes
/**
 * Sum over `axes` (all by default).
 *
 * @example
 * ```ts
 * import { getDevice, sum, tensor } from "../../mod.ts";
 * await getDevice();
 * console.log(await sum(tensor([1, 2, 3, 4], [2, 2]), 1).toArray()); // 3, 7
 * ```
 */
export function sum(
  x: Tensor,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor {
  return scaledSum("sum", x, axes, options, false);
}

/** Mean over `axes` (all by default). */
export function mean(
  x: Tensor,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor {
  return scaledSum("mean", x, axes, options, true);
}

function scaledSum(
  op: string,
  x: Tensor,
  axes: number | readonly number[] | undefined,
  options: ReduceOptions,
  average: boolean,
): Tensor {
  const ax = normAxes(x.shape, axes);
  const R = numel(ax.map((i) => x.shape[i]!));
  const mul = average ? 1 / R : 1;
  const keep = options.keepDims ?? false;
  const y = sumRaw(x, ax, keep, mul);
  const keptShape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  return record(op, [x], y, [], (dy) => {
    const g = expand(dy.view(keptShape), x.shape);
    return [mul === 1 ? g : scale(g, mul)];
  });
}

/** Options of `variance`. */
export interface VarianceOptions extends ReduceOptions {
  /** Subtracted from the count in the denominator (0: population, 1: unbiased). Default 0. */
  correction?: number;
}

/** Variance over `axes`: `sum((x - mean)^2) / (N - correction)`. */
export function variance(
  x: Tensor,
  axes?: number | readonly number[],
  options: VarianceOptions = {},
): Tensor {
  const ax = normAxes(x.shape, axes);
  const R = numel(ax.map((i) => x.shape[i]!));
  const m = mean(x, ax, { keepDims: true });
  const d = sub(x, m);
  const sq = square(d);
  const v = scaledSum("variance", sq, ax, options, false);
  const out = scale(v, 1 / (R - (options.correction ?? 0)));
  for (const t of [m, d, sq, v]) t.dispose();
  return out;
}

/** Sums `x` down to `shape` (undoing a broadcast). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  if (x.shape.join() === shape.join()) return x.view();
  const lead = x.shape.length - shape.length;
  const axes: number[] = [];
  x.shape.forEach((d, i) => {
    const j = i - lead;
    if (j < 0 || (shape[j] === 1 && d !== 1)) axes.push(i);
  });
  const y = sum(x, axes, { keepDims: true });
  const v = reshape(y, shape);
  y.dispose();
  return v;
}

/** CPU reference of `sum` / `mean` (float64). */
export function sumRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  axes: readonly number[],
  average = false,
): Float64Array {
  const ax = normAxes(shape, axes);
  const strides = contiguousStrides(shape);
  const outShape = shape.filter((_, i) => !ax.includes(i));
  const outStrides = contiguousStrides(outShape);
  const out = new Float64Array(numel(outShape));
  const R = numel(ax.map((i) => shape[i]!));
  for (let i = 0; i < x.length; i++) {
    let o = 0, k = 0;
    for (let d = 0; d < shape.length; d++) {
      const c = Math.floor(i / strides[d]!) % shape[d]!;
      if (!ax.includes(d)) o += c * outStrides[k++]!;
    }
    out[o]! += x[i]!;
  }
  if (average) { for (let i = 0; i < out.length; i++) out[i]! /= R; }
  return out;
}
