// The texture matmul path shared by matmul and conv2d: operands are packed into rgba32float
// storage textures by a packer (strided copy, or im2col for convolutions), then multiplied by
// the outer-product kernel, in batch chunks that fit the texture height limit.
import { cachedKernel } from "../wgsl/builder.ts";
import {
  epilogueKey,
  type MatmulTypes,
  packKernel,
  type RowFold,
  TEX_COLS,
  TEX_GROUP,
  TEX_ROWS,
  textureMatmulKernel,
} from "../wgsl/matmul.ts";
import type { DType, Tensor } from "./tensor.ts";
import { deviceInfo } from "./device.ts";
import { copyToTexture, dispatch, type Resource } from "./runtime.ts";
import { acquireTexture, releaseTexture } from "./pool.ts";
import { cachedPack, releasePack } from "./pack_cache.ts";
import { castRaw } from "./cast.ts";

/** Which kernel runs a matmul: `auto` picks `texture` on software adapters, else `tiled`. */
export type MatmulVariant = "auto" | "texture" | "tiled";

/**
 * Invocations along N of the texture kernel's workgroup for N columns (the rest of its
 * `TEX_GROUP` run along M): 8 x 8 columns, or fewer for narrow products (16-wide heads, 12 keys)
 * so that no lane computes only padding.
 */
export function textureGroupX(N: number): number {
  let gx = TEX_GROUP;
  while (gx > 1 && (gx / 2) * TEX_COLS >= N) gx /= 2;
  return gx;
}

/** Texels per row of the packed A (k-major with `aK`) and B textures. */
export function textureWidths(M: number, N: number, K = 0, aK = false): [number, number] {
  const gx = textureGroupX(N);
  return [
    aK ? Math.ceil(K / 4) : Math.ceil(M / TEX_ROWS) * 4,
    Math.ceil(N / (TEX_COLS * gx)) * gx * 2,
  ];
}

/** Whether the texture kernel runs a product of this size (A k-major with `aK`) for the variant. */
export function textureVariant(
  M: number,
  N: number,
  K: number,
  variant: MatmulVariant,
  aK = false,
): boolean {
  const { software, limits } = deviceInfo();
  const max = limits.maxTextureDimension2D;
  const [wA, wB] = textureWidths(M, N, K, aK);
  const fits = Math.max(K, aK ? M : 0) <= max && wA <= max && wB <= max;
  if (variant === "texture") return fits;
  if (variant === "tiled") return false;
  return software && fits;
}

/** Packs batches [b0, b0 + nb) of one operand into a texture `width` texels wide. */
export type Packer = (b0: number, nb: number, width: number) => GPUTexture;

/** A texture of `width` x `rows * nb` texels from the pool. */
export function packTarget(width: number, rows: number, nb: number): GPUTexture {
  return acquireTexture(width, rows * nb);
}

// Whether a pack is one buffer-to-texture copy: f32 rows of whole texels along memory, filling
// the texture's width exactly, at the copy's 256-byte row pitch and 16-byte offset, with the
// batches back to back.
function copyable(
  dtype: DType,
  rows: number,
  cols: number,
  [rs, cs, bs]: [number, number, number],
  width: number,
  b0: number,
  nb: number,
): boolean {
  return dtype === "f32" && cs === 1 && width * 4 === cols && rs >= cols &&
    (rs * 4) % 256 === 0 &&
    (b0 * bs * 4) % 16 === 0 && (nb === 1 || bs === rows * rs);
}

/**
 * How many rows of an operand its texture folds into one row (`RowFold`): f32 rows of whole
 * texels narrower than 256 bytes that lie back to back in memory (batches too) and fill the
 * texture's width exactly, `rows` a multiple of the fold, the fold at most `max`. Such an operand
 * (attention's 16- and 32-wide heads) is then one buffer-to-texture copy instead of the pack
 * kernel (llvmpipe: [64, 256, 16] 3.5 ms as a kernel).
 */
export function rowFold(
  dtype: DType,
  rows: number,
  cols: number,
  [rs, cs, bs]: [number, number, number],
  width: number,
  max: RowFold,
): RowFold {
  if (dtype !== "f32" || cs !== 1 || rs !== cols || width * 4 !== cols) return 1;
  if (bs !== 0 && bs !== rows * rs) return 1;
  const G = 64 / cols;
  if (![2, 4, 8, 16].includes(G) || G > max || rows % G !== 0) return 1;
  return G as RowFold;
}

// src: batch of [rows, cols] read through (row, col, batch) strides -> texture
/**
 * Packs a strided operand (see `packKernel`); one whose rows lie along memory at a copyable
 * pitch is copied instead (software adapters copy at memory speed, 3-15x faster than the
 * kernel's strided loads), as is one whose narrow rows `fold` (from `rowFold`) go to a texture
 * row.
 */
export function packStrided(
  src: Tensor,
  rows: number,
  cols: number,
  strides: [number, number, number],
  width: number,
  b0: number,
  nb: number,
  fold: RowFold = 1,
): GPUTexture {
  const [rs, cs, bs] = strides;
  return cachedPack(src, `${rows} ${cols} ${strides} ${width} ${b0} ${nb} ${fold}`, () => {
    if (fold > 1) {
      const tex = acquireTexture(width * fold, rows * nb / fold);
      copyToTexture(
        { buffer: src.buffer, offset: b0 * bs * 4, bytesPerRow: 256 },
        { texture: tex },
        width * fold,
        rows * nb / fold,
      );
      return tex;
    }
    const tex = packTarget(width, rows, nb);
    // a whole f16 operand (a weight) whose f32 form would be copyable: one element-wise cast,
    // then the copy (llvmpipe: SD-size f16 weights 2.5-3x faster than the pack kernel's loads)
    const whole = b0 === 0 && (bs === 0 ? rows * rs : nb * bs) === src.size;
    const from = copyable(src.dtype, rows, cols, strides, width, b0, nb)
      ? src
      : src.dtype === "f16" && whole && copyable("f32", rows, cols, strides, width, b0, nb)
      ? castRaw(src, "f32")
      : null;
    if (from) {
      copyToTexture(
        { buffer: from.buffer, offset: b0 * bs * 4, bytesPerRow: rs * 4 },
        { texture: tex },
        width,
        rows * nb,
      );
      if (from !== src) from.dispose(); // its buffer is recycled only after this submission
      return tex;
    }
    const k = cachedKernel(`matmul pack ${src.dtype}`, () => packKernel(src.dtype));
    dispatch(k, [src.binding, tex], [rows, cols, rs, cs, bs, width, nb, b0], [
      Math.ceil(width / 8),
      Math.ceil(rows * nb / 8),
    ]);
    return tex;
  });
}

/** Sizes of a texture matmul: c[b] = alpha * A[b] B[b] + beta * c[b], b < B. */
export interface TextureProduct {
  M: number;
  N: number;
  K: number;
  B: number;
  alpha: number;
  beta: number;
  /** One A for every batch (a weight): packed once, as batch 0 of 1, and read by all. */
  aShared?: boolean;
  /** Whether the bias is per column of C (`bias[n]`) instead of per row. */
  biasN?: boolean;
  /**
   * Columns per batch when a batch is folded into N (B is then 1): column n = b * nblk + p is
   * written to c[b, m, p] (default 0: no fold).
   */
  nblk?: number;
  /** Rows of A's and of B's textures folded into one texture row (`RowFold`, default 1). */
  aFold?: RowFold;
  bFold?: RowFold;
}

/**
 * C's binding (then the bias's) and the storage types the matmul epilogue is built for, shared
 * by the texture and tiled kernels; `biasN` puts the bias along C's columns; `sampleBias` [B, M]
 * is added after it (a conv bias, then a time embedding per sample); `gate` (C's shape)
 * multiplies the result element-wise.
 */
export function epilogueOutputs(
  c: Tensor,
  bias: Tensor | null,
  biasN = false,
  sampleBias: Tensor | null = null,
  gate: Tensor | null = null,
): { outs: Resource[]; types: MatmulTypes } {
  const outs: Resource[] = [c.binding];
  const types: MatmulTypes = { c: c.dtype };
  if (bias) {
    outs.push(bias.binding);
    Object.assign(types, { bias: bias.dtype, biasN });
  }
  if (sampleBias) {
    outs.push(sampleBias.binding);
    types.sampleBias = sampleBias.dtype;
  }
  if (gate) {
    outs.push(gate.binding);
    types.gate = gate.dtype;
  }
  return { outs, types };
}

// c: [B, M, N] = (alpha * op(A)[b] op(B)[b] (+ bias[m] or bias[n]) (+ sampleBias[b, m]))
//   (* gate) + beta * c
/** Runs the outer-product kernel over packed operands, in chunks of batches. */
export function runTextureMatmul(
  c: Tensor,
  bias: Tensor | null,
  p: TextureProduct,
  packers: { a: Packer; b: Packer },
  aK = false,
  sampleBias: Tensor | null = null,
  gate: Tensor | null = null,
): void {
  const max = deviceInfo().limits.maxTextureDimension2D;
  const chunk = Math.max(1, Math.floor(max / Math.max(p.K, aK ? p.M : 0)));
  const [wA, wB] = textureWidths(p.M, p.N, p.K, aK);
  const { outs, types } = epilogueOutputs(c, bias, p.biasN, sampleBias, gate);
  // whole vec4 rows of an f32 C (and gate): 16-byte stores
  const nblk = p.nblk ?? 0, fold = nblk > 0;
  const vec4 = types.c === "f32" && (types.gate ?? "f32") === "f32" && p.N % 4 === 0 &&
    nblk % 4 === 0;
  // a gate, and beta's input, of rows of whole 256 bytes are read from texture copies of them
  // (llvmpipe loads textures faster than storage: the gated dO v^T of [64, 256, 256] scores
  // 57.1 -> 34.1 ms)
  const asTexture = (t: Tensor | null): GPUTexture | null => {
    if (!t || !vec4 || fold || p.N % 64 !== 0 || p.N / 4 > max || p.B * p.M > max) return null;
    const tex = acquireTexture(p.N / 4, p.B * p.M);
    copyToTexture({ buffer: t.buffer, bytesPerRow: p.N * 4 }, { texture: tex }, p.N / 4, p.B * p.M);
    return tex;
  };
  const gateTex = asTexture(gate);
  if (gateTex) {
    outs[outs.length - 1] = gateTex;
    types.gateTexture = true;
  }
  const cTex = asTexture(p.beta !== 0 ? c : null);
  if (cTex) {
    outs.push(cTex);
    types.cTexture = true;
  }
  const gx = textureGroupX(p.N), gy = TEX_GROUP / gx;
  const aG = p.aFold ?? 1, bG = p.bFold ?? 1;
  const key = `matmul texture ${epilogueKey(types)} ${aK} ${vec4} ${fold} ${gx} ${aG} ${bG}`;
  const mk = cachedKernel(key, () => textureMatmulKernel(types, aK, vec4, fold, gx, aG, bG));
  for (let b0 = 0; b0 < p.B; b0 += chunk) {
    const nb = Math.min(chunk, p.B - b0);
    const at = p.aShared ? packers.a(0, 1, wA) : packers.a(b0, nb, wA);
    const bt = packers.b(b0, nb, wB);
    dispatch(
      mk,
      [at, bt, ...outs],
      [
        p.M,
        p.N,
        p.K,
        b0,
        p.alpha,
        p.beta,
        p.aShared ? 0 : 1,
        ...(fold ? [nblk] : []),
      ],
      [Math.ceil(p.N / (TEX_COLS * gx)), Math.ceil(p.M / (TEX_ROWS * gy)), nb],
      2 * p.M * p.N * p.K * nb,
    );
    releasePack(at);
    releasePack(bt);
  }
  for (const t of [gateTex, cTex]) if (t) releaseTexture(t);
}
