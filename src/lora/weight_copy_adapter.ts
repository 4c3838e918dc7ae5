/**
 * An adapter that runs a layer with its own copy of the effective weight `W0 + dW` (and bias),
 * leaving the layer's weights untouched: the sampling speed of a merged model at the memory cost
 * of one extra weight per adapted layer.
 *
 * @module
 */
import { Linear } from "../nn/layers/linear.ts";
import type { Conv2d } from "../nn/layers/conv2d.ts";
import type { Tensor } from "../ops/tensor.ts";
import { copy, tensor } from "../ops/creation.ts";
import { add } from "../ops/binary.ts";
import { cast } from "../ops/cast.ts";
import { noGrad } from "../ops/autograd.ts";
import { matmul } from "../ops/matmul.ts";
import { conv2d } from "../ops/conv2d.ts";
import { reshape } from "../ops/reshape.ts";
import { scope } from "../ops/scope.ts";
import { fmtShape, ShapeError } from "../ops/errors.ts";
import type { HostTensor } from "./file_types.ts";
import { AttachedAdapter } from "./attached_adapter.ts";

function effective(base: Tensor, delta: HostTensor | null): Tensor {
  return noGrad(() =>
    scope(() => {
      if (!delta) return copy(base);
      if (delta.data.length !== base.size) {
        throw new ShapeError(
          `A delta of shape ${fmtShape(delta.shape)} does not fit a weight of shape ` +
            `${fmtShape(base.shape)}`,
        );
      }
      const b32 = base.dtype === "f32" ? base : cast(base, "f32");
      const sum = add(b32, tensor(delta.data, base.shape));
      return base.dtype === "f32" ? sum : cast(sum, base.dtype);
    })
  );
}

// Linear: x [..., in] -> [..., out]; Conv2d: x [B, in, H, W] -> [B, out, Ho, Wo]
/**
 * Runs `target` with `W0 + delta` and `b0 + biasDelta`, held as frozen copies in the weight's
 * dtype. Nothing in it is trainable.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { Linear } from "../nn/layers/linear.ts";
 * import { WeightCopyAdapter } from "./weight_copy_adapter.ts";
 * await getDevice();
 * const fc = new Linear(2, 2).freeze();
 * new WeightCopyAdapter(fc, { shape: [2, 2], data: new Float32Array([1, 0, 0, 1]) }).attach();
 * console.log(fc.forward(randn([3, 2])).shape); // [3, 2]
 * ```
 */
export class WeightCopyAdapter extends AttachedAdapter<Linear | Conv2d> {
  /** Builds the effective weight (and bias) copies on the GPU. */
  constructor(target: Linear | Conv2d, delta: HostTensor | null, biasDelta: HostTensor | null) {
    super(target);
    this.addParameter("weight", effective(target.param("weight").value, delta), {
      trainable: false,
    });
    if (target.hasBias) {
      this.addParameter("bias", effective(target.param("bias").value, biasDelta), {
        trainable: false,
      });
    } else if (biasDelta) {
      throw new ShapeError("A bias delta was given for a layer without a bias");
    }
  }

  /** The adapted output. */
  override forward(x: Tensor): Tensor {
    const t = this.target;
    const w = this.param("weight").value;
    const b = t.hasBias ? this.param("bias").value : null;
    if (!(t instanceof Linear)) {
      return conv2d(x, w, b, { stride: t.stride, padding: t.padding });
    }
    return scope(() => {
      const x2 = x.shape.length === 1 ? reshape(x, [1, x.shape[0]!]) : x;
      let y = matmul(x2, w, { transB: true });
      if (b) y = add(y, b);
      return x.shape.length === 1 ? reshape(y, [t.outFeatures]) : y;
    });
  }
}
