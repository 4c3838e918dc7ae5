/**
 * Axis permutation (a copy into the permuted layout); its gradient is the inverse permutation.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { MAX_DIMS } from "../wgsl/elementwise.ts";
import { permuteKernel, permuteRowsKernel, permuteVec4Kernel, SHAPE_GROUP } from "../wgsl/shape.ts";
import { numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { contiguousStrides } from "./broadcast.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";

function checkPerm(shape: readonly number[], perm: readonly number[]): number[] {
  if (shape.length > MAX_DIMS) {
    throw new ShapeError(
      `permute() supports at most ${MAX_DIMS} dimensions, got ${fmtShape(shape)}; ` +
        "reshape to merge axes first",
    );
  }
  if (perm.length !== shape.length) {
    throw new ShapeError(
      `permute() got perm (${perm.join(", ")}) for a tensor of shape ${fmtShape(shape)}; ` +
        `pass one axis per dimension (${shape.length})`,
    );
  }
  const n = shape.length;
  const out = perm.map((a) => (a < 0 ? a + n : a));
  const seen = new Set<number>();
  for (const a of out) {
    if (!Number.isInteger(a) || a < 0 || a >= n || seen.has(a)) {
      throw new ArgumentError(
        `permute() perm (${perm.join(", ")}) is not a permutation of the axes of ` +
          `${fmtShape(shape)}; list each axis 0..${n - 1} exactly once`,
      );
    }
    seen.add(a);
  }
  return out;
}

/** The inverse of a permutation. */
export function invertPerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

function launch(x: Tensor, perm: readonly number[]): Tensor {
  const shape = perm.map((a) => x.shape[a]!);
  const y = new Tensor(shape, x.dtype);
  if (y.size === 0) return y;
  // output axes with their input strides; drop size-1 axes and merge runs that stay contiguous
  const strides = contiguousStrides(x.shape);
  const dims: number[] = [];
  const ss: number[] = [];
  perm.forEach((a) => {
    const d = x.shape[a]!, s = strides[a]!;
    if (d === 1) return;
    const last = dims.length - 1;
    if (last >= 0 && ss[last] === s * d) {
      dims[last]! *= d;
      ss[last] = s;
    } else {
      dims.push(d);
      ss.push(s);
    }
  });
  if (dims.length === 0) dims.push(1), ss.push(1);
  const rank = dims.length;
  // a contiguous last axis of whole vec4s: 16-byte loads and stores (then every stride is a
  // multiple of 4)
  const vec4 = x.dtype === "f32" && ss[rank - 1] === 1 && dims[rank - 1]! % 4 === 0;
  // one invocation per output row while rows keep the lanes busy and stay short (llvmpipe
  // divides integers lane by lane: head split [16, 256, 4, 16] and a 3x3 conv weight's taps
  // reorder [128, 256, 9] -> [128, 9, 256] run faster)
  const len = dims[rank - 1]!, rows = y.size / len;
  const byRow = rank > 1 && rows >= 4 * SHAPE_GROUP && len <= 4096;
  const k = byRow
    ? cachedKernel(
      `permute rows ${x.dtype} ${rank} ${vec4}`,
      () => permuteRowsKernel(x.dtype, rank, vec4),
    )
    : vec4
    ? cachedKernel(`permute vec4 ${rank}`, () => permuteVec4Kernel(rank))
    : cachedKernel(`permute ${x.dtype} ${rank}`, () => permuteKernel(x.dtype, rank));
  const n = byRow ? rows : vec4 ? y.size / 4 : y.size;
  const params = [n];
  for (let d = 0; d < rank; d++) params.push(dims[d]!, ss[d]!);
  dispatch(k, [x.binding, y.binding], params, grid1d(Math.ceil(n / SHAPE_GROUP)));
  return y;
}

// x: [s0, ..., s(n-1)] -> y: [s(perm[0]), ..., s(perm[n-1])]
/**
 * Reorders the axes of `x`: output axis `i` is input axis `perm[i]` (negative axes count from the
 * end). Up to 6 dimensions. Returns a contiguous copy.
 *
 * @example
 * ```ts
 * import { getDevice, permute, tensor } from "../../mod.ts";
 * await getDevice();
 * const y = permute(tensor([1, 2, 3, 4, 5, 6], [2, 3]), [1, 0]);
 * console.log(y.shape, await y.toArray()); // [3, 2], 1, 4, 2, 5, 3, 6
 * ```
 */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = checkPerm(x.shape, perm);
  const inv = invertPerm(p);
  return record("permute", [x], launch(x, p), [], (dy) => [launch(dy, inv)]);
}

/** CPU reference of `permute` (float64, plain loops). */
export function permuteRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  perm: readonly number[],
): Float64Array {
  const outShape = perm.map((a) => shape[a]!);
  const inStrides = contiguousStrides(shape);
  const out = new Float64Array(numel(outShape));
  for (let i = 0; i < out.length; i++) {
    let r = i, src = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const c = r % outShape[d]!;
      r = Math.floor(r / outShape[d]!);
      src += c * inStrides[perm[d]!]!;
    }
    out[i] = x[src]!;
  }
  return out;
}
