/**
 * A frozen weight delta applied unmerged: `y = base(x) + x dW^T (+ db)` for a Linear,
 * `base(x) + conv(x, dW) (+ db)` for a conv. This is how LoHa, LoKr, full deltas and several
 * composed LoRAs are applied at inference without touching the base weights.
 *
 * @module
 */
import { Linear } from "../nn/layers/linear.ts";
import type { Conv2d } from "../nn/layers/conv2d.ts";
import type { Tensor } from "../ops/tensor.ts";
import { tensor } from "../ops/creation.ts";
import { add } from "../ops/binary.ts";
import { matmul } from "../ops/matmul.ts";
import { conv2d } from "../ops/conv2d.ts";
import { reshape } from "../ops/reshape.ts";
import { scope } from "../ops/scope.ts";
import { fmtShape, ShapeError } from "../ops/errors.ts";
import type { HostTensor } from "./file_types.ts";
import { AttachedAdapter } from "./attached_adapter.ts";

// Linear: x [..., in] -> [..., out], delta [out, in]; Conv2d: x [B, in, H, W], delta [out, in, k, k]
/**
 * An adapter that adds a fixed (CPU-computed) weight delta, and optionally a bias delta, to a
 * layer's output. Nothing in it is trainable.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { Linear } from "../nn/layers/linear.ts";
 * import { DeltaAdapter } from "./delta_adapter.ts";
 * await getDevice();
 * const fc = new Linear(2, 2).freeze();
 * new DeltaAdapter(fc, { shape: [2, 2], data: new Float32Array([1, 0, 0, 1]) }).attach();
 * console.log(fc.forward(randn([3, 2])).shape); // [3, 2]
 * ```
 */
export class DeltaAdapter extends AttachedAdapter<Linear | Conv2d> {
  readonly #hasBiasDelta: boolean;

  /** Uploads `delta` (the weight's shape) and `biasDelta` (`[out]`) for `target`. */
  constructor(target: Linear | Conv2d, delta: HostTensor, biasDelta: HostTensor | null = null) {
    super(target);
    const want = target.param("weight").shape;
    if (delta.shape.join() !== want.join()) {
      throw new ShapeError(
        `A weight delta of shape ${fmtShape(delta.shape)} does not fit a layer whose weight is ` +
          `${fmtShape(want)}`,
      );
    }
    this.addParameter("delta", tensor(delta.data, delta.shape), { trainable: false });
    this.#hasBiasDelta = biasDelta !== null;
    if (biasDelta) {
      if (biasDelta.shape.join() !== String(want[0])) {
        throw new ShapeError(
          `A bias delta of shape ${fmtShape(biasDelta.shape)} does not fit a layer with ` +
            `${want[0]} outputs`,
        );
      }
      this.addParameter("bias_delta", tensor(biasDelta.data, biasDelta.shape), {
        trainable: false,
      });
    }
  }

  /** The adapted output. */
  override forward(x: Tensor): Tensor {
    const t = this.target;
    return scope(() => {
      const d = this.param("delta").value;
      const db = this.#hasBiasDelta ? this.param("bias_delta").value : null;
      let z: Tensor;
      if (t instanceof Linear) {
        const x2 = x.shape.length === 1 ? reshape(x, [1, x.shape[0]!]) : x;
        z = matmul(x2, d, { transB: true });
        if (x.shape.length === 1) z = reshape(z, [t.outFeatures]);
        if (db) z = add(z, db);
      } else {
        z = conv2d(x, d, db, { stride: t.stride, padding: t.padding });
      }
      return add(t.baseForward(x), z);
    });
  }
}
