/**
 * Counter-based RNG kernels: every element's bits are a pure function of (seed, counter), made of
 * u32 xor-shift-multiply steps that wrap identically on every adapter.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";
import { EW_GROUP } from "./elementwise.ts";

/** WGSL of the hash: lowbias32 mixing of the counter under a seed-derived key. */
export const RNG_PRELUDE = `fn mix_(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
fn bits_(c: u32) -> u32 { return mix_(c ^ mix_(P.seed ^ mix_(P.hi + 0x9e3779b9u))); }
fn unif_(c: u32) -> f32 { return f32(bits_(c) >> 8u) * 5.9604644775390625e-8; }`;

/** Distributions the RNG kernel draws. */
export type RandomKind = "uniform" | "normal" | "dropout";

// y: [n]; element i uses counters offset + i (uniform, dropout) or offset + 2i, +2i+1 (normal)
/** Fills `y` with uniform [lo, hi), normal (mean a, std b) or dropout-mask values. */
export function randomKernel(kind: RandomKind, t: StorageType): BuiltKernel {
  const draw = {
    uniform: "P.a + (P.b - P.a) * unif_(P.offset + i)",
    normal: `P.a + P.b * sqrt(-2.0 * log(unif_(P.offset + 2u * i) + 5.9604644775390625e-8)) *
      cos(6.283185307179586 * unif_(P.offset + 2u * i + 1u))`,
    dropout: "select(0.0, P.b, unif_(P.offset + i) >= P.a)",
  }[kind];
  return buildKernel({
    name: `random_${kind}`,
    bindings: [{ name: "y", type: t, write: true }],
    params: [["n", "u32"], ["seed", "u32"], ["hi", "u32"], ["offset", "u32"], ["a", "f32"], [
      "b",
      "f32",
    ]],
    workgroup: [EW_GROUP],
    prelude: RNG_PRELUDE,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
st_y(i, ${draw});`,
  });
}
