/**
 * Norm adapters (LyCORIS `NormModule` semantics): per-channel deltas `w_norm` / `b_norm` added to a
 * GroupNorm's or LayerNorm's weight and bias, zero at the start.
 *
 * @module
 */
import { GroupNorm } from "../nn/layers/group_norm.ts";
import type { LayerNorm } from "../nn/layers/layer_norm.ts";
import type { Tensor } from "../ops/tensor.ts";
import { zeros } from "../ops/creation.ts";
import { add } from "../ops/binary.ts";
import { scale } from "../ops/unary.ts";
import { scope } from "../ops/scope.ts";
import { groupNorm } from "../ops/group_norm.ts";
import { layerNorm } from "../ops/layer_norm.ts";
import { AttachedAdapter } from "./attached_adapter.ts";

// GroupNorm: x [B, C, ...] -> same; LayerNorm: x [..., C] -> same; w_norm, b_norm: [C]
/**
 * Trainable per-channel deltas of a norm's affine parameters:
 * `norm(x; weight + m w_norm, bias + m b_norm)` with multiplier `m`.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { GroupNorm } from "../nn/layers/group_norm.ts";
 * import { NormAdapter } from "./norm_adapter.ts";
 * await getDevice();
 * const gn = new GroupNorm(2, 8).freeze();
 * new NormAdapter(gn).attach();
 * console.log(gn.forward(randn([1, 8, 4, 4])).shape); // [1, 8, 4, 4]
 * ```
 */
export class NormAdapter extends AttachedAdapter<GroupNorm | LayerNorm> {
  /** Multiplier of the deltas. */
  multiplier: number;

  /** Zero deltas for `target` (not attached yet). */
  constructor(target: GroupNorm | LayerNorm, options: { multiplier?: number } = {}) {
    super(target);
    this.multiplier = options.multiplier ?? 1;
    const c = target instanceof GroupNorm ? target.channels : target.features;
    this.addParameter("w_norm", zeros([c]));
    this.addParameter("b_norm", zeros([c]));
  }

  /** The adapted output. */
  override forward(x: Tensor): Tensor {
    const t = this.target;
    return scope(() => {
      const m = this.multiplier;
      const dw = this.param("w_norm").value, db = this.param("b_norm").value;
      const w = add(t.param("weight").value, m === 1 ? dw : scale(dw, m));
      const b = add(t.param("bias").value, m === 1 ? db : scale(db, m));
      return t instanceof GroupNorm
        ? groupNorm(x, t.groups, w, b, t.eps)
        : layerNorm(x, w, b, t.eps);
    });
  }
}
