/**
 * GEGLU, the gated activation of SD's transformer feed-forward: one kernel each way.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { gegluGradKernel, gegluKernel, gegluTexKernel } from "../wgsl/geglu.ts";
import { Tensor } from "./tensor.ts";
import { copyToTexture, dispatch, grid1d } from "./runtime.ts";
import { acquireTexture, releaseTexture } from "./pool.ts";
import { deviceInfo } from "./device.ts";
import { record } from "./autograd.ts";
import { fmtShape, ShapeError } from "./errors.ts";
import { UNARY } from "./unary.ts";

// x: [rows, cols] f32 -> texture of `rows` rows of cols / 4 texels (cols % 64 == 0)
function rowsTexture(x: Tensor, rows: number, cols: number): GPUTexture {
  const tex = acquireTexture(cols / 4, rows);
  copyToTexture({ buffer: x.buffer, bytesPerRow: cols * 4 }, { texture: tex }, cols / 4, rows);
  return tex;
}

// x: [..., 2D] -> y: [..., D]
/**
 * `x[..., :D] * gelu(x[..., D:])` (exact GELU), as diffusers' `GEGLU` after its projection.
 *
 * @example
 * ```ts
 * import { geglu, getDevice, randn } from "../../mod.ts";
 * await getDevice();
 * console.log(geglu(randn([2, 77, 2560])).shape); // [2, 77, 1280]
 * ```
 */
export function geglu(x: Tensor): Tensor {
  const last = x.shape.at(-1) ?? 0;
  if (x.shape.length === 0 || last % 2 !== 0) {
    throw new ShapeError(`geglu() needs an even last dimension, got ${fmtShape(x.shape)}`);
  }
  const D = last / 2;
  const y = new Tensor([...x.shape.slice(0, -1), D], x.dtype);
  // f32 halves of whole vec4s: 16-byte loads and stores, sizes counted in vec4s
  const vec4 = x.dtype === "f32" && D % 4 === 0;
  const per = vec4 ? 4 : 1;
  const params = [y.size / per, D / per];
  const grid = grid1d(Math.ceil(y.size / per / EW_GROUP));
  // f32 rows of whole 256 bytes: x (and dy) read from texture copies, one row per texel row
  // (llvmpipe loads textures faster than storage buffers)
  const rows = y.size / Math.max(1, D), max = deviceInfo().limits.maxTextureDimension2D;
  const tex = vec4 && D % 64 === 0 && D / 2 <= max && rows <= max && rows > 0;
  const texParams = [rows, D / 4], texGrid = [Math.ceil(D / 32), Math.ceil(rows / 8)] as const;
  if (y.size > 0) {
    if (tex) {
      const xt = rowsTexture(x, rows, 2 * D);
      dispatch(cachedKernel("geglu tex", () => gegluTexKernel(false)), [xt, y.binding], texParams, [
        ...texGrid,
      ]);
      releaseTexture(xt);
    } else {
      const k = cachedKernel(`geglu ${x.dtype} ${vec4}`, () => gegluKernel(x.dtype, vec4));
      dispatch(k, [x.binding, y.binding], params, grid);
    }
  }
  return record("geglu", [x], y, [x], (dy, [sx]) => {
    const dx = new Tensor(x.shape, x.dtype);
    if (dx.size > 0 && tex) {
      const xt = rowsTexture(sx!, rows, 2 * D), dt = rowsTexture(dy, rows, D);
      const k = cachedKernel("geglu tex grad", () => gegluTexKernel(true));
      dispatch(k, [xt, dt, dx.binding], texParams, [...texGrid]);
      releaseTexture(xt);
      releaseTexture(dt);
    } else if (dx.size > 0) {
      const k = cachedKernel(`geglu grad ${x.dtype} ${vec4}`, () => gegluGradKernel(x.dtype, vec4));
      dispatch(k, [sx!.binding, dy.binding, dx.binding], params, grid);
    }
    return [dx];
  });
}

/** CPU reference of `geglu` (float64). */
export function gegluRef(x: ArrayLike<number>, lastDim: number): Float64Array {
  const D = lastDim / 2, rows = x.length / lastDim;
  const y = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < D; c++) {
      y[r * D + c] = x[r * lastDim + c]! * UNARY.gelu.ref(x[r * lastDim + D + c]!, 0, 0);
    }
  }
  return y;
}
