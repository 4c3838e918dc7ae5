/**
 * The hook through which an adapter (LoRA, LoCon, a norm delta; see `src/lora`) takes over a
 * layer's forward without touching the layer's parameters or state-dict keys.
 *
 * @module
 */
import type { Tensor } from "../../ops/tensor.ts";

/**
 * Something that computes a layer's output in its place. It holds the layer and reaches its
 * weights (and its own `baseForward`) itself.
 *
 * @example
 * ```ts
 * import { getDevice, randn, scale } from "../../ops/mod.ts";
 * import { Linear } from "./linear.ts";
 * await getDevice();
 * const fc = new Linear(4, 4);
 * fc.adapter = { forward: (x) => scale(fc.baseForward(x), 2) };
 * console.log(fc.forward(randn([2, 4])).shape); // [2, 4]
 * ```
 */
export interface LayerAdapter {
  /** The adapted layer's output for `x`. */
  forward(x: Tensor): Tensor;
}
