/**
 * Sum reduction over any set of axes: one workgroup per output when the reduced extent is large,
 * one invocation per output when it is small.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";
import { MAX_DIMS } from "./elementwise.ts";

/** Threads per workgroup of the cooperative variant. */
export const REDUCE_GROUP = 64;

function decompose(prefix: string, varName: string, out: string): string {
  const lines = [`var ${out} = 0u; { var r = ${varName};`];
  for (let d = MAX_DIMS - 1; d >= 0; d--) {
    lines.push(
      `  { let c = r % P.${prefix}d${d}; r = r / P.${prefix}d${d}; ${out} += c * P.${prefix}s${d}; }`,
    );
  }
  lines.push("}");
  return lines.join("\n");
}

// x: [...] -> y: [kept dims]; kept dims k0..k5 with input strides, reduced r0..r5 with strides
/** `y[o] = sum over reduced coordinates of x`; `cooperative` picks the workgroup variant. */
export function sumKernel(t: StorageType, cooperative: boolean): BuiltKernel {
  const params: [string, "u32" | "f32"][] = [["n", "u32"], ["R", "u32"], ["mul", "f32"]];
  for (const p of ["k", "r"]) {
    for (let d = 0; d < MAX_DIMS; d++) params.push([`${p}d${d}`, "u32"], [`${p}s${d}`, "u32"]);
  }
  const common = {
    name: `sum_${cooperative ? "wg" : "thread"}`,
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params,
  };
  if (!cooperative) {
    return buildKernel({
      ...common,
      workgroup: [64],
      body: `let o = ${flatIndex(64)}; if (o >= P.n) { return; }
${decompose("k", "o", "base")}
var acc = 0.0;
for (var j = 0u; j < P.R; j++) {
${decompose("r", "j", "off")}
  acc += ld_x(base + off);
}
st_y(o, acc * P.mul);`,
    });
  }
  return buildKernel({
    ...common,
    workgroup: [REDUCE_GROUP],
    prelude: `var<workgroup> part: array<f32, ${REDUCE_GROUP}>;`,
    body: `let o = wid.x + wid.y * nwg.x;
if (o < P.n) {
${decompose("k", "o", "base")}
var acc = 0.0;
for (var j = lid.x; j < P.R; j += ${REDUCE_GROUP}u) {
${decompose("r", "j", "off")}
  acc += ld_x(base + off);
}
part[lid.x] = acc;
}
workgroupBarrier();
for (var s = ${REDUCE_GROUP / 2}u; s > 0u; s = s >> 1u) {
  if (lid.x < s) { part[lid.x] += part[lid.x + s]; }
  workgroupBarrier();
}
if (lid.x == 0u && o < P.n) { st_y(o, part[0] * P.mul); }`,
  });
}

/** Inner extent from which the banded sum lets a workgroup share each output. */
export const BAND_COOP_MIN = 64;

/** How the banded sum maps work: per output or per workgroup, scalar or vec4 loads. */
export interface BandSumVariant {
  /** One workgroup per output with lanes along S (else one invocation per output). */
  cooperative: boolean;
  /** f32 vec4 loads: four adjacent outputs per invocation (S = 1, n % 4 = 0), or four inner
   * elements per lane (cooperative, S % 4 = 0). */
  vec4: boolean;
}

// x: [A, n, S] contiguous -> y: [n]; y[k] = mul * sum over a < A, s < S of x[(a n + k) S + s]
/**
 * Sum of a contiguous tensor viewed as [A, n, S] over A and S (every reduction whose kept axes
 * form one contiguous band: bias gradients, leading-axis sums, last-axis sums). No division per
 * element, unlike the general kernel, and vec4 loads where the shape allows (software adapters
 * run one 16-byte load about as fast as one 4-byte load).
 */
export function bandSumKernel(t: StorageType, v: BandSumVariant): BuiltKernel {
  const x = v.vec4 ? { name: "x", type: "vec4<f32>" as const } : { name: "x", type: t };
  const common = {
    name: `sum_band_${v.cooperative ? "wg" : "thread"}${v.vec4 ? "_vec4" : ""}`,
    bindings: [x, { name: "y", type: v.vec4 ? "f32" as const : t, write: true }],
    params: [["n", "u32"], ["A", "u32"], ["S", "u32"], ["mul", "f32"]] as [
      string,
      "u32" | "f32",
    ][],
  };
  if (!v.cooperative) {
    // vec4: invocation q sums outputs 4q..4q+3 (S = 1), reading x as [A, n / 4] vec4
    return buildKernel({
      ...common,
      workgroup: [64],
      body: v.vec4
        ? `let q = ${flatIndex(64)}; let n4 = P.n / 4u; if (q >= n4) { return; }
var acc = vec4<f32>(0.0);
for (var a = 0u; a < P.A; a++) { acc += x[a * n4 + q]; }
acc *= P.mul;
st_y(4u * q, acc.x); st_y(4u * q + 1u, acc.y); st_y(4u * q + 2u, acc.z); st_y(4u * q + 3u, acc.w);`
        : `let k = ${flatIndex(64)}; if (k >= P.n) { return; }
var acc = 0.0;
for (var a = 0u; a < P.A; a++) {
  let base = (a * P.n + k) * P.S;
  for (var s = 0u; s < P.S; s++) { acc += ld_x(base + s); }
}
st_y(k, acc * P.mul);`,
    });
  }
  const load = v.vec4
    ? `let base = (a * P.n + k) * (P.S / 4u);
    for (var s = lid.x; s < P.S / 4u; s += ${REDUCE_GROUP}u) { acc4 += x[base + s]; }`
    : `let base = (a * P.n + k) * P.S;
    for (var s = lid.x; s < P.S; s += ${REDUCE_GROUP}u) { acc4.x += ld_x(base + s); }`;
  return buildKernel({
    ...common,
    workgroup: [REDUCE_GROUP],
    prelude: `var<workgroup> part: array<f32, ${REDUCE_GROUP}>;`,
    body: `let k = wid.x + wid.y * nwg.x;
var acc4 = vec4<f32>(0.0);
if (k < P.n) {
  for (var a = 0u; a < P.A; a++) {
    ${load}
  }
}
part[lid.x] = acc4.x + acc4.y + acc4.z + acc4.w;
workgroupBarrier();
for (var w = ${REDUCE_GROUP / 2}u; w > 0u; w = w >> 1u) {
  if (lid.x < w) { part[lid.x] += part[lid.x + w]; }
  workgroupBarrier();
}
if (lid.x == 0u && k < P.n) { st_y(k, part[0] * P.mul); }`,
  });
}
