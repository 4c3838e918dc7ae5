/**
 * Multi-head attention with diffusers' parameter names.
 *
 * @module
 */
import { Module, ModuleList } from "../module.ts";
import { attention } from "../../ops/attention.ts";
import { matmul } from "../../ops/matmul.ts";
import { softmaxMatmul } from "../../ops/softmax_matmul.ts";
import { permute } from "../../ops/permute.ts";
import { reshape } from "../../ops/reshape.ts";
import { scope } from "../../ops/scope.ts";
import { scale } from "../../ops/unary.ts";
import { deviceInfo } from "../../ops/device.ts";
import { fmtShape, ShapeError } from "../../ops/errors.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { Linear } from "./linear.ts";

/** Options of {@link Attention}. */
export interface AttentionLayerOptions extends InitOptions {
  /** Width of the context (cross-attention); default: the query width (self-attention). */
  crossAttentionDim?: number;
  /** Number of heads (default 8). */
  heads?: number;
  /** Width of each head (default `queryDim / heads`). */
  dimHead?: number;
  /** Whether `to_q`, `to_k`, `to_v` have biases (default false; the VAE's have). */
  qkvBias?: boolean;
  /** Whether `to_out.0` has a bias (default true). */
  outBias?: boolean;
}

/** Splits heads: [B, T, H*D] -> [B, H, T, D]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, C] = x.shape as [number, number, number];
  return permute(reshape(x, [B, T, heads, C / heads]), [0, 2, 1, 3]);
}

/** Merges heads: [B, H, T, D] -> [B, T, H*D]. */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, H * D]);
}

/** Widest head the fused `attention()` kernel takes (its documented limit). */
export const FUSED_ATTENTION_MAX_HEAD_DIM: number = 256;

// q: [B, H, Tq, D], k, v: [B, H, Tk, D] -> y: [B, H, Tq, D]
/** Largest score matrix (bytes) the software-adapter path materializes (64 MiB). */
export const MATERIALIZE_MAX_BYTES: number = 64 * 2 ** 20;

/** Whether attention over these shapes materializes its scores by default. */
export function materializesScores(q: Tensor, k: Tensor): boolean {
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  if (D > FUSED_ATTENTION_MAX_HEAD_DIM) return true;
  // software adapters run the fused kernel's workgroup barriers slowly: matmul + softmax +
  // matmul is 3-6x faster there (llvmpipe forward + backward kernel time, [16, 4, 256, 16]:
  // 256 keys 11.5 -> 4.0 s, 12 keys 1.1 -> 0.3 s)
  return deviceInfo().software && B * H * Tq * Tk * 4 <= MATERIALIZE_MAX_BYTES;
}

/**
 * Scaled-dot-product attention for any head width: the fused kernel, or scores materialized
 * with matmul and softmax (memory quadratic in the sequence) when the head is wider than the
 * kernel takes (the VAE's single 512-wide head) or on software adapters for moderate sizes
 * (see `materializesScores`); `materialize` forces either path.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { materialize?: boolean } = {},
): Tensor {
  const D = q.shape[3]!;
  const materialize = options.materialize ?? materializesScores(q, k);
  if (!materialize && D <= FUSED_ATTENTION_MAX_HEAD_DIM) return attention(q, k, v);
  return scope(() => {
    // the scale goes on q, Tk / D times fewer elements than the scores
    const s = matmul(scale(q, 1 / Math.sqrt(D)), k, { transB: true });
    // softmax's backward runs inside the dO v^T product (no pass over the score gradient)
    return softmaxMatmul(s, v);
  });
}

// x: [B, Tq, queryDim], context: [B, Tk, crossAttentionDim] (or none) -> y: [B, Tq, queryDim]
/**
 * diffusers' `Attention`: `to_q`, `to_k`, `to_v` (no bias by default), `to_out.0` (bias), fused
 * scaled-dot-product attention over `heads` heads. Self-attention without a context, cross
 * attention with one. Children are reached through the registry (`child("to_q")`), so an
 * adapter that replaces one with `setChild` takes effect.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { Attention } from "./attention.ts";
 * await getDevice();
 * const attn = new Attention(32, { heads: 2, crossAttentionDim: 16 });
 * console.log(attn.forward(randn([2, 9, 32]), randn([2, 5, 16])).shape); // [2, 9, 32]
 * ```
 */
export class Attention extends Module {
  /** Number of heads. */
  readonly heads: number;
  /** Width of each head. */
  readonly dimHead: number;
  /** Width of the queries (and the output). */
  readonly queryDim: number;
  /** Width of the keys' and values' source. */
  readonly contextDim: number;

  /** A new layer with random weights. */
  constructor(queryDim: number, options: AttentionLayerOptions = {}) {
    super();
    this.heads = options.heads ?? 8;
    this.dimHead = options.dimHead ?? queryDim / this.heads;
    if (!Number.isInteger(this.dimHead) || this.dimHead < 1) {
      throw new ShapeError(
        `Attention over ${queryDim} features cannot split into ${this.heads} heads; pass dimHead ` +
          "or a head count that divides the width",
      );
    }
    this.queryDim = queryDim;
    this.contextDim = options.crossAttentionDim ?? queryDim;
    const inner = this.heads * this.dimHead;
    const init: InitOptions = initOptions(options);
    const qkvBias = options.qkvBias ?? false;
    this.addModule("to_q", new Linear(queryDim, inner, { ...init, bias: qkvBias }));
    this.addModule("to_k", new Linear(this.contextDim, inner, { ...init, bias: qkvBias }));
    this.addModule("to_v", new Linear(this.contextDim, inner, { ...init, bias: qkvBias }));
    this.addModule(
      "to_out",
      new ModuleList([new Linear(inner, queryDim, { ...init, bias: options.outBias ?? true })]),
    );
  }

  /**
   * Attends from `x` to `context` (default: `x` itself); `residual` (shaped like `x`) is added to
   * the output inside `to_out.0`'s product.
   */
  forward(x: Tensor, context?: Tensor, residual?: Tensor): Tensor {
    const ctx = context ?? x;
    if (
      x.shape.length !== 3 || x.shape[2] !== this.queryDim || ctx.shape.length !== 3 ||
      ctx.shape[2] !== this.contextDim || ctx.shape[0] !== x.shape[0]
    ) {
      throw new ShapeError(
        `Attention needs x [B, T, ${this.queryDim}] and context [B, S, ${this.contextDim}], got ` +
          `${fmtShape(x.shape)} and ${fmtShape(ctx.shape)}`,
      );
    }
    return scope(() => {
      const q = splitHeads(this.child<Linear>("to_q").forward(x), this.heads);
      const k = splitHeads(this.child<Linear>("to_k").forward(ctx), this.heads);
      const v = splitHeads(this.child<Linear>("to_v").forward(ctx), this.heads);
      const o = mergeHeads(scaledDotProductAttention(q, k, v));
      return this.child<Linear>("to_out.0").forward(o, residual);
    });
  }
}
