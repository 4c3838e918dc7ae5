/**
 * diffusers' `UNetMidBlock2DCrossAttn`.
 *
 * @module
 */
import { Module, ModuleList } from "../module.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { ResnetBlock2D } from "./resnet.ts";
import type { Transformer2DModel } from "./transformer_2d.ts";
import type { UNetBlockOptions } from "./unet_down_blocks.ts";
import { resnetOptions, transformer } from "./_unet_common.ts";

// x: [B, C, H, W] -> y: [B, C, H, W]
/**
 * `resnets.0` -> `attentions.0` (Transformer2D) -> `resnets.1` (`options.layers` is ignored: SD's
 * mid block always has this shape).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { UNetMidBlock2DCrossAttn } from "./unet_mid_block.ts";
 * await getDevice();
 * const m = new UNetMidBlock2DCrossAttn(32, {
 *   layers: 1, tembChannels: 64, groups: 8, heads: 2, crossAttentionDim: 24,
 * });
 * console.log(m.forward(randn([1, 32, 4, 4]), randn([1, 64]), randn([1, 7, 24])).shape);
 * ```
 */
export class UNetMidBlock2DCrossAttn extends Module {
  /** A new block with random weights. */
  constructor(channels: number, options: UNetBlockOptions) {
    super();
    this.addModule("attentions", new ModuleList([transformer(channels, options)]));
    this.addModule(
      "resnets",
      new ModuleList([
        new ResnetBlock2D(channels, channels, resnetOptions(options)),
        new ResnetBlock2D(channels, channels, resnetOptions(options)),
      ]),
    );
  }

  /** Runs the block. */
  forward(x: Tensor, temb: Tensor, context: Tensor): Tensor {
    return scope(() => {
      let h = this.child<ResnetBlock2D>("resnets.0").forward(x, temb);
      h = this.child<Transformer2DModel>("attentions.0").forward(h, context);
      return this.child<ResnetBlock2D>("resnets.1").forward(h, temb);
    });
  }
}
