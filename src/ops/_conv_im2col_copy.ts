// The copied im2col (software adapters): for a stride-1 convolution whose output is as large as
// its input ("same" padding, odd kernels), im2col row (ki, kj, c) of a sample is one contiguous
// run of x shifted by kj - pad along W (the rows tap ki reaches; zeros above or below). One
// kernel writes the shifted copies (kw - 1 of them when x's channels start on 256-byte rows, x
// itself being the unshifted one: at most a kh-th of the im2col's stores), then buffer-to-texture
// copies assemble the operand texture, one per (sample, ki, kj) covering every channel. The
// texture's rows go in the order (ki, kj, c) ("taps-major"), so the weight's columns are
// reordered to match. llvmpipe, 3x3 im2col of 16x64x16x16: 13.5 ms as a kernel, 9.2 ms from
// three padded shifted copies (one invocation a vec4), 5.7 ms from two unpadded ones (one
// invocation a row) and x; 16x128x8x8: 9.1, 5.0, 3.6 ms.
import { cachedKernel } from "../wgsl/builder.ts";
import { convShiftKernel } from "../wgsl/conv.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { deviceInfo } from "./device.ts";
import { copyEncoder, copyToTexture, dispatch, grid1d } from "./runtime.ts";
import { Tensor } from "./tensor.ts";
import { noGrad } from "./autograd.ts";
import { permute } from "./permute.ts";
import { cachedPack } from "./pack_cache.ts";
import { packStrided, packTarget } from "./_texture_matmul.ts";
import type { ConvGeometry } from "./_conv_geometry.ts";

// floats between the shifted copies of two channels: whole 256-byte rows for the copies
function channelStride(g: ConvGeometry): number {
  return Math.ceil(g.H * g.W / 64) * 64;
}

// whether x itself serves as the unshifted tap's copy (its channels start on 256-byte rows)
function centerFromX(g: ConvGeometry): boolean {
  return g.H * g.W % 64 === 0;
}

/**
 * Whether the copied im2col serves a convolution of x: f32, stride 1, an odd square kernel at
 * most 9 wide with "same" padding (Ho = H, Wo = W), rows of whole vec4s, and shifted copies
 * that fit one storage binding.
 */
export function im2colCopyFits(x: Tensor, g: ConvGeometry): boolean {
  const slots = g.kw - (centerFromX(g) ? 1 : 0);
  const bytes = Math.max(1, slots) * g.B * g.C * channelStride(g) * 4;
  return x.dtype === "f32" && g.stride === 1 && g.kh === g.kw && g.kw % 2 === 1 && g.kw <= 9 &&
    2 * g.pad === g.kw - 1 && g.W % 4 === 0 &&
    bytes <= deviceInfo().limits.maxStorageBufferBindingSize;
}

// x: [B, C, H, W] -> sh: [slots, B * C, S] (S = channelStride), sh[slot(kj), bc, h * W + w] =
//   x[bc, h, w + kj - pad] (zero outside x), without kj = pad when x serves as that copy
/** The shifted copies of x that the texture copies read (see `convShiftKernel`). */
export function shiftedCopies(x: Tensor, g: ConvGeometry): Tensor {
  const S = channelStride(g), skip = centerFromX(g);
  const sh = new Tensor([Math.max(1, g.kw - (skip ? 1 : 0)), g.B * g.C, S], "f32");
  const n = g.B * g.C * g.H; // one invocation a row
  if (g.kw === 1 && skip) return sh; // a 1x1 kernel reads x alone
  const k = cachedKernel(
    `conv shift ${g.kw} ${g.pad} ${skip}`,
    () => convShiftKernel(g.kw, g.pad, skip),
  );
  dispatch(
    k,
    [x.binding, sh.binding],
    [n, g.B * g.C, g.H, g.W / 4, S / 4],
    grid1d(Math.ceil(n / EW_GROUP)),
  );
  return sh;
}

// zeros for the rows a tap reaches above or below x: `bytesPerRow` x `rows`
function zeroRows(texels: number, rows: number): { t: Tensor; bytesPerRow: number } {
  const bytesPerRow = Math.ceil(texels * 16 / 256) * 256;
  const t = new Tensor([bytesPerRow / 4 * rows], "f32");
  copyEncoder().clearBuffer(t.buffer, 0, bytesPerRow * rows);
  return { t, bytesPerRow };
}

// x: [B, C, H, W], sh: its shifted copies -> texture: rows (b - b0) * C kh kw + (ki kw + kj) C + c,
//   positions 4 a texel (fold: rows (ki kw + kj) C + c, sample b's positions from texel
//   (b - b0) H W / 4)
/**
 * The im2col of samples b0 .. b0 + nb - 1, taps-major, as the B operand texture of the texture
 * matmul (`width` texels a row), copied from the shifted copies `sh` (and x for the unshifted
 * tap): per (sample, ki, kj) one copy of the rows of x that tap ki reaches, every channel at
 * once, and per (sample, ki) one copy of zeros where it reaches above or below x; `fold` lays
 * the samples side by side along the rows (one product over N = B H W).
 */
export function copiedIm2col(
  x: Tensor,
  sh: Tensor,
  g: ConvGeometry,
  width: number,
  b0: number,
  nb: number,
  fold = false,
): GPUTexture {
  const { C, H, W, kh, kw, pad } = g;
  const K = C * kh * kw, P2 = H * W, S = channelStride(g), skip = centerFromX(g);
  const tex = packTarget(width, K, fold ? 1 : nb);
  const zeros = kh > 1 ? zeroRows(Math.min(pad, H) * W / 4, kw * C) : null;
  for (let b = 0; b < nb; b++) {
    const xb = fold ? b * P2 / 4 : 0, yb = fold ? 0 : b * K;
    for (let ki = 0; ki < kh; ki++) {
      // output rows [top, H - bottom) read x rows [top + ki - pad, ...); the rest are zero
      const top = Math.min(Math.max(pad - ki, 0), H), bottom = Math.min(Math.max(ki - pad, 0), H);
      const rows = H - top - bottom, y0 = yb + ki * kw * C;
      for (let kj = 0; kj < kw && rows > 0; kj++) {
        const fromX = skip && kj === pad, slot = skip && kj > pad ? kj - 1 : kj;
        const stride = fromX ? P2 : S;
        const chan0 = fromX ? (b0 + b) * C : (slot * g.B + b0 + b) * C;
        copyToTexture(
          {
            buffer: fromX ? x.buffer : sh.buffer,
            offset: (chan0 * stride + (top + ki - pad) * W) * 4,
            bytesPerRow: stride * 4,
          },
          { texture: tex, origin: { x: xb + top * W / 4, y: y0 + kj * C } },
          rows * W / 4,
          C,
        );
      }
      if (zeros && top + bottom > 0) {
        copyToTexture(
          { buffer: zeros.t.buffer, bytesPerRow: zeros.bytesPerRow },
          { texture: tex, origin: { x: xb + (top > 0 ? 0 : (H - bottom) * W / 4), y: y0 } },
          (top + bottom) * W / 4,
          kw * C,
        );
      }
    }
  }
  zeros?.t.dispose();
  return tex;
}

// w2: [Cout, C * kh * kw] -> texture of w2's columns reordered (ki, kj, c), k-major
/**
 * The A operand texture of a weight for the copied im2col: its columns reordered taps-major,
 * then packed k-major (kept by the pack cache for cached weights, like any pack).
 */
export function tapsMajorWeight(w2: Tensor, g: ConvGeometry, width: number): GPUTexture {
  const Cout = w2.shape[0]!, taps = g.kh * g.kw, K = g.C * taps;
  return cachedPack(w2, `taps ${width}`, () => {
    const w3 = w2.view([Cout, g.C, taps]);
    const wt = noGrad(() => permute(w3, [0, 2, 1]));
    const tex = packStrided(wt, Cout, K, [K, 1, 0], width, 0, 1);
    w3.dispose();
    wt.dispose();
    return tex;
  });
}
