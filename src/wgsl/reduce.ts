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
