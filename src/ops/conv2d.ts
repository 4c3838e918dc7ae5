/**
 * 2-D convolution (any square kernel, stride, zero padding, optional bias): im2col then one
 * batched matmul, so it runs on the fastest matmul variant of the adapter. 1x1 stride-1
 * convolutions skip im2col.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { col2imKernel, im2colKernel } from "../wgsl/conv.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";
import { matmul, type MatmulVariant } from "./matmul.ts";
import { reshape } from "./reshape.ts";
import { add } from "./binary.ts";

/** Options of `conv2d`. */
export interface Conv2dOptions {
  /** Step between output positions (default 1). */
  stride?: number;
  /** Zeros added on every side (default 0). */
  padding?: number;
  /** Matmul kernel choice (default auto). */
  variant?: MatmulVariant;
}

interface Geometry {
  B: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
  Ho: number;
  Wo: number;
}

function geometryParams(g: Geometry, n: number): number[] {
  return [n, g.C, g.H, g.W, g.kh, g.kw, g.stride, g.pad, g.Ho, g.Wo];
}

function im2colRaw(x: Tensor, g: Geometry): Tensor {
  const cols = new Tensor([g.B, g.C * g.kh * g.kw, g.Ho * g.Wo], x.dtype);
  const k = cachedKernel(`im2col ${x.dtype}`, () => im2colKernel(x.dtype));
  dispatch(
    k,
    [x.binding, cols.binding],
    geometryParams(g, cols.size),
    grid1d(Math.ceil(cols.size / EW_GROUP)),
  );
  return cols;
}

function col2imRaw(cols: Tensor, g: Geometry): Tensor {
  const dx = new Tensor([g.B, g.C, g.H, g.W], cols.dtype);
  const k = cachedKernel(`col2im ${cols.dtype}`, () => col2imKernel(cols.dtype));
  dispatch(
    k,
    [cols.binding, dx.binding],
    geometryParams(g, dx.size),
    grid1d(Math.ceil(dx.size / EW_GROUP)),
  );
  return dx;
}

// x: [B, C, H, W] -> cols: [B, C * kh * kw, Ho * Wo]
/** Unfolds kh x kw patches into columns (PyTorch's `unfold`); backward is col2im. */
export function im2col(x: Tensor, kh: number, kw: number, stride = 1, padding = 0): Tensor {
  const g = geometry(x.shape, [1, x.shape[1] ?? 0, kh, kw], stride, padding);
  return record("im2col", [x], im2colRaw(x, g), [], (dcols) => [col2imRaw(dcols, g)]);
}

function geometry(
  xs: readonly number[],
  ws: readonly number[],
  stride: number,
  pad: number,
): Geometry {
  if (xs.length !== 4 || ws.length !== 4) {
    throw new ShapeError(
      `conv2d() needs x [B, C, H, W] and weight [Cout, Cin, kh, kw], got ${fmtShape(xs)} and ${
        fmtShape(ws)
      }`,
    );
  }
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(pad) || pad < 0) {
    throw new ArgumentError(
      `conv2d() needs stride >= 1 and padding >= 0, got ${stride} and ${pad}`,
    );
  }
  const [B, C, H, W] = xs as [number, number, number, number];
  const [, Cin, kh, kw] = ws as [number, number, number, number];
  if (Cin !== C) {
    throw new ShapeError(
      `conv2d() weight ${fmtShape(ws)} expects ${Cin} input channels but x ${
        fmtShape(xs)
      } has ${C}`,
    );
  }
  const Ho = Math.floor((H + 2 * pad - kh) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - kw) / stride) + 1;
  if (Ho < 1 || Wo < 1) {
    throw new ShapeError(
      `conv2d() kernel ${kh}x${kw} does not fit input ${fmtShape(xs)} with padding ${pad}`,
    );
  }
  return { B, C, H, W, kh, kw, stride, pad, Ho, Wo };
}

// x: [B, Cin, H, W], weight: [Cout, Cin, kh, kw], bias: [Cout] -> y: [B, Cout, Ho, Wo]
/**
 * 2-D convolution with zero padding, as PyTorch's `conv2d` (cross-correlation).
 *
 * @example
 * ```ts
 * import { conv2d, getDevice, randn } from "../../mod.ts";
 * await getDevice();
 * const y = conv2d(randn([1, 4, 8, 8]), randn([8, 4, 3, 3]), randn([8]), { padding: 1, stride: 2 });
 * console.log(y.shape); // [1, 8, 4, 4]
 * ```
 */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: Conv2dOptions = {},
): Tensor {
  const g = geometry(x.shape, weight.shape, options.stride ?? 1, options.padding ?? 0);
  const Cout = weight.shape[0]!;
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== Cout)) {
    throw new ShapeError(`conv2d() bias must be [${Cout}], got ${fmtShape(bias.shape)}`);
  }
  const direct = g.kh === 1 && g.kw === 1 && g.stride === 1 && g.pad === 0;
  const cols = direct ? reshape(x, [g.B, g.C, g.H * g.W]) : im2col(x, g.kh, g.kw, g.stride, g.pad);
  const w2 = reshape(weight, [Cout, g.C * g.kh * g.kw]);
  const y = matmul(w2, cols, { variant: options.variant ?? "auto" });
  const y4 = reshape(y, [g.B, Cout, g.Ho, g.Wo]);
  for (const t of [cols, w2, y]) t.dispose();
  if (!bias) return y4;
  const b4 = reshape(bias, [1, Cout, 1, 1]);
  const out = add(y4, b4);
  y4.dispose();
  b4.dispose();
  return out;
}

/** CPU reference of `conv2d` (float64, direct loops). */
export function conv2dRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w: ArrayLike<number>,
  wShape: readonly number[],
  bias: ArrayLike<number> | null,
  stride = 1,
  padding = 0,
): Float64Array {
  const g = geometry(xShape, wShape, stride, padding);
  const Cout = wShape[0]!;
  const out = new Float64Array(g.B * Cout * g.Ho * g.Wo);
  for (let b = 0; b < g.B; b++) {
    for (let o = 0; o < Cout; o++) {
      for (let oh = 0; oh < g.Ho; oh++) {
        for (let ow = 0; ow < g.Wo; ow++) {
          let s = bias ? bias[o]! : 0;
          for (let c = 0; c < g.C; c++) {
            for (let i = 0; i < g.kh; i++) {
              for (let j = 0; j < g.kw; j++) {
                const h = oh * stride + i - padding, ww = ow * stride + j - padding;
                if (h < 0 || ww < 0 || h >= g.H || ww >= g.W) continue;
                s += x[((b * g.C + c) * g.H + h) * g.W + ww]! *
                  w[((o * g.C + c) * g.kh + i) * g.kw + j]!;
              }
            }
          }
          out[((b * Cout + o) * g.Ho + oh) * g.Wo + ow] = s;
        }
      }
    }
  }
  return out;
}
