/**
 * Elementwise arithmetic with broadcasting: add, sub, mul, div.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import {
  binaryBandKernel,
  binaryKernel,
  type BinaryOp,
  binaryVec4Kernel,
  EW_GROUP,
  MAX_DIMS,
} from "../wgsl/elementwise.ts";
import { numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { broadcastIndex, broadcastShapes, broadcastStrides } from "./broadcast.ts";
import { DTypeError, fmtShape, ShapeError } from "./errors.ts";
import { band, sumTo } from "./reduce.ts";
import { scale } from "./unary.ts";

function launch(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) {
    throw new DTypeError(
      `${op}() got a ${a.dtype} tensor ${fmtShape(a.shape)} and a ${b.dtype} tensor ` +
        `${fmtShape(b.shape)}; cast one so both dtypes match`,
    );
  }
  const shape = broadcastShapes(a.shape, b.shape, op);
  if (shape.length > MAX_DIMS) {
    throw new ShapeError(`${op}() supports at most ${MAX_DIMS} dimensions, got ${fmtShape(shape)}`);
  }
  const y = new Tensor(shape, a.dtype);
  const n = y.size;
  if (n === 0) return y;
  const same = a.size === n && b.size === n;
  if (same && a.dtype === "f32" && n % 4 === 0) {
    const k4 = cachedKernel(`binary4 ${op}`, () => binaryVec4Kernel(op));
    dispatch(k4, [a.binding, b.binding, y.binding], [n / 4], grid1d(Math.ceil(n / 4 / EW_GROUP)));
    return y;
  }
  if (!same && (a.size === n || b.size === n)) {
    const smallIsB = a.size === n;
    const small = smallIsB ? b : a;
    // output axes the small operand is broadcast over (its right-aligned dim is 1 or missing)
    const lead = shape.length - small.shape.length;
    const axes = shape.flatMap((d, i) =>
      i < lead || (small.shape[i - lead] === 1 && d !== 1) ? [i] : []
    );
    const bd = band(shape, axes);
    if (bd) {
      const [, m, S] = bd;
      const vec4 = a.dtype === "f32" && S % 4 === 0;
      const k = cachedKernel(
        `binary_band ${op} ${a.dtype} ${smallIsB} ${vec4}`,
        () => binaryBandKernel(op, a.dtype, smallIsB, vec4),
      );
      const res = [(smallIsB ? a : b).binding, small.binding, y.binding];
      const per = vec4 ? 4 : 1;
      dispatch(k, res, [n / per, m, S / per], grid1d(Math.ceil(n / per / EW_GROUP)));
      return y;
    }
  }
  const k = cachedKernel(`binary ${op} ${a.dtype} ${same}`, () => binaryKernel(op, a.dtype, same));
  const params = [n];
  if (!same) {
    const pad = [...new Array(MAX_DIMS - shape.length).fill(1), ...shape];
    const sa = [...new Array(MAX_DIMS - shape.length).fill(0), ...broadcastStrides(a.shape, shape)];
    const sb = [...new Array(MAX_DIMS - shape.length).fill(0), ...broadcastStrides(b.shape, shape)];
    for (let d = 0; d < MAX_DIMS; d++) params.push(pad[d]!, sa[d]!, sb[d]!);
  }
  dispatch(k, [a.binding, b.binding, y.binding], params, grid1d(Math.ceil(n / EW_GROUP)));
  return y;
}

// a: [...], b: [...] broadcastable -> y: broadcast shape
/**
 * `a + b` with broadcasting.
 *
 * @example
 * ```ts
 * import { add, getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * const y = add(tensor([1, 2, 3, 4], [2, 2]), tensor([10, 20], [2]));
 * console.log(await y.toArray()); // 11, 22, 13, 24
 * ```
 */
export function add(a: Tensor, b: Tensor): Tensor {
  return record("add", [a, b], launch("add", a, b), [], (dy) => [
    a.requiresGrad ? sumTo(dy, a.shape) : null,
    b.requiresGrad ? sumTo(dy, b.shape) : null,
  ]);
}

/** `a - b` with broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  return record("sub", [a, b], launch("sub", a, b), [], (dy) => [
    a.requiresGrad ? sumTo(dy, a.shape) : null,
    b.requiresGrad ? sumTo(scale(dy, -1), b.shape) : null,
  ]);
}

/** `a * b` with broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  return record("mul", [a, b], launch("mul", a, b), [a, b], (dy, [sa, sb]) => [
    a.requiresGrad ? sumTo(launch("mul", dy, sb!), a.shape) : null,
    b.requiresGrad ? sumTo(launch("mul", dy, sa!), b.shape) : null,
  ]);
}

/** `a / b` with broadcasting. */
export function div(a: Tensor, b: Tensor): Tensor {
  const y = launch("div", a, b);
  return record("div", [a, b], y, [b, y], (dy, [sb, sy]) => [
    a.requiresGrad ? sumTo(launch("div", dy, sb!), a.shape) : null,
    // d(a/b)/db = -y / b
    b.requiresGrad ? sumTo(scale(launch("div", launch("mul", dy, sy!), sb!), -1), b.shape) : null,
  ]);
}

/** CPU reference of the binary ops (float64, plain loops). */
export function binaryRef(
  op: BinaryOp,
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
): Float64Array {
  const shape = broadcastShapes(aShape, bShape, op);
  const sa = broadcastStrides(aShape, shape);
  const sb = broadcastStrides(bShape, shape);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const x = a[broadcastIndex(i, shape, sa)]!;
    const z = b[broadcastIndex(i, shape, sb)]!;
    out[i] = op === "add" ? x + z : op === "sub" ? x - z : op === "mul" ? x * z : x / z;
  }
  return out;
}
