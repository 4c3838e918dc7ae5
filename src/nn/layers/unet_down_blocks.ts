/**
 * diffusers' U-Net down blocks: `CrossAttnDownBlock2D` and `DownBlock2D`.
 *
 * @module
 */
import { Module, ModuleList } from "../module.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import type { NormKind } from "./_norm.ts";
import { Downsample2D } from "./downsample.ts";
import { ResnetBlock2D } from "./resnet.ts";
import type { Transformer2DModel } from "./transformer_2d.ts";
import { resnetOptions, transformer } from "./_unet_common.ts";

/** Options shared by the U-Net's down, mid and up blocks. */
export interface UNetBlockOptions extends InitOptions {
  /** ResNet layers in the block. */
  layers: number;
  /** Width of the time embedding. */
  tembChannels: number;
  /** GroupNorm groups. */
  groups: number;
  /** ResNet norm epsilon (default 1e-5). */
  eps?: number;
  /** ResNet norm kind (default group). */
  norm?: NormKind;
  /** Attention heads (cross-attention blocks). */
  heads?: number;
  /** Context width (cross-attention blocks). */
  crossAttentionDim?: number;
  /** Transformer blocks per attention (default 1). */
  transformerLayers?: number;
}

/** What a down block returns: the output and the skip tensors for the up path. */
export interface DownBlockOutput {
  /** The block's output. */
  h: Tensor;
  /** One skip per ResNet layer, plus one after the downsampler. */
  skips: Tensor[];
}

// x: [B, Cin, H, W] -> h: [B, Cout, H/2, W/2] (H with no downsampler), skips: layers + 1
/**
 * A down block: `resnets.N` (each followed by `attentions.N` when `attention` is true) and,
 * unless it is the last block, `downsamplers.0` (3x3 stride-2 conv).
 */
export class DownBlockBase extends Module {
  /** Whether the block has cross-attention transformers. */
  readonly hasAttention: boolean;

  /** A new block with random weights. */
  constructor(
    inChannels: number,
    outChannels: number,
    addDownsample: boolean,
    attention: boolean,
    options: UNetBlockOptions,
  ) {
    super();
    this.hasAttention = attention;
    const resnets = new ModuleList<ResnetBlock2D>();
    const attns = new ModuleList<Transformer2DModel>();
    for (let i = 0; i < options.layers; i++) {
      resnets.push(
        new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, resnetOptions(options)),
      );
      if (attention) attns.push(transformer(outChannels, options));
    }
    if (attention) this.addModule("attentions", attns);
    this.addModule("resnets", resnets);
    if (addDownsample) {
      const init = initOptions(options);
      this.addModule("downsamplers", new ModuleList([new Downsample2D(outChannels, init)]));
    }
  }

  /** Runs the block, collecting skip tensors. */
  forward(x: Tensor, temb: Tensor, context?: Tensor): DownBlockOutput {
    return scope(() => {
      const skips: Tensor[] = [];
      let h = x;
      const resnets = this.child<ModuleList<ResnetBlock2D>>("resnets");
      for (let i = 0; i < resnets.length; i++) {
        h = resnets.at(i).forward(h, temb);
        if (this.hasAttention) {
          h = this.child<Transformer2DModel>(`attentions.${i}`).forward(h, context!);
        }
        skips.push(h);
      }
      const down = this.getChild("downsamplers.0") as Downsample2D | undefined;
      if (down) {
        h = down.forward(h);
        skips.push(h);
      }
      return { h, skips };
    });
  }
}

/**
 * diffusers' `CrossAttnDownBlock2D`: ResNet + Transformer2D pairs, then an optional downsampler.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { CrossAttnDownBlock2D } from "./unet_down_blocks.ts";
 * await getDevice();
 * const b = new CrossAttnDownBlock2D(16, 32, true, {
 *   layers: 1, tembChannels: 64, groups: 8, heads: 2, crossAttentionDim: 24,
 * });
 * const { h, skips } = b.forward(randn([1, 16, 8, 8]), randn([1, 64]), randn([1, 7, 24]));
 * console.log(h.shape, skips.length); // [1, 32, 4, 4] 2
 * ```
 */
export class CrossAttnDownBlock2D extends DownBlockBase {
  /** A new block with random weights. */
  constructor(
    inChannels: number,
    outChannels: number,
    addDownsample: boolean,
    options: UNetBlockOptions,
  ) {
    super(inChannels, outChannels, addDownsample, true, options);
  }
}

/**
 * diffusers' `DownBlock2D`: ResNet layers, then an optional downsampler (no attention).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { DownBlock2D } from "./unet_down_blocks.ts";
 * await getDevice();
 * const b = new DownBlock2D(16, 32, false, { layers: 2, tembChannels: 64, groups: 8 });
 * console.log(b.forward(randn([1, 16, 8, 8]), randn([1, 64])).skips.length); // 2
 * ```
 */
export class DownBlock2D extends DownBlockBase {
  /** A new block with random weights. */
  constructor(
    inChannels: number,
    outChannels: number,
    addDownsample: boolean,
    options: UNetBlockOptions,
  ) {
    super(inChannels, outChannels, addDownsample, false, options);
  }
}
