/**
 * Group normalization layer.
 *
 * @module
 */
import { Module } from "../module.ts";
import { groupNorm } from "../../ops/group_norm.ts";
import { groupNormSilu } from "../../ops/group_norm_silu.ts";
import { silu } from "../../ops/unary.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { ones, zeros } from "./_init.ts";
import type { LayerAdapter } from "./adapter_hook.ts";

// x: [B, C, ...spatial] -> y: same shape
/**
 * PyTorch's `nn.GroupNorm(groups, channels, eps)` with affine `weight` (ones) and `bias` (zeros).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { GroupNorm } from "./group_norm.ts";
 * await getDevice();
 * console.log(new GroupNorm(4, 8).forward(randn([2, 8, 3, 3])).shape); // [2, 8, 3, 3]
 * ```
 */
export class GroupNorm extends Module {
  /** Number of groups. */
  readonly groups: number;
  /** Channels. */
  readonly channels: number;
  /** Added to the variance. */
  readonly eps: number;
  /** An adapter that computes the output in the layer's place (see `src/lora`), or null. */
  adapter: LayerAdapter | null = null;

  /** A new layer with unit scale and zero shift. */
  constructor(groups: number, channels: number, eps = 1e-5) {
    super();
    this.groups = groups;
    this.channels = channels;
    this.eps = eps;
    this.addParameter("weight", ones([channels]));
    this.addParameter("bias", zeros([channels]));
  }

  /** Normalizes `x` (through its adapter, when one is attached). */
  forward(x: Tensor): Tensor {
    return this.adapter ? this.adapter.forward(x) : this.baseForward(x);
  }

  /**
   * `silu(forward(x))`, in one fused kernel when no adapter is attached.
   *
   * @example
   * ```ts
   * import { getDevice, randn } from "../../ops/mod.ts";
   * import { GroupNorm } from "./group_norm.ts";
   * await getDevice();
   * console.log(new GroupNorm(4, 8).forwardSilu(randn([2, 8, 3, 3])).shape); // [2, 8, 3, 3]
   * ```
   */
  forwardSilu(x: Tensor): Tensor {
    if (this.adapter) return silu(this.adapter.forward(x));
    const w = this.param("weight").value, b = this.param("bias").value;
    return groupNormSilu(x, this.groups, w, b, this.eps);
  }

  /** The layer's own output, ignoring any adapter. */
  baseForward(x: Tensor): Tensor {
    return groupNorm(
      x,
      this.groups,
      this.param("weight").value,
      this.param("bias").value,
      this.eps,
    );
  }
}
