/**
 * A 2-D convolution layer with PyTorch's parameter layout.
 *
 * @module
 */
import { Module } from "../module.ts";
import { conv2d } from "../../ops/conv2d.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, uniformInit } from "./_init.ts";

/** Options of {@link Conv2d}. */
export interface Conv2dLayerOptions extends InitOptions {
  /** Step between output positions (default 1). */
  stride?: number;
  /** Zeros added on every side (default 0). */
  padding?: number;
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
}

// x: [B, Cin, H, W] -> y: [B, Cout, Ho, Wo]
/**
 * Square-kernel convolution with `weight` [out, in, k, k] and `bias` [out] (PyTorch's
 * `nn.Conv2d`). Initialized uniform in +-1/sqrt(in k k).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { Conv2d } from "./conv2d.ts";
 * await getDevice();
 * const conv = new Conv2d(4, 8, 3, { padding: 1, stride: 2 });
 * console.log(conv.forward(randn([1, 4, 8, 8])).shape); // [1, 8, 4, 4]
 * ```
 */
export class Conv2d extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  /** Kernel side. */
  readonly kernelSize: number;
  /** Stride. */
  readonly stride: number;
  /** Padding on every side. */
  readonly padding: number;
  /** Whether the layer has a bias. */
  readonly hasBias: boolean;

  /** A new layer with random weights. */
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: number,
    options: Conv2dLayerOptions = {},
  ) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = kernelSize;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.hasBias = options.bias ?? true;
    const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
    this.addParameter(
      "weight",
      uniformInit([outChannels, inChannels, kernelSize, kernelSize], bound, options),
    );
    if (this.hasBias) this.addParameter("bias", uniformInit([outChannels], bound, options));
  }

  /** Convolves `x`. */
  forward(x: Tensor): Tensor {
    return conv2d(
      x,
      this.param("weight").value,
      this.hasBias ? this.param("bias").value : null,
      { stride: this.stride, padding: this.padding },
    );
  }
}
