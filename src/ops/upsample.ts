/**
 * Nearest-neighbour 2x upsampling of images; its gradient sums each 2x2 block.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { SHAPE_GROUP, upsample2xGradKernel, upsample2xKernel } from "../wgsl/shape.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { fmtShape, ShapeError } from "./errors.ts";

function gradLaunch(dy: Tensor, shape: readonly number[]): Tensor {
  const dx = new Tensor(shape, dy.dtype);
  if (dx.size === 0) return dx;
  const k = cachedKernel(`upsample2x_grad ${dy.dtype}`, () => upsample2xGradKernel(dy.dtype));
  dispatch(
    k,
    [dy.binding, dx.binding],
    [dx.size, shape[2]!, shape[3]!],
    grid1d(Math.ceil(dx.size / SHAPE_GROUP)),
  );
  return dx;
}

// x: [B, C, H, W] -> y: [B, C, 2H, 2W]
/**
 * Nearest-neighbour upsampling by 2 in height and width (each pixel becomes a 2x2 block).
 *
 * @example
 * ```ts
 * import { getDevice, tensor, upsampleNearest2x } from "../../mod.ts";
 * await getDevice();
 * const y = upsampleNearest2x(tensor([1, 2], [1, 1, 1, 2]));
 * console.log(y.shape, await y.toArray()); // [1, 1, 2, 4], 1, 1, 2, 2, 1, 1, 2, 2
 * ```
 */
export function upsampleNearest2x(x: Tensor): Tensor {
  if (x.shape.length !== 4) {
    throw new ShapeError(
      `upsampleNearest2x() needs a [B, C, H, W] tensor, got shape ${fmtShape(x.shape)}`,
    );
  }
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const y = new Tensor([B, C, 2 * H, 2 * W], x.dtype);
  if (y.size > 0) {
    const k = cachedKernel(`upsample2x ${x.dtype}`, () => upsample2xKernel(x.dtype));
    dispatch(k, [x.binding, y.binding], [y.size, H, W], grid1d(Math.ceil(y.size / SHAPE_GROUP)));
  }
  const shape = x.shape;
  return record("upsampleNearest2x", [x], y, [], (dy) => [gradLaunch(dy, shape)]);
}

/** CPU reference of `upsampleNearest2x` (float64, plain loops). */
export function upsampleNearest2xRef(
  x: ArrayLike<number>,
  shape: readonly number[],
): Float64Array {
  const [B, C, H, W] = shape as [number, number, number, number];
  const out = new Float64Array(B * C * 4 * H * W);
  for (let n = 0; n < B * C; n++) {
    for (let h = 0; h < 2 * H; h++) {
      for (let w = 0; w < 2 * W; w++) {
        out[(n * 2 * H + h) * 2 * W + w] = x[(n * H + (h >> 1)) * W + (w >> 1)]!;
      }
    }
  }
  return out;
}
