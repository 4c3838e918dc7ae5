/**
 * Concatenation along one axis; its gradient is one slice per input.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { axisCopyKernel, SHAPE_GROUP } from "../wgsl/shape.ts";
import { numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { ArgumentError, DTypeError, fmtShape, ShapeError } from "./errors.ts";
import { slice } from "./slice.ts";

function checkInputs(xs: readonly Tensor[], axis: number): number {
  const first = xs[0];
  if (!first) {
    throw new ArgumentError("concat() got no tensors; pass at least one");
  }
  const rank = first.shape.length;
  const ax = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(ax) || ax < 0 || ax >= rank) {
    throw new ArgumentError(
      `concat() axis ${axis} is out of range for shape ${fmtShape(first.shape)}; use -${rank}..${
        rank - 1
      }`,
    );
  }
  for (const x of xs) {
    if (x.dtype !== first.dtype) {
      throw new DTypeError(
        `concat() got ${first.dtype} and ${x.dtype} tensors; cast them so all dtypes match`,
      );
    }
    if (x.shape.length !== rank || x.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ShapeError(
        `concat() along axis ${axis} cannot join shapes ${
          xs.map((t) => fmtShape(t.shape)).join(", ")
        }; all dimensions but the concatenated one must match`,
      );
    }
  }
  return ax;
}

// xs[i]: [..., L_i, ...] -> y: [..., sum L_i, ...] (along `axis`)
/**
 * Joins tensors of the same dtype along `axis` (negative counts from the end); all other
 * dimensions must match.
 *
 * @example
 * ```ts
 * import { concat, getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * const y = concat([tensor([1, 2], [2, 1]), tensor([3, 4, 5, 6], [2, 2])], 1);
 * console.log(y.shape, await y.toArray()); // [2, 3], 1, 3, 4, 2, 5, 6
 * ```
 */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const ax = checkInputs(xs, axis);
  const first = xs[0]!;
  const lens = xs.map((x) => x.shape[ax]!);
  const total = lens.reduce((a, b) => a + b, 0);
  const shape = first.shape.map((d, i) => (i === ax ? total : d));
  const y = new Tensor(shape, first.dtype);
  const I = numel(shape.slice(ax + 1));
  const k = cachedKernel(`axis_copy ${first.dtype}`, () => axisCopyKernel(first.dtype));
  let off = 0;
  xs.forEach((x, i) => {
    const L = lens[i]!;
    if (x.size > 0) {
      dispatch(
        k,
        [x.binding, y.binding],
        [x.size, L, I, L, total, 0, off],
        grid1d(Math.ceil(x.size / SHAPE_GROUP)),
      );
    }
    off += L;
  });
  const offsets = lens.map((_, i) => lens.slice(0, i).reduce((a, b) => a + b, 0));
  return record(
    "concat",
    xs,
    y,
    [],
    (dy) =>
      xs.map((x, i) => x.requiresGrad ? slice(dy, ax, offsets[i]!, offsets[i]! + lens[i]!) : null),
  );
}

/** CPU reference of `concat` (float64, plain loops). */
export function concatRef(
  xs: readonly ArrayLike<number>[],
  shapes: readonly (readonly number[])[],
  axis: number,
): Float64Array {
  const rank = shapes[0]!.length;
  const ax = axis < 0 ? axis + rank : axis;
  const O = numel(shapes[0]!.slice(0, ax));
  const I = numel(shapes[0]!.slice(ax + 1));
  const out: number[] = [];
  for (let o = 0; o < O; o++) {
    xs.forEach((x, i) => {
      const L = shapes[i]![ax]!;
      for (let j = 0; j < L * I; j++) out.push(x[o * L * I + j]!);
    });
  }
  return Float64Array.from(out);
}
