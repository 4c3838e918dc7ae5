/**
 * diffusers' `BasicTransformerBlock`.
 *
 * @module
 */
import { Module } from "../module.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { Attention } from "./attention.ts";
import { FeedForward } from "./feed_forward.ts";
import { LayerNorm } from "./layer_norm.ts";

/** Options of {@link BasicTransformerBlock}. */
export interface TransformerBlockOptions extends InitOptions {
  /** Number of heads. */
  heads: number;
  /** Width of each head. */
  dimHead: number;
  /** Width of the cross-attention context (e.g. 768 for CLIP ViT-L). */
  crossAttentionDim: number;
  /** LayerNorm epsilon (default 1e-5). */
  normEps?: number;
}

// x: [B, T, dim], context: [B, S, crossAttentionDim] -> y: [B, T, dim]
/**
 * Self-attention, cross-attention and a GEGLU feed-forward, each pre-LayerNorm with a residual:
 * `x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x))`.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { BasicTransformerBlock } from "./transformer_block.ts";
 * await getDevice();
 * const blk = new BasicTransformerBlock(32, { heads: 2, dimHead: 16, crossAttentionDim: 24 });
 * console.log(blk.forward(randn([1, 16, 32]), randn([1, 7, 24])).shape); // [1, 16, 32]
 * ```
 */
export class BasicTransformerBlock extends Module {
  /** A new block with random weights. */
  constructor(dim: number, options: TransformerBlockOptions) {
    super();
    const init: InitOptions = initOptions(options);
    const eps = options.normEps ?? 1e-5;
    const heads = options.heads, dimHead = options.dimHead;
    this.addModule("norm1", new LayerNorm(dim, eps));
    this.addModule("attn1", new Attention(dim, { ...init, heads, dimHead }));
    this.addModule("norm2", new LayerNorm(dim, eps));
    this.addModule(
      "attn2",
      new Attention(dim, { ...init, heads, dimHead, crossAttentionDim: options.crossAttentionDim }),
    );
    this.addModule("norm3", new LayerNorm(dim, eps));
    this.addModule("ff", new FeedForward(dim, init));
  }

  /** Runs the block. */
  forward(x: Tensor, context: Tensor): Tensor {
    return scope(() => {
      const n1 = this.child<LayerNorm>("norm1").forward(x);
      // each residual is added inside the block's output product
      let h = this.child<Attention>("attn1").forward(n1, undefined, x);
      const n2 = this.child<LayerNorm>("norm2").forward(h);
      h = this.child<Attention>("attn2").forward(n2, context, h);
      const n3 = this.child<LayerNorm>("norm3").forward(h);
      return this.child<FeedForward>("ff").forward(n3, h);
    });
  }
}
