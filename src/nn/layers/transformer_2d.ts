/**
 * diffusers' `Transformer2DModel` (SD 1.x form: 1x1 convolution projections).
 *
 * @module
 */
import { Module, ModuleList } from "../module.ts";
import { permute } from "../../ops/permute.ts";
import { reshape } from "../../ops/reshape.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { Conv2d } from "./conv2d.ts";
import { GroupNorm } from "./group_norm.ts";
import { BasicTransformerBlock } from "./transformer_block.ts";

/** Options of {@link Transformer2DModel}. */
export interface Transformer2DOptions extends InitOptions {
  /** Number of heads. */
  heads: number;
  /** Width of the cross-attention context. */
  crossAttentionDim: number;
  /** GroupNorm groups (default 32). */
  normNumGroups?: number;
  /** Transformer blocks (default 1). */
  layers?: number;
}

// x: [B, C, H, W], context: [B, S, crossAttentionDim] -> y: [B, C, H, W]
/**
 * `norm` (GroupNorm, eps 1e-6) -> `proj_in` (1x1 conv) -> tokens [B, HW, C] ->
 * `transformer_blocks.N` -> back to [B, C, H, W] -> `proj_out` (1x1 conv) -> plus the input.
 * The inner width equals `channels` (heads x head width).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { Transformer2DModel } from "./transformer_2d.ts";
 * await getDevice();
 * const t = new Transformer2DModel(32, { heads: 2, crossAttentionDim: 24, normNumGroups: 8 });
 * console.log(t.forward(randn([1, 32, 4, 4]), randn([1, 7, 24])).shape); // [1, 32, 4, 4]
 * ```
 */
export class Transformer2DModel extends Module {
  /** Channels in and out. */
  readonly channels: number;

  /** A new model with random weights. */
  constructor(channels: number, options: Transformer2DOptions) {
    super();
    this.channels = channels;
    const init: InitOptions = initOptions(options);
    this.addModule("norm", new GroupNorm(options.normNumGroups ?? 32, channels, 1e-6));
    this.addModule("proj_in", new Conv2d(channels, channels, 1, init));
    const blocks = new ModuleList<BasicTransformerBlock>();
    for (let i = 0; i < (options.layers ?? 1); i++) {
      blocks.push(
        new BasicTransformerBlock(channels, {
          ...init,
          heads: options.heads,
          dimHead: channels / options.heads,
          crossAttentionDim: options.crossAttentionDim,
        }),
      );
    }
    this.addModule("transformer_blocks", blocks);
    this.addModule("proj_out", new Conv2d(channels, channels, 1, init));
  }

  /** Runs the transformer on the feature map `x`. */
  forward(x: Tensor, context: Tensor): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    return scope(() => {
      let h = this.child<Conv2d>("proj_in").forward(this.child<GroupNorm>("norm").forward(x));
      h = reshape(permute(h, [0, 2, 3, 1]), [B, H * W, C]);
      for (const blk of this.child<ModuleList<BasicTransformerBlock>>("transformer_blocks")) {
        h = blk.forward(h, context);
      }
      h = permute(reshape(h, [B, H, W, C]), [0, 3, 1, 2]);
      return this.child<Conv2d>("proj_out").forward(h, x);
    });
  }
}
