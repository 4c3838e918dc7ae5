/**
 * GEGLU kernels (Shazeer 2020): the first half of the last axis gated by GELU of the second half.
 *
 * @module
 */
import {
  type BindingSpec,
  buildKernel,
  type BuiltKernel,
  flatIndex,
  type StorageType,
} from "./builder.ts";
import { EW_GROUP, UNARY_PRELUDE } from "./elementwise.ts";

const GELU = `fn gelu_(v: f32) -> f32 { return 0.5 * v * (1.0 + erf_(v * 0.70710678118654752)); }
fn dgelu_(v: f32) -> f32 {
  return 0.5 * (1.0 + erf_(v * 0.70710678118654752)) + v * 0.3989422804014327 * exp(-0.5 * v * v);
}`;

const GELU4 = `fn gelu4_(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu_(v.x), gelu_(v.y), gelu_(v.z), gelu_(v.w));
}
fn dgelu4_(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(dgelu_(v.x), dgelu_(v.y), dgelu_(v.z), dgelu_(v.w));
}`;

// x: texture [rows, 2 D / 4 texels] (dy: [rows, D / 4 texels]) -> y: [rows, D] as vec4s (dx:
//   [rows, 2 D])
/**
 * `gegluKernel` / `gegluGradKernel` (`grad`) reading x (and dy) from texture copies, one row per
 * texel row (software adapters load textures faster than storage buffers); the grid is (vec4,
 * row), so no invocation divides. `D4` = D / 4.
 */
export function gegluTexKernel(grad: boolean): BuiltKernel {
  const bindings: BindingSpec[] = [{ name: "x", kind: "texture_read" }];
  if (grad) bindings.push({ name: "dy", kind: "texture_read" });
  bindings.push({ name: grad ? "dx" : "y", type: "vec4<f32>", write: true });
  const body = grad
    ? `let d = textureLoad(dy, vec2<u32>(c, row));
dx[row * 2u * P.D4 + c] = d * gelu4_(g);
dx[row * 2u * P.D4 + P.D4 + c] = d * h * dgelu4_(g);`
    : "y[row * P.D4 + c] = h * gelu4_(g);";
  return buildKernel({
    name: `geglu_tex${grad ? "_grad" : ""}`,
    bindings,
    params: [["rows", "u32"], ["D4", "u32"]],
    workgroup: [8, 8],
    prelude: `${UNARY_PRELUDE}\n${GELU}\n${GELU4}`,
    body: `let c = gid.x; let row = gid.y; if (c >= P.D4 || row >= P.rows) { return; }
let h = textureLoad(x, vec2<u32>(c, row)); let g = textureLoad(x, vec2<u32>(P.D4 + c, row));
${body}`,
  });
}

// x: [rows, 2D] -> y: [rows, D], y = x[:, :D] * gelu(x[:, D:])
/**
 * GEGLU forward, one pass; `vec4` (f32, D % 4 == 0) moves 16 bytes per load and store, with `n`
 * and `D` then counted in vec4s.
 */
export function gegluKernel(t: StorageType, vec4 = false): BuiltKernel {
  if (vec4) {
    return buildKernel({
      name: "geglu_vec4",
      bindings: [{ name: "x", type: "vec4<f32>" }, { name: "y", type: "vec4<f32>", write: true }],
      params: [["n", "u32"], ["D", "u32"]],
      workgroup: [EW_GROUP],
      prelude: `${UNARY_PRELUDE}\n${GELU}\n${GELU4}`,
      body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let base = (i / P.D) * 2u * P.D + i % P.D;
y[i] = x[base] * gelu4_(x[base + P.D]);`,
    });
  }
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
/** GEGLU backward: `dh = dy gelu(g)`, `dg = dy h gelu'(g)` (`vec4` as in `gegluKernel`). */
export function gegluGradKernel(t: StorageType, vec4 = false): BuiltKernel {
  if (vec4) {
    return buildKernel({
      name: "geglu_grad_vec4",
      bindings: [
        { name: "x", type: "vec4<f32>" },
        { name: "dy", type: "vec4<f32>" },
        { name: "dx", type: "vec4<f32>", write: true },
      ],
      params: [["n", "u32"], ["D", "u32"]],
      workgroup: [EW_GROUP],
      prelude: `${UNARY_PRELUDE}\n${GELU}\n${GELU4}`,
      body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let base = (i / P.D) * 2u * P.D + i % P.D;
let h = x[base]; let g = x[base + P.D]; let d = dy[i];
dx[base] = d * gelu4_(g);
dx[base + P.D] = d * h * dgelu4_(g);`,
    });
  }
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
