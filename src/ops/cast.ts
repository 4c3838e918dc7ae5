/**
 * dtype conversion between f32 and f16; the gradient is cast back to the input's dtype.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { castF16Vec4Kernel, castKernel, SHAPE_GROUP } from "../wgsl/shape.ts";
import { type DType, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";

/** `x` converted to `dtype` in a new tensor, outside autograd (for kernels' operands). */
export function castRaw(x: Tensor, dtype: DType): Tensor {
  const y = new Tensor(x.shape, dtype);
  if (y.size === 0) return y;
  if (x.dtype === "f16" && dtype === "f32" && y.size % 4 === 0) {
    const n = y.size / 4;
    const k = cachedKernel("cast f16 f32 vec4", castF16Vec4Kernel);
    dispatch(k, [x.binding, y.binding], [n], grid1d(Math.ceil(n / SHAPE_GROUP)));
    return y;
  }
  const k = cachedKernel(`cast ${x.dtype} ${dtype}`, () => castKernel(x.dtype, dtype));
  dispatch(k, [x.binding, y.binding], [y.size], grid1d(Math.ceil(y.size / SHAPE_GROUP)));
  return y;
}

// x: [...] (x.dtype) -> y: [...] (dtype)
/**
 * Converts `x` to `dtype` (f32 -> f16 rounds to nearest even; keep values within +-65504, as
 * WGSL leaves out-of-range conversions to the adapter). Casting to the same dtype returns a view. f16 needs an adapter with `shader-f16`
 * (a DTypeError says so otherwise).
 *
 * @example
 * ```ts
 * import { cast, deviceInfo, getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * if (deviceInfo().f16) {
 *   const h = cast(tensor([1 / 3], [1]), "f16");
 *   console.log(h.dtype, await h.toArray()); // f16, 0.333251953125
 * }
 * ```
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const from = x.dtype;
  const y = from === dtype ? x.view() : castRaw(x, dtype);
  return record("cast", [x], y, [], (dy) => [from === dy.dtype ? dy.view() : castRaw(dy, from)]);
}

/** CPU reference of `cast` (float64): rounds to the nearest f16 for `f16`, f32 for `f32`. */
export function castRef(x: ArrayLike<number>, dtype: DType): Float64Array {
  return dtype === "f16"
    ? Float64Array.from(Float16Array.from(x))
    : Float64Array.from(Float32Array.from(x));
}
