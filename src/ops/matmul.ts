/**
 * Matrix multiply and batched matrix multiply with transposes.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { epilogueKey, TILE, tiledMatmulKernel } from "../wgsl/matmul.ts";
import { type DType, Tensor } from "./tensor.ts";
import { dispatch } from "./runtime.ts";
import {
  epilogueOutputs,
  packStrided,
  rowFold,
  runTextureMatmul,
  textureVariant,
  textureWidths,
} from "./_texture_matmul.ts";
import { record } from "./autograd.ts";
import { ArgumentError, fmtShape, ShapeError } from "./errors.ts";
import { sum } from "./reduce.ts";
import { copy } from "./creation.ts";

export type { MatmulVariant } from "./_texture_matmul.ts";
import type { MatmulVariant } from "./_texture_matmul.ts";

/** Options of `matmul`. */
export interface MatmulOptions {
  /** Use `a` transposed (its last two dimensions swapped). */
  transA?: boolean;
  /** Use `b` transposed. */
  transB?: boolean;
  /** Kernel choice (default `auto`). */
  variant?: MatmulVariant;
}

interface Plan {
  batch: number;
  M: number;
  N: number;
  K: number;
  aBatched: boolean;
  bBatched: boolean;
}

function plan(a: Tensor, b: Tensor, tA: boolean, tB: boolean): Plan {
  const fail = (why: string) =>
    new ShapeError(
      `matmul() cannot multiply ${fmtShape(a.shape)}${tA ? "^T" : ""} by ${fmtShape(b.shape)}${
        tB ? "^T" : ""
      }: ${why}`,
    );
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw fail("both operands need at least 2 dimensions");
  }
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const M = tA ? ac : ar, K = tA ? ar : ac;
  const Kb = tB ? bc : br, N = tB ? br : bc;
  if (K !== Kb) throw fail(`the inner dimensions ${K} and ${Kb} differ`);
  const ab = a.shape.slice(0, -2), bb = b.shape.slice(0, -2);
  const aN = ab.reduce((x, y) => x * y, 1), bN = bb.reduce((x, y) => x * y, 1);
  if (ab.length > 0 && bb.length > 0 && ab.join() !== bb.join()) {
    throw fail("batch dimensions must match, or one operand must be 2-D");
  }
  return {
    batch: Math.max(aN, bN),
    M,
    N,
    K,
    aBatched: ab.length > 0,
    bBatched: bb.length > 0,
  };
}

/**
 * Where `raw` writes: `c = (alpha * op(a) op(b) (+ bias[m], one value per row, or bias[n] per
 * column with `biasN`) (+ sampleBias[b, m])) (* gate, element-wise) + beta * c`, into `into.c`
 * when given.
 */
interface Into {
  c?: Tensor;
  alpha?: number;
  beta?: number;
  bias?: Tensor;
  biasN?: boolean;
  sampleBias?: Tensor;
  gate?: Tensor;
}

/** The dtype of a product: f16 only when both operands are f16. */
export function productDType(a: Tensor, b: Tensor): DType {
  return a.dtype === "f16" && b.dtype === "f16" ? "f16" : "f32";
}

function raw(
  a: Tensor,
  b: Tensor,
  tA: boolean,
  tB: boolean,
  variant: MatmulVariant,
  into: Into = {},
): Tensor {
  const p = plan(a, b, tA, tB);
  // A 2-D right operand with an untransposed batched left operand: fold the batch into M.
  const fold = p.aBatched && !p.bBatched && !tA;
  const B = fold ? 1 : p.batch;
  const M = fold ? p.M * p.batch : p.M;
  const { N, K } = p;
  const lead = p.aBatched ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
  const shape = [...lead, p.M, N];
  const c = into.c ?? new Tensor(shape, productDType(a, b));
  if (c.shape.join() !== shape.join()) {
    throw new ShapeError(`matmul() output ${fmtShape(c.shape)} should be ${fmtShape(shape)}`);
  }
  const bias = into.bias ?? null;
  const biasN = into.biasN ?? false;
  if (bias && bias.size !== (biasN ? N : p.M)) {
    throw new ShapeError(
      `matmul() bias ${fmtShape(bias.shape)} should have one value per ${
        biasN ? `column (${N})` : `row (${p.M})`
      }`,
    );
  }
  const sBias = into.sampleBias ?? null;
  if (sBias && (sBias.size !== p.batch * p.M || fold)) {
    throw new ShapeError(
      `matmul() sample bias ${fmtShape(sBias.shape)} should be [${p.batch}, ${p.M}], on a ` +
        "product that is not folded over batches",
    );
  }
  if (bias && fold && !biasN) {
    throw new ArgumentError("matmul() cannot add a per-row bias to a product folded over batches");
  }
  const gate = into.gate ?? null;
  if (gate && gate.shape.join() !== shape.join()) {
    throw new ShapeError(`matmul() gate ${fmtShape(gate.shape)} should be ${fmtShape(shape)}`);
  }
  const alpha = into.alpha ?? 1, beta = into.beta ?? 0;
  if (c.size === 0) return c;
  const sbA = fold || !p.aBatched ? 0 : M * K;
  const sbB = p.bBatched ? K * N : 0;
  // strides of op(A) along (m, k) and of op(B) along (k, n)
  const [amk, akk] = tA ? [1, M] : [K, 1];
  const [bkk, bnk] = tB ? [1, K] : [N, 1];
  // a row-major op(A) goes into its texture k-major, so that packing it can be a copy
  const natural = akk === 1 && amk !== 1;
  const aK = natural && textureVariant(M, N, K, variant, true);
  if (aK || textureVariant(M, N, K, variant)) {
    const aShared = B > 1 && sbA === 0;
    // contiguous operands with narrow rows (attention's heads): copied, rows folded
    const [wA, wB] = textureWidths(M, N, K, aK);
    const aFold = aK ? rowFold(a.dtype, M, K, [amk, akk, sbA], wA, 16) : 1;
    const bFold = rowFold(b.dtype, K, N, [bkk, bnk, sbB], wB, aK ? 4 : 16);
    runTextureMatmul(
      c,
      bias,
      { M, N, K, B, alpha, beta, aShared, biasN, aFold, bFold },
      {
        a: (b0, nb, w) =>
          aK
            ? packStrided(a, M, K, [amk, akk, sbA], w, b0, nb, aFold)
            : packStrided(a, K, M, [akk, amk, sbA], w, b0, nb),
        b: (b0, nb, w) => packStrided(b, K, N, [bkk, bnk, sbB], w, b0, nb, bFold),
      },
      aK,
      sBias,
      gate,
    );
    return c;
  }
  const { outs, types } = epilogueOutputs(c, bias, biasN, sBias, gate);
  const tt = { ...types, a: a.dtype, b: b.dtype };
  const key = `matmul tiled ${tt.a} ${tt.b} ${epilogueKey(tt)}`;
  const k = cachedKernel(key, () => tiledMatmulKernel(tt));
  dispatch(k, [a.binding, b.binding, ...outs], [
    M,
    N,
    K,
    amk,
    akk,
    bkk,
    bnk,
    sbA,
    sbB,
    alpha,
    beta,
  ], [
    Math.ceil(N / TILE),
    Math.ceil(M / TILE),
    B,
  ], 2 * M * N * K * B);
  return c;
}

/**
 * `c = alpha * op(a) op(b) + beta * c` into an existing tensor, outside the graph (for fused ops
 * that write their own backward).
 */
export function matmulInto(
  c: Tensor,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions & { alpha?: number; beta?: number } = {},
): Tensor {
  return raw(a, b, options.transA ?? false, options.transB ?? false, options.variant ?? "auto", {
    c,
    alpha: options.alpha ?? 1,
    beta: options.beta ?? 0,
  });
}

/**
 * `(alpha * op(a) op(b) (+ bias[m] on row m, or bias[n] on column n with `biasN`) (+
 * sampleBias[b, m])) (* gate, element-wise) + beta * c` as a new tensor, outside the graph; `c`
 * (beta's input) is copied into the output first.
 */
export function matmulRaw(
  a: Tensor,
  b: Tensor,
  options: MatmulOptions & {
    alpha?: number;
    bias?: Tensor;
    biasN?: boolean;
    sampleBias?: Tensor;
    gate?: Tensor;
    c?: Tensor;
  } = {},
): Tensor {
  return raw(a, b, options.transA ?? false, options.transB ?? false, options.variant ?? "auto", {
    alpha: options.alpha ?? 1,
    ...(options.bias ? { bias: options.bias, biasN: options.biasN ?? false } : {}),
    ...(options.sampleBias ? { sampleBias: options.sampleBias } : {}),
    ...(options.gate ? { gate: options.gate } : {}),
    ...(options.c ? { c: copy(options.c), beta: 1 } : {}),
  });
}

// a: [..., M, K] (or [..., K, M] with transA), b: [..., K, N] (or [..., N, K]) -> [..., M, N]
/**
 * Matrix product of the last two dimensions, batched over the leading ones (equal, or one
 * operand 2-D and shared across the other's batch).
 *
 * @example
 * ```ts
 * import { getDevice, matmul, tensor } from "../../mod.ts";
 * await getDevice();
 * const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
 * const b = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
 * console.log(await matmul(a, b).toArray()); // 4, 5, 10, 11
 * console.log(matmul(a, a, { transB: true }).shape); // [2, 2]
 * ```
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const tA = options.transA ?? false, tB = options.transB ?? false;
  const v = options.variant ?? "auto";
  const c = raw(a, b, tA, tB, v);
  return record("matmul", [a, b], c, [a, b], (dc, [sa, sb]) => {
    const A = sa!, Bm = sb!;
    let da: Tensor | null = null, db: Tensor | null = null;
    if (a.requiresGrad) {
      da = tA ? raw(Bm, dc, tB, true, v) : raw(dc, Bm, false, !tB, v);
      while (da.shape.length > a.shape.length) da = sum(da, 0);
    }
    if (b.requiresGrad) {
      const foldable = a.shape.length > 2 && b.shape.length === 2 && !tA;
      if (foldable) {
        const a2 = A.view([A.size / A.shape.at(-1)!, A.shape.at(-1)!]);
        const c2 = dc.view([dc.size / dc.shape.at(-1)!, dc.shape.at(-1)!]);
        db = tB ? raw(c2, a2, true, false, v) : raw(a2, c2, true, false, v);
      } else {
        db = tB ? raw(dc, A, true, tA, v) : raw(A, dc, !tA, false, v);
        while (db.shape.length > b.shape.length) db = sum(db, 0);
      }
    }
    return [da, db];
  });
}

/** CPU reference of `matmul` for 3-D operands [B, ., .] (B may be 1 to broadcast). */
export function matmulRef(
  a: ArrayLike<number>,
  aShape: readonly [number, number, number],
  b: ArrayLike<number>,
  bShape: readonly [number, number, number],
  transA = false,
  transB = false,
): Float64Array {
  const [Ba, ar, ac] = aShape;
  const [Bb, br, bc] = bShape;
  const M = transA ? ac : ar, K = transA ? ar : ac, N = transB ? br : bc;
  const B = Math.max(Ba, Bb);
  const out = new Float64Array(B * M * N);
  for (let z = 0; z < B; z++) {
    const ao = Ba === 1 ? 0 : z * ar * ac, bo = Bb === 1 ? 0 : z * br * bc;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + (transA ? k * M + i : i * K + k)]!;
          const bv = b[bo + (transB ? j * K + k : k * N + j)]!;
          s += av * bv;
        }
        out[z * M * N + i * N + j] = s;
      }
    }
  }
  return out;
}
