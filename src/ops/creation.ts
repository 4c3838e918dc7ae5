/**
 * Creating tensors: from arrays, constants; explicit copies.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP, fillKernel } from "../wgsl/elementwise.ts";
import { deviceInfo } from "./device.ts";
import { type DType, numel, Tensor } from "./tensor.ts";
import { copyBuffer, dispatch, grid1d } from "./runtime.ts";
import { labelOp } from "./profiler.ts";
import { fmtShape, ShapeError } from "./errors.ts";

/** Options of the tensor factories. */
export interface TensorOptions {
  /** Storage dtype (default f32). */
  dtype?: DType;
  /** Whether the new tensor is a leaf that collects gradients. */
  requiresGrad?: boolean;
}

/**
 * Uploads data into a new tensor.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../mod.ts";
 * await getDevice();
 * const w = tensor(new Float32Array(6), [2, 3], { requiresGrad: true });
 * console.log(w.shape);
 * ```
 */
export function tensor(
  data: ArrayLike<number>,
  shape: readonly number[],
  options: TensorOptions = {},
): Tensor {
  if (data.length !== numel(shape)) {
    throw new ShapeError(
      `tensor() got ${data.length} values for shape ${fmtShape(shape)}, which holds ${
        numel(shape)
      }; pass as many values as the shape has elements`,
    );
  }
  const dtype = options.dtype ?? "f32";
  const t = new Tensor(shape, dtype, undefined, options.requiresGrad ?? false);
  if (data.length > 0) {
    const arr = dtype === "f32" ? Float32Array.from(data) : Float16Array.from(data);
    const padded = arr.byteLength % 4 === 0 ? arr : (() => {
      const p = new Float16Array(arr.length + 1);
      p.set(arr as Float16Array);
      return p;
    })();
    deviceInfo().device.queue.writeBuffer(t.buffer, 0, padded.buffer, 0, padded.byteLength);
  }
  return t;
}

/**
 * A tensor filled with one value.
 *
 * @example
 * ```ts
 * import { full, getDevice } from "../../mod.ts";
 * await getDevice();
 * const t = full([2, 2], 0.5);
 * console.log(t.size);
 * ```
 */
export function full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  const dtype = options.dtype ?? "f32";
  const t = new Tensor(shape, dtype, undefined, options.requiresGrad ?? false);
  const k = cachedKernel(`fill ${dtype}`, () => fillKernel(dtype));
  if (t.size > 0) dispatch(k, [t.binding], [t.size, value], grid1d(Math.ceil(t.size / EW_GROUP)));
  labelOp("full");
  return t;
}

/** A tensor of zeros. */
export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return full(shape, 0, options);
}

/** A tensor of ones. */
export function ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** An explicit copy with its own storage (no graph link). */
export function copy(x: Tensor): Tensor {
  const t = new Tensor(x.shape, x.dtype);
  copyBuffer(x.buffer, 0, t.buffer, 0, Math.ceil(x.bytes / 4) * 4);
  return t;
}
