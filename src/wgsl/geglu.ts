/**
 * GEGLU kernels (Shazeer 2020): the first half of the last axis gated by GELU of the second half.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";
import { EW_GROUP, UNARY_PRELUDE } from "./elementwise.ts";

const GELU = `fn gelu_(v: f32) -> f32 { return 0.5 * v * (1.0 + erf_(v * 0.70710678118654752)); }
fn dgelu_(v: f32) -> f32 {
  return 0.5 * (1.0 + erf_(v * 0.70710678118654752)) + v * 0.3989422804014327 * exp(-0.5 * v * v);
}`;

// x: [rows, 2D] -> y: [rows, D], y = x[:, :D] * gelu(x[:, D:])
/** GEGLU forward, one pass. */
export function gegluKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "geglu",
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params: [["n", "u32"], ["D", "u32"]],
    workgroup: [EW_GROUP],
    prelude: `${UNARY_PRELUDE}\n${GELU}`,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let r = i / P.D; let c = i % P.D; let base = r * 2u * P.D + c;
st_y(i, ld_x(base) * gelu_(ld_x(base + P.D)));`,
  });
}

// x: [rows, 2D], dy: [rows, D] -> dx: [rows, 2D]
/** GEGLU backward: `dh = dy gelu(g)`, `dg = dy h gelu'(g)`. */
export function gegluGradKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "geglu_grad",
    bindings: [{ name: "x", type: t }, { name: "dy", type: t }, {
      name: "dx",
      type: t,
      write: true,
    }],
    params: [["n", "u32"], ["D", "u32"]],
    workgroup: [EW_GROUP],
    prelude: `${UNARY_PRELUDE}\n${GELU}`,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let r = i / P.D; let c = i % P.D; let base = r * 2u * P.D + c;
let h = ld_x(base); let g = ld_x(base + P.D); let d = ld_dy(i);
st_dx(base, d * gelu_(g));
st_dx(base + P.D, d * h * dgelu_(g));`,
  });
}
