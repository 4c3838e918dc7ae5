/**
 * Softmax along one axis, numerically stable (max subtracted), in two variants: one workgroup per
 * row with tree reductions (`wg` lanes), or one invocation per row (`wg` = 1: no workgroup
 * barriers, which software adapters run slowly; rows of up to `ROW_THREAD_MAX` elements).
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, rowInput, type StorageType } from "./builder.ts";
import { wgReducePrelude } from "./norm.ts";

/** Longest row the one-invocation-per-row variants take (three passes stay well under the
 * 65535 loop iterations a software adapter allows one invocation). */
export const ROW_THREAD_MAX = 16384;

/** Workgroup size of the one-invocation-per-row variants. */
export const ROW_THREAD_GROUP = 64;

function rowStart(wg: number): string {
  const row = wg === 1 ? flatIndex(ROW_THREAD_GROUP) : "wid.x + wid.y * nwg.x";
  return `let row = ${row};
if (row >= P.rows) { return; }
let base = (row / P.inner) * P.A * P.inner + row % P.inner;`;
}

/** Loop header over a row's elements: strided by lanes, or the whole row in one invocation. */
function rowLoop(wg: number, v = "a"): string {
  return wg === 1
    ? `for (var ${v} = 0u; ${v} < P.A; ${v}++)`
    : `for (var ${v} = lid.x; ${v} < P.A; ${v} += ${wg}u)`;
}

// x: [outer, A, inner] -> y: [outer, A, inner], softmax over A (rows = outer * inner)
/** Softmax forward: max, sum of exponentials, normalize (`wg` = 1: one invocation per row). */
export function softmaxKernel(t: StorageType, wg: number): BuiltKernel {
  const one = wg === 1;
  return buildKernel({
    name: one ? "softmax_thread" : "softmax",
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params: [["rows", "u32"], ["A", "u32"], ["inner", "u32"]],
    workgroup: [one ? ROW_THREAD_GROUP : wg],
    ...(one ? {} : { prelude: wgReducePrelude(wg) }),
    body: `${rowStart(wg)}
var m = -3.4e38;
${rowLoop(wg)} { m = max(m, ld_x(base + a * P.inner)); }
${one ? "" : "m = wg_max(m, lid.x);"}
var s = 0.0;
${rowLoop(wg)} { s += exp(ld_x(base + a * P.inner) - m); }
let inv = 1.0 / ${one ? "s" : "wg_sum2(vec2<f32>(s, 0.0), lid.x).x"};
${rowLoop(wg)} {
  let k = base + a * P.inner;
  st_y(k, exp(ld_x(k) - m) * inv);
}`,
  });
}

// y, dy: [outer, A, inner] -> dx: [outer, A, inner]
/** Softmax backward: `dx = y * (dy - sum(dy * y))` along A (`wg` = 1: one invocation per row). */
export function softmaxGradKernel(t: StorageType, wg: number): BuiltKernel {
  const one = wg === 1;
  return buildKernel({
    name: one ? "softmax_grad_thread" : "softmax_grad",
    bindings: [{ name: "y", type: t }, { name: "dy", type: t }, {
      name: "dx",
      type: t,
      write: true,
    }],
    params: [["rows", "u32"], ["A", "u32"], ["inner", "u32"]],
    workgroup: [one ? ROW_THREAD_GROUP : wg],
    ...(one ? {} : { prelude: wgReducePrelude(wg) }),
    body: `${rowStart(wg)}
var s = 0.0;
${rowLoop(wg)} {
  let k = base + a * P.inner;
  s += ld_dy(k) * ld_y(k);
}
let tot = ${one ? "s" : "wg_sum2(vec2<f32>(s, 0.0), lid.x).x"};
${rowLoop(wg)} {
  let k = base + a * P.inner;
  st_dx(k, ld_y(k) * (ld_dy(k) - tot));
}`,
  });
}

// x: [rows, A] f32 as vec4s -> y: [rows, A], softmax over A (A % 4 == 0)
/**
 * The one-invocation-per-row softmax for contiguous f32 rows of whole vec4s: 16-byte loads and
 * stores, a quarter of the per-lane memory operations software adapters pay for. The max and the
 * sum of exponentials come from one pass (online softmax: the sum rescaled whenever a lane's
 * max grows), so x is read twice instead of three times (llvmpipe, [16384, 256]: median 105.7
 * -> 76.9 ms, in one process, interleaved).
 */
export function softmaxVec4Kernel(): BuiltKernel {
  return buildKernel({
    name: "softmax_thread_vec4",
    bindings: [{ name: "x", type: "vec4<f32>" }, { name: "y", type: "vec4<f32>", write: true }],
    params: [["rows", "u32"], ["A4", "u32"]],
    workgroup: [ROW_THREAD_GROUP],
    body: `let row = ${flatIndex(ROW_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * P.A4;
var m4 = vec4<f32>(-3.4e38);
var s4 = vec4<f32>();
for (var a = 0u; a < P.A4; a++) {
  let v = x[base + a]; let mn = max(m4, v);
  s4 = s4 * exp(m4 - mn) + exp(v - mn); m4 = mn;
}
let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
let inv = 1.0 / dot(s4, exp(m4 - m));
for (var a = 0u; a < P.A4; a++) { y[base + a] = exp(x[base + a] - m) * inv; }`,
  });
}

/** Longest row (in vec4s) that `softmaxRegsKernel` holds in registers. */
export const SOFTMAX_REGS_MAX4 = 64;

// x: [rows, 4 n4] f32 as vec4s -> y: [rows, 4 n4], softmax over each row
/**
 * `softmaxVec4Kernel` for rows of `n4` vec4s (at most `SOFTMAX_REGS_MAX4`), compiled in: the row
 * is loaded once into registers, exponentiated once in place, then scaled, so x is read once
 * (llvmpipe, [16384, 256]: 75.2 -> 50.2 ms against the two-read online kernel); `tex` reads x
 * from a texture of one row per texel row.
 */
export function softmaxRegsKernel(n4: number, tex = false): BuiltKernel {
  const [xIn, xa] = rowInput("x", tex, "a");
  return buildKernel({
    name: `softmax_regs${tex ? " tex" : ""}`,
    bindings: [
      xIn,
      { name: "y", type: "vec4<f32>", write: true },
    ],
    params: [["rows", "u32"], ["A4", "u32"]],
    workgroup: [ROW_THREAD_GROUP],
    body: `let row = ${flatIndex(ROW_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * ${n4}u;
var xs: array<vec4<f32>, ${n4}>;
var m4 = vec4<f32>(-3.4e38);
for (var a = 0u; a < ${n4}u; a++) {
  let v = ${xa}; xs[a] = v; m4 = max(m4, v);
}
let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
var s4 = vec4<f32>();
for (var a = 0u; a < ${n4}u; a++) { let e = exp(xs[a] - m); xs[a] = e; s4 += e; }
let inv = 1.0 / (s4.x + s4.y + s4.z + s4.w);
for (var a = 0u; a < ${n4}u; a++) { y[base + a] = xs[a] * inv; }`,
  });
}

// y, dy: [rows, A] f32 as vec4s -> dx: [rows, A]
/** Backward of {@link softmaxVec4Kernel}: `dx = y * (dy - sum(dy * y))`. */
export function softmaxGradVec4Kernel(): BuiltKernel {
  return buildKernel({
    name: "softmax_grad_thread_vec4",
    bindings: [
      { name: "y", type: "vec4<f32>" },
      { name: "dy", type: "vec4<f32>" },
      { name: "dx", type: "vec4<f32>", write: true },
    ],
    params: [["rows", "u32"], ["A4", "u32"]],
    workgroup: [ROW_THREAD_GROUP],
    body: `let row = ${flatIndex(ROW_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * P.A4;
var s4 = vec4<f32>();
for (var a = 0u; a < P.A4; a++) { s4 += dy[base + a] * y[base + a]; }
let tot = s4.x + s4.y + s4.z + s4.w;
for (var a = 0u; a < P.A4; a++) { dx[base + a] = y[base + a] * (dy[base + a] - tot); }`,
  });
}

// x, y: [rows, A] -> d: [rows] (f32)
/**
 * The negated row dot product `d[r] = -sum_a x[r, a] y[r, a]`, one invocation per row: the
 * `-D = -rowsum(dO * O)` of a softmax followed by a product (`O = softmax(S) V`), whose
 * backward `dS = P * (dO V^T - D)` the dO V^T product's epilogue then computes. `vec4`: f32 rows
 * of whole vec4s (`A` then counted in vec4s), 16-byte loads.
 */
export function negRowDotKernel(t: StorageType, vec4 = false): BuiltKernel {
  const type = vec4 ? "vec4<f32>" as const : t;
  const sum = vec4
    ? `var s4 = vec4<f32>();
for (var a = 0u; a < P.A; a++) { s4 += x[base + a] * y[base + a]; }
let s = s4.x + s4.y + s4.z + s4.w;`
    : `var s = 0.0;
for (var a = 0u; a < P.A; a++) { s += ld_x(base + a) * ld_y(base + a); }`;
  return buildKernel({
    name: `neg_row_dot${vec4 ? "_vec4" : ""}`,
    bindings: [{ name: "x", type }, { name: "y", type }, { name: "d", write: true }],
    params: [["rows", "u32"], ["A", "u32"]],
    workgroup: [ROW_THREAD_GROUP],
    body: `let row = ${flatIndex(ROW_THREAD_GROUP)}; if (row >= P.rows) { return; }
let base = row * P.A;
${sum}
st_d(row, -s);`,
  });
}
