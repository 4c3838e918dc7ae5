/**
 * Sampler kernels: a fused linear combination of up to four tensors (with read offsets, a write
 * offset and optional clipping), and a non-finite detector that records the first bad step in a
 * flag buffer without a readback.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";
import { EW_GROUP } from "./elementwise.ts";

/** Most terms one `lincomb` dispatch combines. */
export const LINCOMB_MAX_TERMS = 4;

// x0..x{k-1}: [>= o_j + n] -> y: [>= oy + n]; y[oy + i] = clip(sum_j c_j * x_j[o_j + i])
/**
 * `y[oy + i] = sum_j c_j x_j[o_j + i]` for `i < n`, clamped to `[lo, hi]` when `clip` is 1.
 * `types` holds the storage type of each input followed by the output's.
 */
export function lincombKernel(types: readonly StorageType[]): BuiltKernel {
  const k = types.length - 1;
  const terms = Array.from({ length: k }, (_, j) => `P.c${j} * ld_x${j}(P.o${j} + i)`);
  return buildKernel({
    name: `lincomb${k}`,
    bindings: [
      ...types.slice(0, k).map((type, j) => ({ name: `x${j}`, type })),
      { name: "y", type: types[k]!, write: true },
    ],
    params: [
      ["n", "u32"],
      ["oy", "u32"],
      ["clip", "u32"],
      ["lo", "f32"],
      ["hi", "f32"],
      ...Array.from({ length: k }, (_, j): [string, "f32"] => [`c${j}`, "f32"]),
      ...Array.from({ length: k }, (_, j): [string, "u32"] => [`o${j}`, "u32"]),
    ],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
var v = ${terms.join(" + ")};
if (P.clip != 0u) { v = clamp(v, P.lo, P.hi); }
st_y(P.oy + i, v);`,
  });
}

// x: [n], flag: [1] u32 -> flag[0] = step + 1 if flag[0] == 0 and some x[i] is NaN or infinite
/**
 * Marks the first step at which `x` held a NaN or an infinity: `flag[0]` (0 = none so far)
 * becomes `step + 1`. Every racing writer of one dispatch writes the same value, and a later
 * dispatch never overwrites it, so no atomics are needed. The test looks at the exponent bits,
 * which fast-math compilers cannot fold away (unlike `v != v`).
 */
export function nonFiniteKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "non_finite",
    bindings: [{ name: "x", type: t }, { name: "flag", type: "u32", write: true }],
    params: [["n", "u32"], ["step", "u32"]],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let b = bitcast<u32>(ld_x(i));
if ((b & 0x7f800000u) == 0x7f800000u && flag[0] == 0u) { flag[0] = P.step + 1u; }`,
  });
}
