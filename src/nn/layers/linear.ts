/**
 * A fully connected layer with PyTorch's parameter layout.
 *
 * @module
 */
import { Module } from "../module.ts";
import { linear } from "../../ops/linear.ts";
import { add } from "../../ops/binary.ts";
import { fmtShape, ShapeError } from "../../ops/errors.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, uniformInit } from "./_init.ts";
import type { LayerAdapter } from "./adapter_hook.ts";

/** Options of {@link Linear}. */
export interface LinearOptions extends InitOptions {
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
}

// x: [..., in], residual: [..., out] -> y: [..., out]
/**
 * `y = x W^T + b` with `weight` [out, in] and `bias` [out] (PyTorch's `nn.Linear`, so state-dict
 * keys are `weight` and `bias`). Initialized uniform in +-1/sqrt(in). A residual passed to
 * `forward` is added in the same product (see the `linear` op).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { Linear } from "./linear.ts";
 * await getDevice();
 * const fc = new Linear(8, 4);
 * console.log(fc.forward(randn([2, 3, 8])).shape); // [2, 3, 4]
 * ```
 */
export class Linear extends Module {
  /** Input features. */
  readonly inFeatures: number;
  /** Output features. */
  readonly outFeatures: number;

  /** A new layer with random weights. */
  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.hasBias = options.bias ?? true;
    const bound = 1 / Math.sqrt(inFeatures);
    this.addParameter("weight", uniformInit([outFeatures, inFeatures], bound, options));
    if (this.hasBias) {
      this.addParameter("bias", uniformInit([outFeatures], bound, options));
    }
  }

  /** Whether the layer has a bias. */
  readonly hasBias: boolean;
  /** An adapter that computes the output in the layer's place (see `src/lora`), or null. */
  adapter: LayerAdapter | null = null;

  /**
   * Applies the layer (through its adapter, when one is attached) to the last dimension of `x`,
   * plus `residual` when given.
   */
  forward(x: Tensor, residual?: Tensor): Tensor {
    if (!this.adapter) return this.baseForward(x, residual);
    const y = this.adapter.forward(x);
    return residual ? add(y, residual) : y;
  }

  /** The layer's own output (plus `residual` when given), ignoring any adapter. */
  baseForward(x: Tensor, residual?: Tensor): Tensor {
    if (x.shape.length < 1 || x.shape.at(-1) !== this.inFeatures) {
      throw new ShapeError(
        `Linear(${this.inFeatures}, ${this.outFeatures}) needs an input whose last dimension is ` +
          `${this.inFeatures}, got ${fmtShape(x.shape)}`,
      );
    }
    return linear(x, this.param("weight").value, {
      bias: this.hasBias ? this.param("bias").value : null,
      residual: residual ?? null,
    });
  }
}
