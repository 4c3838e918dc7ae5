/**
 * A fully connected layer with PyTorch's parameter layout.
 *
 * @module
 */
import { Module } from "../module.ts";
import { matmul } from "../../ops/matmul.ts";
import { add } from "../../ops/binary.ts";
import { scope } from "../../ops/scope.ts";
import { reshape } from "../../ops/reshape.ts";
import { fmtShape, ShapeError } from "../../ops/errors.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, uniformInit } from "./_init.ts";
import type { LayerAdapter } from "./adapter_hook.ts";

/** Options of {@link Linear}. */
export interface LinearOptions extends InitOptions {
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
}

// x: [..., in] -> y: [..., out]
/**
 * `y = x W^T + b` with `weight` [out, in] and `bias` [out] (PyTorch's `nn.Linear`, so state-dict
 * keys are `weight` and `bias`). Initialized uniform in +-1/sqrt(in).
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

  /** Applies the layer (through its adapter, when one is attached) to the last dimension of `x`. */
  forward(x: Tensor): Tensor {
    return this.adapter ? this.adapter.forward(x) : this.baseForward(x);
  }

  /** The layer's own output, ignoring any adapter. */
  baseForward(x: Tensor): Tensor {
    if (x.shape.length < 1 || x.shape.at(-1) !== this.inFeatures) {
      throw new ShapeError(
        `Linear(${this.inFeatures}, ${this.outFeatures}) needs an input whose last dimension is ` +
          `${this.inFeatures}, got ${fmtShape(x.shape)}`,
      );
    }
    return scope(() => {
      const x2 = x.shape.length === 1 ? reshape(x, [1, this.inFeatures]) : x;
      let y = matmul(x2, this.param("weight").value, { transB: true });
      if (this.hasBias) y = add(y, this.param("bias").value);
      return x.shape.length === 1 ? reshape(y, [this.outFeatures]) : y;
    });
  }
}
