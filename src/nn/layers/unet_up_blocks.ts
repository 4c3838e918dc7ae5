/**
 * diffusers' U-Net up blocks: `CrossAttnUpBlock2D` and `UpBlock2D`.
 *
 * @module
 */
import { initOptions } from "./_init.ts";
import { Module, ModuleList } from "../module.ts";
import { concat } from "../../ops/concat.ts";
import { scope } from "../../ops/scope.ts";
import { fmtShape, ShapeError } from "../../ops/errors.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { ResnetBlock2D } from "./resnet.ts";
import type { Transformer2DModel } from "./transformer_2d.ts";
import { Upsample2D } from "./upsample.ts";
import type { UNetBlockOptions } from "./unet_down_blocks.ts";
import { resnetOptions, transformer } from "./_unet_common.ts";

// x: [B, prevC, H, W], skips (last `layers` of them used) -> y: [B, Cout, 2H, 2W] (H when last)
/**
 * An up block: for each layer, concatenate the last skip on the channels, `resnets.N`, then
 * `attentions.N` when `attention` is true; unless it is the last block, `upsamplers.0`.
 * Channels follow diffusers: ResNet N takes `(N == 0 ? prevOutChannels : outChannels)` plus the
 * skip's channels (`inChannels` for the last layer, else `outChannels`).
 */
export class UpBlockBase extends Module {
  /** Whether the block has cross-attention transformers. */
  readonly hasAttention: boolean;
  /** ResNet layers (skips consumed). */
  readonly layers: number;

  /** A new block with random weights. */
  constructor(
    inChannels: number,
    prevOutChannels: number,
    outChannels: number,
    addUpsample: boolean,
    attention: boolean,
    options: UNetBlockOptions,
  ) {
    super();
    this.hasAttention = attention;
    this.layers = options.layers;
    const resnets = new ModuleList<ResnetBlock2D>();
    const attns = new ModuleList<Transformer2DModel>();
    for (let i = 0; i < options.layers; i++) {
      const skip = i === options.layers - 1 ? inChannels : outChannels;
      const cin = i === 0 ? prevOutChannels : outChannels;
      resnets.push(new ResnetBlock2D(cin + skip, outChannels, resnetOptions(options)));
      if (attention) attns.push(transformer(outChannels, options));
    }
    if (attention) this.addModule("attentions", attns);
    this.addModule("resnets", resnets);
    if (addUpsample) {
      const init = initOptions(options);
      this.addModule("upsamplers", new ModuleList([new Upsample2D(outChannels, init)]));
    }
  }

  /** Runs the block, popping its skips off the end of `skips` (the array is shortened). */
  forward(x: Tensor, skips: Tensor[], temb: Tensor, context?: Tensor): Tensor {
    if (skips.length < this.layers) {
      throw new ShapeError(
        `An up block with ${this.layers} layers needs ${this.layers} skip tensors, got ` +
          `${skips.length}`,
      );
    }
    return scope(() => {
      let h = x;
      const resnets = this.child<ModuleList<ResnetBlock2D>>("resnets");
      for (let i = 0; i < resnets.length; i++) {
        const skip = skips.pop()!;
        if (skip.shape[2] !== h.shape[2] || skip.shape[3] !== h.shape[3]) {
          throw new ShapeError(
            `An up block got a skip of shape ${fmtShape(skip.shape)} for features of shape ` +
              `${fmtShape(h.shape)}; the latent sides must be divisible by 2^(levels - 1)`,
          );
        }
        h = resnets.at(i).forward(concat([h, skip], 1), temb);
        if (this.hasAttention) {
          h = this.child<Transformer2DModel>(`attentions.${i}`).forward(h, context!);
        }
      }
      const up = this.getChild("upsamplers.0") as Upsample2D | undefined;
      return up ? up.forward(h) : h;
    });
  }
}

/**
 * diffusers' `CrossAttnUpBlock2D`.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { CrossAttnUpBlock2D } from "./unet_up_blocks.ts";
 * await getDevice();
 * const b = new CrossAttnUpBlock2D(16, 32, 16, false, {
 *   layers: 1, tembChannels: 64, groups: 8, heads: 2, crossAttentionDim: 24,
 * });
 * const y = b.forward(randn([1, 32, 8, 8]), [randn([1, 16, 8, 8])], randn([1, 64]), randn([1, 7, 24]));
 * console.log(y.shape); // [1, 16, 8, 8]
 * ```
 */
export class CrossAttnUpBlock2D extends UpBlockBase {
  /** A new block with random weights. */
  constructor(
    inChannels: number,
    prevOutChannels: number,
    outChannels: number,
    addUpsample: boolean,
    options: UNetBlockOptions,
  ) {
    super(inChannels, prevOutChannels, outChannels, addUpsample, true, options);
  }
}

/**
 * diffusers' `UpBlock2D` (no attention).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { UpBlock2D } from "./unet_up_blocks.ts";
 * await getDevice();
 * const b = new UpBlock2D(32, 32, 32, true, { layers: 1, tembChannels: 64, groups: 8 });
 * console.log(b.forward(randn([1, 32, 4, 4]), [randn([1, 32, 4, 4])], randn([1, 64])).shape);
 * ```
 */
export class UpBlock2D extends UpBlockBase {
  /** A new block with random weights. */
  constructor(
    inChannels: number,
    prevOutChannels: number,
    outChannels: number,
    addUpsample: boolean,
    options: UNetBlockOptions,
  ) {
    super(inChannels, prevOutChannels, outChannels, addUpsample, false, options);
  }
}
