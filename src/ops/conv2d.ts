/**
 * 2-D convolution (any kernel size, stride, zero padding, optional bias) as one batched matmul
 * over im2col columns, on the adapter's fastest matmul variant. On software adapters the columns
 * are written straight into the matmul's operand texture; 1x1 stride-1 convolutions skip im2col.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import {
  col2imKernel,
  im2colKernel,
  im2colPackKernel,
  im2colPackRowFits,
  im2colPackRowKernel,
  im2colRowsKernel,
} from "../wgsl/conv.ts";
import { deviceInfo } from "./device.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";
import { matmulRaw, type MatmulVariant, productDType } from "./matmul.ts";
import { packStrided, packTarget, runTextureMatmul, textureVariant } from "./_texture_matmul.ts";
import { sum } from "./reduce.ts";
import { slice } from "./slice.ts";
import { scope } from "./scope.ts";
import { copy } from "./creation.ts";
import { type ConvGeometry as Geometry, geometryParams } from "./_conv_geometry.ts";
import { foldedWeightGrad, foldedWeightGradFits } from "./_conv_weight_grad.ts";
import { flippedWeight, transposedConvFits } from "./_conv_input_grad.ts";
import {
  copiedIm2col,
  im2colCopyFits,
  shiftedCopies,
  tapsMajorWeight,
} from "./_conv_im2col_copy.ts";

/** Options of `conv2d`. */
export interface Conv2dOptions {
  /** Step between output positions (default 1). */
  stride?: number;
  /** Zeros added on every side (default 0). */
  padding?: number;
  /** Matmul kernel choice (default auto). */
  variant?: MatmulVariant;
  /**
   * A tensor of the output's shape and dtype added to it (a residual connection): copied into the
   * output, which the product then accumulates onto (no element-wise pass).
   */
  residual?: Tensor | null;
  /**
   * A bias per sample [B, Cout] added after `bias` in the product's epilogue (a resnet's time
   * embedding), with `bias`'s dtype.
   */
  sampleBias?: Tensor | null;
}

/** im2col into a buffer: per output row segment (software adapters) or per output element. */
function im2colRaw(x: Tensor, g: Geometry, rows: boolean): Tensor {
  const cols = new Tensor([g.B, g.C * g.kh * g.kw, g.Ho * g.Wo], x.dtype);
  const n = rows ? cols.size / g.Wo : cols.size;
  const k = rows
    ? cachedKernel(`im2col rows ${x.dtype}`, () => im2colRowsKernel(x.dtype))
    : cachedKernel(`im2col ${x.dtype}`, () => im2colKernel(x.dtype));
  dispatch(k, [x.binding, cols.binding], geometryParams(g, n), grid1d(Math.ceil(n / EW_GROUP)));
  return cols;
}

/** Whether im2col runs per row segment: with the texture matmul, the software-adapter path. */
function im2colRows(variant: MatmulVariant): boolean {
  return variant === "texture" || (variant === "auto" && deviceInfo().software);
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

// fold: the nb batches side by side along the texture's rows (row kernel only)
function im2colPack(
  x: Tensor,
  g: Geometry,
  width: number,
  b0: number,
  nb: number,
  fold = false,
): GPUTexture {
  const K = g.C * g.kh * g.kw;
  const tex = packTarget(width, K, fold ? 1 : nb);
  const params = [...geometryParams(g, 0), width, nb, b0];
  if (x.dtype === "f32" && im2colPackRowFits(g)) {
    const k = cachedKernel(
      `im2col pack row ${g.kw} ${g.pad} ${fold}`,
      () => im2colPackRowKernel(g.kw, g.pad, fold),
    );
    const groups = [Math.ceil(g.Ho * g.Wo / 32), Math.ceil(g.C * g.kh * nb / 8)] as const;
    dispatch(k, [x.binding, tex], params, groups);
    return tex;
  }
  const k = cachedKernel(`im2col pack ${x.dtype}`, () => im2colPackKernel(x.dtype));
  dispatch(k, [x.binding, tex], params, [Math.ceil(width / 8), Math.ceil(K * nb / 8)]);
  return tex;
}

/** Whether the convolution runs on the texture matmul with the copied im2col (taps-major). */
function copiesIm2col(
  x: Tensor,
  g: Geometry,
  Cout: number,
  variant: MatmulVariant,
): boolean {
  const K = g.C * g.kh * g.kw;
  return im2colCopyFits(x, g) &&
    (foldsBatch(x, g, Cout, K, variant) || textureVariant(Cout, g.Ho * g.Wo, K, variant, true));
}

// x: [B, Cin, H, W], w2: [Cout, K] (wTaps: columns (ki, kj, c), only with the copied im2col),
//   bias: [Cout], residual: [B, Cout, Ho * Wo], sampleBias: [B, Cout] -> y: [B, Cout, Ho * Wo],
//   outside the graph
function forward(
  x: Tensor,
  w2: Tensor,
  bias: Tensor | null,
  g: Geometry,
  direct: boolean,
  variant: MatmulVariant,
  residual: Tensor | null = null,
  sampleBias: Tensor | null = null,
  wTaps = false,
): Tensor {
  const Cout = w2.shape[0]!, K = w2.shape[1]!, P2 = g.Ho * g.Wo;
  // outputs narrower than a workgroup's 64 columns (4x4 maps) fold the batch: one product over
  // N = B Ho Wo instead of B products whose padded columns idle 3/4 of the kernel's lanes
  const fold = !direct && foldsBatch(x, g, Cout, K, variant);
  if (fold || (!direct && textureVariant(Cout, P2, K, variant, true))) {
    // software adapters: im2col goes straight into the matmul's operand texture (copied from
    // shifted copies of x where the geometry allows); the weight, shared by the batch, is
    // packed once k-major (a copy for f32 rows of whole 256 bytes)
    const y = residual ? copy(residual) : new Tensor([g.B, Cout, P2], productDType(x, w2));
    const shape = fold ? { N: g.B * P2, B: 1, nblk: P2 } : { N: P2, B: g.B };
    const p = { M: Cout, K, ...shape, alpha: 1, beta: residual ? 1 : 0, aShared: true };
    // the weight's taps reorder is a pass over the weight: worth it while the weight is no
    // larger than the im2col (a training batch), not for a wide layer over a few positions (SD's
    // forward at batch 2, 8x8 maps: 10.9 -> 11.5 s when every conv reordered its weight)
    const copied = copiesIm2col(x, g, Cout, variant) && (wTaps || Cout <= g.B * P2);
    const sh = copied ? shiftedCopies(x, g) : null;
    runTextureMatmul(
      y,
      bias,
      p,
      {
        a: (b0, nb, w) =>
          sh && !wTaps ? tapsMajorWeight(w2, g, w) : packStrided(w2, Cout, K, [K, 1, 0], w, b0, nb),
        b: (b0, nb, w) =>
          sh
            ? copiedIm2col(x, sh, g, w, fold ? 0 : b0, fold ? g.B : nb, fold)
            : im2colPack(x, g, w, fold ? 0 : b0, fold ? g.B : nb, fold),
      },
      true,
      sampleBias,
    );
    sh?.dispose();
    return y;
  }
  const cols = direct ? x.view([g.B, g.C, P2]) : im2colRaw(x, g, im2colRows(variant));
  const y = matmulRaw(w2, cols, {
    variant,
    ...(bias ? { bias } : {}),
    ...(sampleBias ? { sampleBias } : {}),
    ...(residual ? { c: residual } : {}),
  });
  cols.dispose();
  return y;
}

/**
 * Whether the texture convolution folds the batch into the product's columns: f32 row-kernel
 * im2col (stride 1, vec4 rows) with fewer than 64 output positions per sample.
 */
function foldsBatch(
  x: Tensor,
  g: Geometry,
  Cout: number,
  K: number,
  variant: MatmulVariant,
): boolean {
  const P2 = g.Ho * g.Wo;
  return x.dtype === "f32" && im2colPackRowFits(g) && P2 < 64 && g.B > 1 &&
    textureVariant(Cout, g.B * P2, K, variant, true);
}

// dy: [B, Cout, Ho, Wo], weight: [Cout, Cin, k, k], acc: [B, Cin, H * W] -> dx: [B, Cin, H * W]
// (stride 1; acc, x's gradient so far, is added in the product)
function transposedConv(
  dy: Tensor,
  weight: Tensor,
  g: Geometry,
  variant: MatmulVariant,
  acc: Tensor | null,
): Tensor {
  // f32 products: the flipped weight written f32 is copied, not cast again, into the texture;
  // taps-major for the copied im2col
  const Cout = weight.shape[0]!;
  const gt = geometry(dy.shape, [g.C, Cout, g.kh, g.kw], 1, g.kh - 1 - g.pad);
  const taps = copiesIm2col(dy, gt, g.C, variant);
  const wf = flippedWeight(weight, dy.dtype === "f32" ? "f32" : weight.dtype, taps);
  const wf2 = wf.view([g.C, wf.size / g.C]);
  const dx = forward(dy, wf2, null, gt, false, variant, acc, null, taps);
  wf.dispose();
  wf2.dispose();
  return dx;
}

/**
 * How many groups of input channels a convolution that would run on the texture path splits
 * into so that each group's K = C kh kw fits the texture side (1: no split). Without the split
 * a K past the side falls back to the tiled kernel, which llvmpipe runs ~100x slower: SD's
 * 2560- and 1920-channel up-block convolutions took 88% of its 16x16 forward there.
 */
function channelGroups(g: Geometry, Cout: number, variant: MatmulVariant): number {
  const P2 = g.Ho * g.Wo, taps = g.kh * g.kw;
  const texture = variant === "texture" || (variant === "auto" && deviceInfo().software);
  if (!texture || textureVariant(Cout, P2, g.C * taps, variant, true)) return 1;
  for (let n = 2; n <= g.C; n++) {
    if (textureVariant(Cout, P2, Math.ceil(g.C / n) * taps, variant, true)) return n;
  }
  return 1;
}

// x: [B, Cin, H, W] -> y: [B, Cout, Ho, Wo], the sum of the convolutions of channel groups
/**
 * A convolution as the sum over `groups` groups of input channels, each group's product
 * accumulated onto the last through the residual (the bias, sample bias and residual go with
 * the first); autograd differentiates the slices and the sum.
 */
function channelSplitConv(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  options: Conv2dOptions,
  groups: number,
): Tensor {
  return scope(() => {
    const C = x.shape[1]!, per = Math.ceil(C / groups);
    let y: Tensor | null = null;
    for (let c0 = 0; c0 < C; c0 += per) {
      const c1 = Math.min(C, c0 + per);
      const rest = y ? { residual: y } : {
        residual: options.residual ?? null,
        sampleBias: options.sampleBias ?? null,
      };
      y = conv2d(slice(x, 1, c0, c1), slice(weight, 1, c0, c1), y ? null : bias, {
        ...options,
        ...rest,
      });
    }
    return y!;
  });
}

// x: [B, Cin, H, W], weight: [Cout, Cin, kh, kw], bias: [Cout] -> y: [B, Cout, Ho, Wo]
/**
 * 2-D convolution with zero padding, as PyTorch's `conv2d` (cross-correlation). The backward
 * pass recomputes the im2col columns instead of keeping them.
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
  const Cout = weight.shape[0]!, K = g.C * g.kh * g.kw, P2 = g.Ho * g.Wo;
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== Cout)) {
    throw new ShapeError(`conv2d() bias must be [${Cout}], got ${fmtShape(bias.shape)}`);
  }
  const sampleBias = options.sampleBias ?? null;
  const sbOk = sampleBias?.shape.join() === `${g.B},${Cout}` &&
    (!bias || sampleBias.dtype === bias.dtype);
  if (sampleBias && !sbOk) {
    throw new ShapeError(
      `conv2d() sampleBias must be [${g.B}, ${Cout}] with the bias's dtype, got ` +
        `${fmtShape(sampleBias.shape)} ${sampleBias.dtype}`,
    );
  }
  const residual = options.residual ?? null;
  const dtype = productDType(x, weight);
  if (
    residual &&
    (residual.shape.join() !== [g.B, Cout, g.Ho, g.Wo].join() || residual.dtype !== dtype)
  ) {
    throw new ShapeError(
      `conv2d() residual ${fmtShape(residual.shape)} ${residual.dtype} must match the output ` +
        `${fmtShape([g.B, Cout, g.Ho, g.Wo])} ${dtype}`,
    );
  }
  const variant = options.variant ?? "auto";
  const groups = channelGroups(g, Cout, variant);
  if (groups > 1) return channelSplitConv(x, weight, bias, options, groups);
  const direct = g.kh === 1 && g.kw === 1 && g.stride === 1 && g.pad === 0;
  const w2 = weight.view([Cout, K]);
  const r3 = residual?.view([g.B, Cout, P2]) ?? null;
  const y3 = forward(x, w2, bias, g, direct, variant, r3, sampleBias);
  w2.dispose();
  r3?.dispose();
  const y = y3.view([g.B, Cout, g.Ho, g.Wo]);
  y3.dispose();
  const inputs = [x, weight, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  if (sampleBias) inputs.push(sampleBias);
  return record("conv2d", inputs, y, [x, weight], (dy, [sx, sw], pending) => {
    const dy3 = dy.view([g.B, Cout, P2]);
    const w = sw!.view([Cout, K]);
    let dx: Tensor | null = null, dw: Tensor | null = null;
    if (x.requiresGrad) {
      const transposed = !direct && transposedConvFits(g, Cout, variant);
      // x's gradient from its other uses goes into the product (copied, then accumulated onto)
      const acc = (transposed || direct) && x.dtype === dtype ? pending.take(0) : null;
      const acc3 = acc?.view([g.B, g.C, g.H * g.W]) ?? null;
      if (transposed) {
        dx = transposedConv(dy, sw!, g, variant, acc3).view(x.shape);
      } else {
        const c = acc3 ? { c: acc3 } : {};
        const dcols = matmulRaw(w, dy3, { transA: true, variant, ...c });
        dx = direct ? dcols.view(x.shape) : col2imRaw(dcols, g);
      }
    }
    if (weight.requiresGrad && foldedWeightGradFits(g, Cout, variant)) {
      const folded = foldedWeightGrad(dy3, sx!, g, direct);
      dw = folded.view(weight.shape);
      folded.dispose();
    } else if (weight.requiresGrad) {
      const cols = direct ? sx!.view([g.B, g.C, P2]) : im2colRaw(sx!, g, im2colRows(variant));
      const perBatch = matmulRaw(dy3, cols, { transB: true, variant });
      dw = sum(perBatch, 0).view(weight.shape);
    }
    const grads = [dx, dw];
    // one reduction over dy; the bias's is the sample bias's summed over the batch
    const ds = sampleBias?.requiresGrad || (sampleBias && bias?.requiresGrad)
      ? sum(dy, [2, 3])
      : null;
    if (bias) grads.push(bias.requiresGrad ? (ds ? sum(ds, 0) : sum(dy, [0, 2, 3])) : null);
    if (residual) grads.push(residual.requiresGrad ? dy.view() : null);
    if (sampleBias) grads.push(sampleBias.requiresGrad ? ds : null);
    return grads;
  });
}

/** CPU reference of `conv2d` (float64, direct loops); `sampleBias` is [B, Cout]. */
export function conv2dRef(
  x: ArrayLike<number>,
  xShape: readonly number[],
  w: ArrayLike<number>,
  wShape: readonly number[],
  bias: ArrayLike<number> | null,
  stride = 1,
  padding = 0,
  sampleBias: ArrayLike<number> | null = null,
): Float64Array {
  const g = geometry(xShape, wShape, stride, padding);
  const Cout = wShape[0]!;
  const out = new Float64Array(g.B * Cout * g.Ho * g.Wo);
  for (let b = 0; b < g.B; b++) {
    for (let o = 0; o < Cout; o++) {
      for (let oh = 0; oh < g.Ho; oh++) {
        for (let ow = 0; ow < g.Wo; ow++) {
          let s = (bias ? bias[o]! : 0) + (sampleBias ? sampleBias[b * Cout + o]! : 0);
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
