/**
 * Layer normalization layer.
 *
 * @module
 */
import { Module } from "../module.ts";
import { layerNorm } from "../../ops/layer_norm.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { ones, zeros } from "./_init.ts";
import type { LayerAdapter } from "./adapter_hook.ts";

// x: [..., N] -> y: same shape
/**
 * PyTorch's `nn.LayerNorm(n, eps)` over the last dimension, with `weight` (ones) and `bias`
 * (zeros).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { LayerNorm } from "./layer_norm.ts";
 * await getDevice();
 * console.log(new LayerNorm(8).forward(randn([2, 5, 8])).shape); // [2, 5, 8]
 * ```
 */
export class LayerNorm extends Module {
  /** Size of the normalized last dimension. */
  readonly features: number;
  /** Added to the variance. */
  readonly eps: number;
  /** An adapter that computes the output in the layer's place (see `src/lora`), or null. */
  adapter: LayerAdapter | null = null;

  /** A new layer with unit scale and zero shift. */
  constructor(features: number, eps = 1e-5) {
    super();
    this.features = features;
    this.eps = eps;
    this.addParameter("weight", ones([features]));
    this.addParameter("bias", zeros([features]));
  }

  /** Normalizes the last dimension of `x` (through its adapter, when one is attached). */
  forward(x: Tensor): Tensor {
    return this.adapter ? this.adapter.forward(x) : this.baseForward(x);
  }

  /** The layer's own output, ignoring any adapter. */
  baseForward(x: Tensor): Tensor {
    return layerNorm(x, this.param("weight").value, this.param("bias").value, this.eps);
  }
}
