/**
 * Fused scaled-dot-product attention, memory-efficient: the forward runs an online softmax over
 * key tiles and keeps only the per-row logsumexp; the backward recomputes probabilities from it.
 * Neither ever materializes the [Tq, Tk] score matrix.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import {
  attentionGradKVKernel,
  attentionGradQKernel,
  attentionKernel,
  ATTN_MAX_D,
  ATTN_ROWS,
} from "../wgsl/attention.ts";
import { Tensor } from "./tensor.ts";
import { dispatch } from "./runtime.ts";
import { record } from "./autograd.ts";
import { deviceInfo } from "./device.ts";
import { zeros } from "./creation.ts";
import { ArgumentError, DTypeError, fmtShape, ShapeError } from "./errors.ts";

/** Options of `attention`. */
export interface AttentionOptions {
  /** Multiplies the scores `q . k` (default `1 / sqrt(D)`). */
  scale?: number;
  /**
   * Masks key j for query i when `j > i + (Tk - Tq)` (default false). Query rows that see no key
   * (only when Tq > Tk) output zeros.
   */
  causal?: boolean;
}

interface Geometry {
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
}

function check(q: Tensor, k: Tensor, v: Tensor): Geometry {
  const shapes = `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`;
  if (q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4) {
    throw new ShapeError(
      `attention() needs q [B, H, Tq, D] and k, v [B, H, Tk, D], got ${shapes}`,
    );
  }
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const [kB, kH, Tk, kD] = k.shape as [number, number, number, number];
  if (kB !== B || kH !== H || kD !== D || v.shape.join() !== k.shape.join()) {
    throw new ShapeError(
      `attention() got ${shapes}; k and v must have equal shapes [B, H, Tk, D] with q's B, H and D`,
    );
  }
  if (D < 1 || D > ATTN_MAX_D) {
    throw new ShapeError(
      `attention() supports head dimensions 1..${ATTN_MAX_D}, got D = ${D} (${shapes})`,
    );
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) {
    throw new DTypeError(
      `attention() got dtypes q ${q.dtype}, k ${k.dtype}, v ${v.dtype}; cast them to one dtype`,
    );
  }
  return { B, H, Tq, Tk, D };
}

function groups(rows: number, bh: number): [number, number, number] {
  const max = deviceInfo().limits.maxComputeWorkgroupsPerDimension;
  const y = Math.min(bh, max);
  return [Math.ceil(rows / ATTN_ROWS), y, Math.ceil(bh / y)];
}

// q: [B, H, Tq, D], k, v: [B, H, Tk, D] -> y: [B, H, Tq, D]
/**
 * Scaled-dot-product attention `softmax(scale q k^T [+ causal mask]) v`, fused: memory stays
 * linear in the sequence lengths (the score matrix is never stored). Self and cross attention
 * (Tq != Tk), head dimensions up to 256, backward to q, k and v.
 *
 * @example
 * ```ts
 * import { attention, getDevice, randn } from "../../mod.ts";
 * await getDevice();
 * const q = randn([1, 2, 7, 40]), kv = randn([1, 2, 13, 40]);
 * const y = attention(q, kv, kv, { causal: false });
 * console.log(y.shape); // [1, 2, 7, 40]
 * ```
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions = {},
): Tensor {
  const g = check(q, k, v);
  const scale = options.scale ?? 1 / Math.sqrt(g.D);
  if (!Number.isFinite(scale)) {
    throw new ArgumentError(`attention() needs a finite scale, got ${scale}`);
  }
  const causal = options.causal ?? false;
  const t = q.dtype;
  const BH = g.B * g.H;
  const params = [BH, g.Tq, g.Tk, scale, causal ? 1 : 0, g.Tk - g.Tq];
  const y = new Tensor(q.shape, t);
  const lse = new Tensor([BH, g.Tq], "f32");
  if (y.size > 0) {
    const kern = cachedKernel(`attention ${t} ${g.D}`, () => attentionKernel(t, g.D));
    dispatch(
      kern,
      [q.binding, k.binding, v.binding, y.binding, lse.binding],
      params,
      groups(g.Tq, BH),
      4 * BH * g.Tq * g.Tk * g.D,
    );
  }
  const out = record("attention", [q, k, v], y, [q, k, v, y, lse], (dy, s) => {
    const [sq, sk, sv, so, sl] = s as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const dq = new Tensor(q.shape, t);
    const delta = new Tensor([BH, g.Tq], "f32");
    const needKV = k.requiresGrad || v.requiresGrad;
    // with no queries, k and v get zero gradients
    const dk = !needKV ? null : y.size > 0 ? new Tensor(k.shape, t) : zeros(k.shape, { dtype: t });
    const dv = !needKV ? null : y.size > 0 ? new Tensor(v.shape, t) : zeros(v.shape, { dtype: t });
    if (y.size > 0) {
      const kq = cachedKernel(`attention_grad_q ${t} ${g.D}`, () => attentionGradQKernel(t, g.D));
      dispatch(
        kq,
        [
          sq.binding,
          sk.binding,
          sv.binding,
          so.binding,
          dy.binding,
          sl.binding,
          dq.binding,
          delta.binding,
        ],
        params,
        groups(g.Tq, BH),
        6 * BH * g.Tq * g.Tk * g.D,
      );
      if (dk && dv && k.size > 0) {
        const kkv = cachedKernel(
          `attention_grad_kv ${t} ${g.D}`,
          () => attentionGradKVKernel(t, g.D),
        );
        dispatch(
          kkv,
          [
            sq.binding,
            sk.binding,
            sv.binding,
            dy.binding,
            sl.binding,
            delta.binding,
            dk.binding,
            dv.binding,
          ],
          params,
          groups(g.Tk, BH),
          8 * BH * g.Tq * g.Tk * g.D,
        );
      }
    }
    delta.dispose();
    return [q.requiresGrad ? dq : null, k.requiresGrad ? dk : null, v.requiresGrad ? dv : null];
  });
  lse.dispose();
  return out;
}

/** CPU reference of `attention` (float64, materializes the scores; tests only). */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  qShape: readonly number[],
  tk: number,
  options: AttentionOptions = {},
): Float64Array {
  const [B, H, Tq, D] = qShape as [number, number, number, number];
  const scale = options.scale ?? 1 / Math.sqrt(D);
  const off = tk - Tq;
  const y = new Float64Array(B * H * Tq * D);
  const s = new Float64Array(tk);
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Tq; i++) {
      const qb = (bh * Tq + i) * D;
      let m = -Infinity;
      for (let j = 0; j < tk; j++) {
        if (options.causal && j > i + off) {
          s[j] = -Infinity;
          continue;
        }
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[qb + d]! * k[(bh * tk + j) * D + d]!;
        s[j] = dot * scale;
        m = Math.max(m, s[j]!);
      }
      if (m === -Infinity) continue; // every key masked: output zeros
      let l = 0;
      for (let j = 0; j < tk; j++) l += s[j] = Math.exp(s[j]! - m);
      for (let j = 0; j < tk; j++) {
        const p = s[j]! / l;
        if (p === 0) continue;
        for (let d = 0; d < D; d++) y[qb + d]! += p * v[(bh * tk + j) * D + d]!;
      }
    }
  }
  return y;
}
