/**
 * diffusers' `Upsample2D` (nearest x2, then a convolution).
 *
 * @module
 */
import { Module } from "../module.ts";
import { upsampleNearest2x } from "../../ops/upsample.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import type { InitOptions } from "./_init.ts";
import { Conv2d } from "./conv2d.ts";

// x: [B, C, H, W] -> y: [B, C, 2H, 2W]
/**
 * Nearest-neighbour x2 upsampling followed by a 3x3 conv `conv` (key `upsamplers.0.conv`).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { Upsample2D } from "./upsample.ts";
 * await getDevice();
 * console.log(new Upsample2D(8).forward(randn([1, 8, 4, 4])).shape); // [1, 8, 8, 8]
 * ```
 */
export class Upsample2D extends Module {
  /** A new layer with random weights. */
  constructor(channels: number, options: InitOptions = {}) {
    super();
    this.addModule("conv", new Conv2d(channels, channels, 3, { ...options, padding: 1 }));
  }

  /** Doubles the spatial size. */
  forward(x: Tensor): Tensor {
    return scope(() => this.child<Conv2d>("conv").forward(upsampleNearest2x(x)));
  }
}
