/**
 * The part every adapter shares: the layer it adapts, and attaching to and detaching from that
 * layer's forward hook.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import type { LayerAdapter } from "../nn/layers/adapter_hook.ts";
import { Module } from "../nn/module.ts";

/** A layer with an adapter hook (Linear, Conv2d, GroupNorm, LayerNorm). */
export interface AdaptableLayer {
  /** The adapter computing the layer's output in its place, if any. */
  adapter: LayerAdapter | null;
}

/**
 * An adapter module bound to one layer; `attach` routes the layer's forward through it.
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale, type Tensor } from "../ops/mod.ts";
 * import { Linear } from "../nn/layers/linear.ts";
 * import { AttachedAdapter } from "./attached_adapter.ts";
 * await getDevice();
 * class Doubler extends AttachedAdapter<Linear> {
 *   forward(x: Tensor): Tensor {
 *     return scale(this.target.baseForward(x), 2);
 *   }
 * }
 * const fc = new Linear(4, 4);
 * new Doubler(fc).attach();
 * console.log(fc.forward(randn([2, 4])).shape); // [2, 4]
 * ```
 */
export abstract class AttachedAdapter<T extends AdaptableLayer> extends Module
  implements LayerAdapter {
  /** The adapted layer. */
  readonly target: T;

  /** Binds the adapter to `target` (not attached yet). */
  constructor(target: T) {
    super();
    this.target = target;
  }

  /** Routes the target's forward through this adapter and returns it. */
  attach(): this {
    this.target.adapter = this;
    return this;
  }

  /** Gives the target its own forward back (if this adapter is the attached one). */
  detach(): void {
    if (this.target.adapter === this) this.target.adapter = null;
  }

  /** The adapted output. */
  abstract forward(x: Tensor): Tensor;
}
