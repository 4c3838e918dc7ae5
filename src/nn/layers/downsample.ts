/**
 * diffusers' `Downsample2D` (the convolution form).
 *
 * @module
 */
import { Module } from "../module.ts";
import { concat } from "../../ops/concat.ts";
import { zeros } from "../../ops/creation.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { Conv2d } from "./conv2d.ts";

/** Options of {@link Downsample2D}. */
export interface DownsampleOptions extends InitOptions {
  /**
   * Pad one zero row and column at the bottom and right, then convolve without padding (the
   * VAE encoder's form, diffusers' `padding=0`). Default false: padding 1 on every side.
   */
  asymmetricPad?: boolean;
}

// x: [B, C, H, W] -> y: [B, C, ceil(H/2), ceil(W/2)]
/**
 * A 3x3 stride-2 convolution `conv` (key `downsamplers.0.conv` inside a block).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { Downsample2D } from "./downsample.ts";
 * await getDevice();
 * console.log(new Downsample2D(8).forward(randn([1, 8, 8, 8])).shape); // [1, 8, 4, 4]
 * ```
 */
export class Downsample2D extends Module {
  /** Whether the input is padded bottom-right only. */
  readonly asymmetricPad: boolean;

  /** A new layer with random weights. */
  constructor(channels: number, options: DownsampleOptions = {}) {
    super();
    this.asymmetricPad = options.asymmetricPad ?? false;
    const init: InitOptions = initOptions(options);
    this.addModule(
      "conv",
      new Conv2d(channels, channels, 3, {
        ...init,
        stride: 2,
        padding: this.asymmetricPad ? 0 : 1,
      }),
    );
  }

  /** Halves the spatial size. */
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      if (this.asymmetricPad) {
        const [B, C, H, W] = x.shape as [number, number, number, number];
        h = concat([h, zeros([B, C, H, 1], { dtype: x.dtype })], 3);
        h = concat([h, zeros([B, C, 1, W + 1], { dtype: x.dtype })], 2);
      }
      return this.child<Conv2d>("conv").forward(h);
    });
  }
}
