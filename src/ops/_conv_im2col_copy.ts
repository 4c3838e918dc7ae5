// The copied im2col (software adapters): for a stride-1 convolution whose output is as large as
// its input ("same" padding, odd kernels), im2col row (c, ki, kj) of a sample is one contiguous
// run of x shifted by kj - pad along W and padded along H. One kernel writes the kw shifted
// copies (a kh-th of the im2col's stores), then buffer-to-texture copies assemble the operand
// texture, one per (sample, ki, kj) covering every channel. The texture's rows go in the order
// (ki, kj, c) ("taps-major"), so the weight's columns are reordered to match. llvmpipe, 3x3:
// 16x64x16x16 13.5 -> 7.1 ms, 16x128x8x8 9.1 -> 3.6 ms, 16x128x4x4 (batch folded) 3.4 -> 2.4 ms.
import { cachedKernel } from "../wgsl/builder.ts";
import { convShiftKernel } from "../wgsl/conv.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { deviceInfo } from "./device.ts";
import { copyEncoder, dispatch, grid1d } from "./runtime.ts";
import { Tensor } from "./tensor.ts";
import { noGrad } from "./autograd.ts";
import { permute } from "./permute.ts";
import { cachedPack } from "./pack_cache.ts";
import { packStrided, packTarget } from "./_texture_matmul.ts";
import type { ConvGeometry } from "./_conv_geometry.ts";

// floats between the shifted copies of two channels: whole 256-byte rows for the copies
function channelStride(g: ConvGeometry): number {
  return Math.ceil((g.H + 2 * g.pad) * g.W / 64) * 64;
}

/**
 * Whether the copied im2col serves a convolution of x: f32, stride 1, an odd square kernel at
 * most 9 wide with "same" padding (Ho = H, Wo = W), rows of whole vec4s, and shifted copies
 * that fit one storage binding.
 */
export function im2colCopyFits(x: Tensor, g: ConvGeometry): boolean {
  const bytes = g.kw * g.B * g.C * channelStride(g) * 4;
  return x.dtype === "f32" && g.stride === 1 && g.kh === g.kw && g.kw % 2 === 1 && g.kw <= 9 &&
    2 * g.pad === g.kw - 1 && g.W % 4 === 0 &&
    bytes <= deviceInfo().limits.maxStorageBufferBindingSize;
}

// x: [B, C, H, W] -> sh: [kw, B * C, S] (S = channelStride), sh[kj, bc, hp * W + w] =
//   x[bc, hp - pad, w + kj - pad] (zero outside x)
/** The shifted, padded copies of x that the texture copies read (see `convShiftKernel`). */
export function shiftedCopies(x: Tensor, g: ConvGeometry): Tensor {
  const S = channelStride(g);
  const sh = new Tensor([g.kw, g.B * g.C, S], "f32");
  const n = g.B * g.C * (g.H + 2 * g.pad) * g.W / 4;
  const k = cachedKernel(`conv shift ${g.kw} ${g.pad}`, () => convShiftKernel(g.kw, g.pad));
  dispatch(
    k,
    [x.binding, sh.binding],
    [n, g.B * g.C, g.H, g.W / 4, S / 4],
    grid1d(Math.ceil(n / EW_GROUP)),
  );
  return sh;
}

// sh: shifted copies of x -> texture: rows (b - b0) * C kh kw + (ki kw + kj) C + c, positions
//   4 a texel (fold: rows (ki kw + kj) C + c, sample b's positions from texel (b - b0) H W / 4)
/**
 * The im2col of samples b0 .. b0 + nb - 1, taps-major, as the B operand texture of the texture
 * matmul (`width` texels a row), copied from the shifted copies `sh`; `fold` lays the samples
 * side by side along the rows (one product over N = B H W).
 */
export function copiedIm2col(
  sh: Tensor,
  g: ConvGeometry,
  width: number,
  b0: number,
  nb: number,
  fold = false,
): GPUTexture {
  const K = g.C * g.kh * g.kw, P2 = g.H * g.W, S = channelStride(g);
  const tex = packTarget(width, K, fold ? 1 : nb);
  const e = copyEncoder();
  for (let b = 0; b < nb; b++) {
    for (let ki = 0; ki < g.kh; ki++) {
      for (let kj = 0; kj < g.kw; kj++) {
        const row = (ki * g.kw + kj) * g.C;
        e.copyBufferToTexture(
          {
            buffer: sh.buffer,
            offset: ((kj * g.B + b0 + b) * g.C * S + ki * g.W) * 4,
            bytesPerRow: S * 4,
          },
          { texture: tex, origin: fold ? { x: b * P2 / 4, y: row } : { x: 0, y: b * K + row } },
          [P2 / 4, g.C],
        );
      }
    }
  }
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
