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

/** Segments per octave of the normal quantile table. */
export const NORMAL_SEGMENTS = 64;
/** Octaves of the tail probability covered by the table (2^-32 .. 1). */
export const NORMAL_OCTAVES = 32;

// Standard normal from one 32-bit hash with integer operations only, so every adapter gives the
// same bits: the sign is the top bit; the other 31 bits give a tail probability p = q / 2^32
// (q odd), whose octave e (p in [2^-(e+1), 2^-e)) and position in it index a table of |z| with
// P(|Z| > z) = p in Q20 fixed point, linearly interpolated in integers; f32(z) * 2^-20 is exact.
const NORMAL_DRAW = `fn normal_(c: u32) -> f32 {
  let h = bits_(c);
  let q = ((h & 0x7fffffffu) << 1u) | 1u;
  let e = 31u - firstLeadingBit(q);
  let r = q - (1u << (31u - e));
  var F = 0u;
  if (e <= 17u) { F = r >> (17u - e); } else { F = r << (e - 17u); }
  let k = e * ${NORMAL_SEGMENTS + 1}u + (F >> 8u);
  let t0 = bitcast<i32>(tab[k]); let t1 = bitcast<i32>(tab[k + 1u]);
  var z = t0 + (((t1 - t0) * i32(F & 255u)) >> 8u);
  if ((h >> 31u) != 0u) { z = -z; }
  return f32(z) * 9.5367431640625e-7;
}`;

/** Distributions the RNG kernel draws. */
export type RandomKind = "uniform" | "normal" | "dropout";

// y: [n]; element i uses counter offset + i; tab: the normal quantile table (normal only)
/** Fills `y` with uniform [lo, hi), normal (mean a, std b) or dropout-mask values. */
export function randomKernel(kind: RandomKind, t: StorageType): BuiltKernel {
  const draw = {
    uniform: "P.a + (P.b - P.a) * unif_(P.offset + i)",
    normal: "P.a + P.b * normal_(P.offset + i)",
    dropout: "select(0.0, P.b, unif_(P.offset + i) >= P.a)",
  }[kind];
  return buildKernel({
    name: `random_${kind}`,
    bindings: kind === "normal"
      ? [{ name: "y", type: t, write: true }, { name: "tab", type: "u32" }]
      : [{ name: "y", type: t, write: true }],
    params: [["n", "u32"], ["seed", "u32"], ["hi", "u32"], ["offset", "u32"], ["a", "f32"], [
      "b",
      "f32",
    ]],
    workgroup: [EW_GROUP],
    prelude: kind === "normal" ? `${RNG_PRELUDE}\n${NORMAL_DRAW}` : RNG_PRELUDE,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
st_y(i, ${draw});`,
  });
}
