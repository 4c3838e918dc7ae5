/**
 * Batch normalization layer with running statistics.
 *
 * @module
 */
import { Module } from "../module.ts";
import { batchNorm } from "../../ops/batch_norm.ts";
import { affine, silu } from "../../ops/unary.ts";
import { noGrad } from "../../ops/autograd.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { ones, zeros } from "./_init.ts";

/** Options of {@link BatchNorm2d}. */
export interface BatchNorm2dOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Weight of each new batch statistic in the running update (default 0.1). */
  momentum?: number;
}

// x: [B, C, H, W] -> y: same shape
/**
 * PyTorch's `nn.BatchNorm2d(channels)`: parameters `weight`, `bias` and buffers `running_mean`,
 * `running_var`, `num_batches_tracked` (the PyTorch state-dict names). In training mode it
 * normalizes with the batch statistics and updates the running ones in place; in eval mode
 * (`eval()`) it normalizes with the running statistics.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { BatchNorm2d } from "./batch_norm.ts";
 * await getDevice();
 * const bn = new BatchNorm2d(8);
 * bn.forward(randn([4, 8, 3, 3]));
 * console.log(await bn.param("num_batches_tracked").value.item()); // 1
 * ```
 */
export class BatchNorm2d extends Module {
  /** Channels. */
  readonly channels: number;
  /** Added to the variance. */
  readonly eps: number;
  /** Running-average momentum. */
  readonly momentum: number;

  /** A new layer: unit scale, zero shift, running mean 0 and variance 1. */
  constructor(channels: number, options: BatchNorm2dOptions = {}) {
    super();
    this.channels = channels;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    this.addParameter("weight", ones([channels]));
    this.addParameter("bias", zeros([channels]));
    this.addBuffer("running_mean", zeros([channels]));
    this.addBuffer("running_var", ones([channels]));
    this.addBuffer("num_batches_tracked", zeros([]));
  }

  /** Normalizes `x` (updating the running statistics in training mode). */
  forward(x: Tensor): Tensor {
    const state = {
      runningMean: this.param("running_mean").value,
      runningVar: this.param("running_var").value,
    };
    const y = batchNorm(x, this.param("weight").value, this.param("bias").value, state, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
    if (this.training) {
      const n = this.param("num_batches_tracked");
      n.assign(noGrad(() => affine(n.value, 1, 1)));
    }
    return y;
  }

  /** `silu(forward(x))`, as `GroupNorm.forwardSilu` (no fused kernel here). */
  forwardSilu(x: Tensor): Tensor {
    return silu(this.forward(x));
  }
}
