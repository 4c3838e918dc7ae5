/**
 * Optimizer kernels: the AdamW update (with an optional global-norm clip factor read from the GPU)
 * and in-place gradient scaling by a clip factor.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex } from "./builder.ts";
import { EW_GROUP } from "./elementwise.ts";

const CLIP = `fn clip_() -> f32 {
  if (P.maxNorm <= 0.0) { return 1.0; }
  return min(1.0, P.maxNorm / (sqrt(sq[0]) + 1e-6));
}`;

// p, g, m, v: [n] (p, m, v updated in place); sq: [1] squared global gradient norm
/**
 * AdamW (Loshchilov & Hutter): `p -= lr wd p`, then `m = b1 m + (1 - b1) g`,
 * `v = b2 v + (1 - b2) g^2`, `p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`, where `g` is the
 * gradient times the clip factor `min(1, maxNorm / ||g||)`.
 */
export function adamwKernel(): BuiltKernel {
  return buildKernel({
    name: "adamw",
    bindings: [
      { name: "p", write: true },
      { name: "g" },
      { name: "m", write: true },
      { name: "v", write: true },
      { name: "sq" },
    ],
    params: [
      ["n", "u32"],
      ["lr", "f32"],
      ["b1", "f32"],
      ["b2", "f32"],
      ["eps", "f32"],
      ["wd", "f32"],
      ["bc1", "f32"],
      ["sbc2", "f32"],
      ["maxNorm", "f32"],
    ],
    workgroup: [EW_GROUP],
    prelude: CLIP,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let g = ld_g(i) * clip_();
let m = P.b1 * ld_m(i) + (1.0 - P.b1) * g;
let v = P.b2 * ld_v(i) + (1.0 - P.b2) * g * g;
st_m(i, m); st_v(i, v);
let p = ld_p(i) * (1.0 - P.lr * P.wd);
st_p(i, p - (P.lr / P.bc1) * m / (sqrt(v) / P.sbc2 + P.eps));`,
  });
}

// g: [n] scaled in place by min(1, maxNorm / sqrt(sq[0]))
/** Scales a gradient in place by the global-norm clip factor. */
export function clipKernel(): BuiltKernel {
  return buildKernel({
    name: "clip_grad",
    bindings: [{ name: "g", write: true }, { name: "sq" }],
    params: [["n", "u32"], ["maxNorm", "f32"]],
    workgroup: [EW_GROUP],
    prelude: CLIP,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
st_g(i, ld_g(i) * clip_());`,
  });
}
