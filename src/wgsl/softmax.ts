/**
 * Softmax along one axis: one workgroup per row, numerically stable (max subtracted).
 *
 * @module
 */
import { buildKernel, type BuiltKernel, type StorageType } from "./builder.ts";
import { wgReducePrelude } from "./norm.ts";

const ROW = `let row = wid.x + wid.y * nwg.x;
if (row >= P.rows) { return; }
let base = (row / P.inner) * P.A * P.inner + row % P.inner;`;

// x: [outer, A, inner] -> y: [outer, A, inner], softmax over A (rows = outer * inner)
/** Softmax forward: max, sum of exponentials, normalize. */
export function softmaxKernel(t: StorageType, wg: number): BuiltKernel {
  return buildKernel({
    name: "softmax",
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params: [["rows", "u32"], ["A", "u32"], ["inner", "u32"]],
    workgroup: [wg],
    prelude: wgReducePrelude(wg),
    body: `${ROW}
var m = -3.4e38;
for (var a = lid.x; a < P.A; a += ${wg}u) { m = max(m, ld_x(base + a * P.inner)); }
m = wg_max(m, lid.x);
var s = 0.0;
for (var a = lid.x; a < P.A; a += ${wg}u) { s += exp(ld_x(base + a * P.inner) - m); }
let inv = 1.0 / wg_sum2(vec2<f32>(s, 0.0), lid.x).x;
for (var a = lid.x; a < P.A; a += ${wg}u) {
  let k = base + a * P.inner;
  st_y(k, exp(ld_x(k) - m) * inv);
}`,
  });
}

// y, dy: [outer, A, inner] -> dx: [outer, A, inner]
/** Softmax backward: `dx = y * (dy - sum(dy * y))` along A. */
export function softmaxGradKernel(t: StorageType, wg: number): BuiltKernel {
  return buildKernel({
    name: "softmax_grad",
    bindings: [{ name: "y", type: t }, { name: "dy", type: t }, {
      name: "dx",
      type: t,
      write: true,
    }],
    params: [["rows", "u32"], ["A", "u32"], ["inner", "u32"]],
    workgroup: [wg],
    prelude: wgReducePrelude(wg),
    body: `${ROW}
var s = 0.0;
for (var a = lid.x; a < P.A; a += ${wg}u) {
  let k = base + a * P.inner;
  s += ld_dy(k) * ld_y(k);
}
let tot = wg_sum2(vec2<f32>(s, 0.0), lid.x).x;
for (var a = lid.x; a < P.A; a += ${wg}u) {
  let k = base + a * P.inner;
  st_dx(k, ld_y(k) * (ld_dy(k) - tot));
}`,
  });
}
