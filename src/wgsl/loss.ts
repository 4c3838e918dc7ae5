/**
 * Loss kernels: the weighted squared error of MSE and its gradient.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";

/** Workgroup size of the loss kernels. */
export const LOSS_GROUP = 256;

// pred, target: [B, ...] (inner = elements per batch item), weight: [B] -> y: [B, ...]
/** `y = weight[b] * (pred - target)^2`; without `weighted` the weight is 1 and unbound. */
export function mseKernel(t: StorageType, weighted: boolean): BuiltKernel {
  return buildKernel({
    name: `mse${weighted ? "_weighted" : ""}`,
    bindings: [
      { name: "pred", type: t },
      { name: "tgt", type: t },
      ...(weighted ? [{ name: "wt", type: t }] : []),
      { name: "y", type: t, write: true },
    ],
    params: [["n", "u32"], ["inner", "u32"]],
    workgroup: [LOSS_GROUP],
    body: `let i = ${flatIndex(LOSS_GROUP)}; if (i >= P.n) { return; }
let e = ld_pred(i) - ld_tgt(i);
st_y(i, ${weighted ? "ld_wt(i / P.inner) * " : ""}e * e);`,
  });
}

// pred, target: [B, ...], weight: [B], dy: same shape (dyStride 1) or scalar (dyStride 0) -> g: [B, ...]
/** `g = k * weight[b] * (pred - target) * dy`: the gradient to pred (`k = 2c`) or target (`-2c`). */
export function mseGradKernel(t: StorageType, weighted: boolean): BuiltKernel {
  return buildKernel({
    name: `mse_grad${weighted ? "_weighted" : ""}`,
    bindings: [
      { name: "pred", type: t },
      { name: "tgt", type: t },
      ...(weighted ? [{ name: "wt", type: t }] : []),
      { name: "dy", type: t },
      { name: "g", type: t, write: true },
    ],
    params: [["n", "u32"], ["inner", "u32"], ["dyStride", "u32"], ["k", "f32"]],
    workgroup: [LOSS_GROUP],
    body: `let i = ${flatIndex(LOSS_GROUP)}; if (i >= P.n) { return; }
let e = ld_pred(i) - ld_tgt(i);
st_g(i, P.k * ${weighted ? "ld_wt(i / P.inner) * " : ""}e * ld_dy(i * P.dyStride));`,
  });
}
