/**
 * A 2-D convolution layer with PyTorch's parameter layout.
 *
 * @module
 */
import { Module } from "../module.ts";
import { conv2d } from "../../ops/conv2d.ts";
import { dtypeBytes, type Tensor } from "../../ops/tensor.ts";
import { deviceInfo } from "../../ops/device.ts";
import { slice } from "../../ops/slice.ts";
import { add } from "../../ops/binary.ts";
import { scope } from "../../ops/scope.ts";
import { reshape } from "../../ops/reshape.ts";
import { type InitOptions, uniformInit } from "./_init.ts";
import type { LayerAdapter } from "./adapter_hook.ts";

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
  /** Largest unfolded input in bytes before channels are split (default: one storage binding). */
  maxUnfoldBytes: number | undefined;
  /** An adapter that computes the output in the layer's place (see `src/lora`), or null. */
  adapter: LayerAdapter | null = null;

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
    this.maxUnfoldBytes = undefined;
    const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
    this.addParameter(
      "weight",
      uniformInit([outChannels, inChannels, kernelSize, kernelSize], bound, options),
    );
    if (this.hasBias) this.addParameter("bias", uniformInit([outChannels], bound, options));
  }

  /**
   * Convolves `x`. When the unfolded input (im2col, `B Cin k k Ho Wo` elements) would exceed one
   * storage binding (e.g. 960 channels at 64x64 in SD's last up block), the input channels are
   * split into chunks whose partial convolutions are summed. An attached adapter computes the
   * output instead. `residual` (shaped like the output) is added inside the product, and so is
   * `sampleBias` [B, out], a bias per sample added to the layer's (a time embedding).
   */
  forward(x: Tensor, residual?: Tensor, sampleBias?: Tensor): Tensor {
    if (!this.adapter) return this.baseForward(x, residual, sampleBias);
    let y = this.adapter.forward(x);
    if (sampleBias) y = add(y, reshape(sampleBias, [...sampleBias.shape, 1, 1]));
    return residual ? add(y, residual) : y;
  }

  /** The layer's own output (plus `residual` and `sampleBias`), ignoring any adapter. */
  baseForward(x: Tensor, residual?: Tensor, sampleBias?: Tensor): Tensor {
    const own = this.hasBias ? this.param("bias").value : null;
    if (sampleBias && own && own.dtype !== sampleBias.dtype) {
      // an f16 bias beside an f32 embedding: added after the product
      return scope(() => {
        const y = add(this.convolve(x, own), reshape(sampleBias, [...sampleBias.shape, 1, 1]));
        return residual ? add(y, residual) : y;
      });
    }
    return this.convolve(x, own, residual, sampleBias);
  }

  /** The convolution with the layer's weight and the given biases and residual. */
  private convolve(
    x: Tensor,
    bias: Tensor | null,
    residual?: Tensor,
    sampleBias?: Tensor,
  ): Tensor {
    const w = this.param("weight").value;
    // the sample bias goes into the product after the layer's (same rounding as adding it after)
    const opts = { stride: this.stride, padding: this.padding, sampleBias: sampleBias ?? null };
    const k = this.kernelSize;
    if (x.shape.length !== 4 || (k === 1 && this.stride === 1 && this.padding === 0)) {
      return conv2d(x, w, bias, { ...opts, residual: residual ?? null });
    }
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const Ho = Math.floor((H + 2 * this.padding - k) / this.stride) + 1;
    const Wo = Math.floor((W + 2 * this.padding - k) / this.stride) + 1;
    const perChannel = B * k * k * Math.max(Ho, 0) * Math.max(Wo, 0) * dtypeBytes(x.dtype);
    const limit = this.maxUnfoldBytes ?? deviceInfo().limits.maxStorageBufferBindingSize;
    const chunk = Math.floor(limit / Math.max(perChannel, 1));
    if (C * perChannel <= limit || chunk < 1 || C !== this.inChannels) {
      return conv2d(x, w, bias, { ...opts, residual: residual ?? null });
    }
    return scope(() => {
      let y: Tensor | null = null;
      for (let c0 = 0; c0 < C; c0 += chunk) {
        const c1 = Math.min(C, c0 + chunk);
        const first = c0 === 0;
        const part = conv2d(slice(x, 1, c0, c1), slice(w, 1, c0, c1), first ? bias : null, {
          ...opts,
          sampleBias: first ? opts.sampleBias : null,
        });
        y = y ? add(y, part) : part;
      }
      return residual ? add(y!, residual) : y!;
    });
  }
}
