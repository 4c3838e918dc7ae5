// The convolution's weight gradient on the texture matmul (software adapters): one product over
// the batch folded into the reduction axis, dw[o, row] = sum over (b, p) of dy[b, o, p] *
// cols[b, row, p], with the transposed im2col written straight into the operand texture. It
// replaces a column buffer, its transposing pack, B per-sample products and their sum.
import { cachedKernel } from "../wgsl/builder.ts";
import { im2colPackRowFits, im2colPackRowKernel, im2colPackTKernel } from "../wgsl/conv.ts";
import { deviceInfo } from "./device.ts";
import { copyToTexture, dispatch } from "./runtime.ts";
import { permute } from "./permute.ts";
import { Tensor } from "./tensor.ts";
import { productDType } from "./matmul.ts";
import { packStrided, packTarget, runTextureMatmul, textureVariant } from "./_texture_matmul.ts";
import type { MatmulVariant } from "./matmul.ts";
import { type ConvGeometry, geometryParams } from "./_conv_geometry.ts";
import { copiedIm2col, im2colCopyFits, shiftedCopies } from "./_conv_im2col_copy.ts";

/** Whether the folded texture product serves this weight gradient (one sample's rows fit). */
export function foldedWeightGradFits(
  g: ConvGeometry,
  Cout: number,
  variant: MatmulVariant,
): boolean {
  return textureVariant(Cout, g.C * g.kh * g.kw, g.Ho * g.Wo, variant);
}

// x: [B, C, H, W] -> texture of (b, p) rows, C*kh*kw columns
function im2colPackT(x: Tensor, g: ConvGeometry, width: number, b0: number, nb: number) {
  const tex = packTarget(width, g.Ho * g.Wo, nb);
  const k = cachedKernel(`im2col pack t ${x.dtype}`, () => im2colPackTKernel(x.dtype));
  const params = [...geometryParams(g, 0), width, nb, b0];
  dispatch(k, [x.binding, tex], params, [Math.ceil(width / 8), Math.ceil(g.Ho * nb / 8)]);
  return tex;
}

// x: [B, C, H, W] -> texture of C*kh*kw rows, (b, p) along them (4 positions a texel)
function im2colPackFolded(x: Tensor, g: ConvGeometry, width: number, b0: number, nb: number) {
  const tex = packTarget(width, g.C * g.kh * g.kw, 1);
  const k = cachedKernel(
    `im2col pack row ${g.kw} ${g.pad} true`,
    () => im2colPackRowKernel(g.kw, g.pad, true),
  );
  const params = [...geometryParams(g, 0), width, nb, b0];
  const groups = [Math.ceil(g.Ho * g.Wo / 32), Math.ceil(g.C * g.kh * nb / 8)] as const;
  dispatch(k, [x.binding, tex], params, groups);
  return tex;
}

// dy3: [B, Cout, Ho*Wo], x: [B, C, H, W] -> dw^T: [C*kh*kw, Cout]
// The transposed product dw^T = cols dy^T: its A is the row im2col with the batch folded along
// k (16-byte loads, the forward's layout), 3x faster to write than the transposed im2col; dy's
// transposing pack is a ninth of the columns' size for a 3x3 kernel.
// (with the copied im2col the rows of dw^T come taps-major, (ki, kj, c))
function transposedWeightGrad(
  dy3: Tensor,
  x: Tensor,
  g: ConvGeometry,
  per: number,
  sh: Tensor | null,
): Tensor {
  const Cout = dy3.shape[1]!, K = g.C * g.kh * g.kw, P2 = g.Ho * g.Wo;
  const dwT = new Tensor([K, Cout], productDType(dy3, x));
  for (let b0 = 0; b0 < g.B; b0 += per) {
    const nb = Math.min(per, g.B - b0);
    const p = { M: K, N: Cout, K: nb * P2, B: 1, alpha: 1, beta: b0 ? 1 : 0 };
    runTextureMatmul(dwT, null, p, {
      a: (_b, _n, w) =>
        sh ? copiedIm2col(x, sh, g, w, b0, nb, true) : im2colPackFolded(x, g, w, b0, nb),
      b: (_b, _n, w) => packStrided(dy3, P2, Cout, [1, P2, Cout * P2], w, b0, nb),
    }, true);
  }
  return dwT;
}

// dy3: [B, Cout, Ho*Wo], x: [B, C, H, W] -> dw: [Cout, C*kh*kw]
/**
 * The weight gradient summed over the batch. Samples go into one product while their rows fit a
 * texture's height; further samples accumulate into the same output (beta 1). A 1x1 stride-1
 * convolution (`direct`) reads x as its own columns.
 */
export function foldedWeightGrad(
  dy3: Tensor,
  x: Tensor,
  g: ConvGeometry,
  direct: boolean,
): Tensor {
  const Cout = dy3.shape[1]!, K = g.C * g.kh * g.kw, P2 = g.Ho * g.Wo;
  const max = deviceInfo().limits.maxTextureDimension2D;
  const per = Math.max(1, Math.floor(max / P2));
  // 64 or more positions a sample (llvmpipe, 16 x 128 x 8 x 8, 3x3: 42.0 -> 34.6 ms; at 4 x 4
  // the transposed product lost, 27.0 -> 33.4 ms)
  if (!direct && x.dtype === "f32" && im2colPackRowFits(g) && P2 >= 64) {
    const sh = im2colCopyFits(x, g) ? shiftedCopies(x, g) : null;
    const dwT = transposedWeightGrad(dy3, x, g, per, sh);
    sh?.dispose();
    // [K, Cout] -> [Cout, K]; taps-major rows: [kh kw, C, Cout] -> [Cout, C, kh kw]
    const taps = g.kh * g.kw, t3 = dwT.view([taps, g.C, Cout]);
    const dw = sh ? permute(t3, [2, 1, 0]) : permute(dwT, [1, 0]);
    t3.dispose();
    dwT.dispose();
    return dw;
  }
  // dy's rows run along p: k-major, one copy per sample, when they are whole 256-byte rows
  const copyDy = dy3.dtype === "f32" && P2 % 64 === 0;
  const dw = new Tensor([Cout, K], productDType(dy3, x));
  for (let b0 = 0; b0 < g.B; b0 += per) {
    const nb = Math.min(per, g.B - b0);
    const p = { M: Cout, N: K, K: nb * P2, B: 1, alpha: 1, beta: b0 ? 1 : 0 };
    runTextureMatmul(dw, null, p, {
      a: (_b, _n, w) =>
        copyDy
          ? copyRowsSideBySide(dy3, Cout, P2, w, b0, nb)
          : packStrided(dy3, P2, Cout, [1, P2, Cout * P2], w, b0, nb),
      b: (_b, _n, w) =>
        direct ? packStrided(x, P2, K, [1, P2, K * P2], w, b0, nb) : im2colPackT(x, g, w, b0, nb),
    }, copyDy);
  }
  return dw;
}

// dy3: [B, Cout, P2] -> texture [Cout rows, nb * P2 / 4 texels]: row o holds dy[b, o, :] of
// samples b0 .. b0 + nb - 1 side by side (the k-major A of the folded product)
function copyRowsSideBySide(
  dy3: Tensor,
  Cout: number,
  P2: number,
  width: number,
  b0: number,
  nb: number,
): GPUTexture {
  const tex = packTarget(width, Cout, 1);
  for (let b = 0; b < nb; b++) {
    copyToTexture(
      { buffer: dy3.buffer, offset: (b0 + b) * Cout * P2 * 4, bytesPerRow: P2 * 4 },
      { texture: tex, origin: { x: b * P2 / 4, y: 0 } },
      P2 / 4,
      Cout,
    );
  }
  return tex;
}
