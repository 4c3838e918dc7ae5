/**
 * Data-movement kernels: permute, slice / concat copies along an axis, zero-padded scatter,
 * nearest 2x upsampling, embedding gather and its deterministic scatter-add, dtype casts.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";

/** Workgroup size of the 1-D shape kernels. */
export const SHAPE_GROUP = 256;

const head = `let i = ${flatIndex(SHAPE_GROUP)}; if (i >= P.n) { return; }`;

// x: [s0..s(r-1)] -> y: [d0..d(r-1)], y[c] = x[sum c_k * s_k] (s: input strides per output axis)
/**
 * Gathers `x` through per-output-axis input strides (a permutation of `x`'s strides). `rank` is
 * the number of output axes after merging (1..6); it is baked into the source.
 */
export function permuteKernel(t: StorageType, rank: number): BuiltKernel {
  const params: [string, "u32"][] = [["n", "u32"]];
  for (let d = 0; d < rank; d++) params.push([`d${d}`, "u32"], [`s${d}`, "u32"]);
  const lines: string[] = ["var r = i; var src = 0u;"];
  for (let d = rank - 1; d >= 1; d--) {
    lines.push(`{ let c = r % P.d${d}; r = r / P.d${d}; src += c * P.s${d}; }`);
  }
  lines.push("src += r * P.s0;");
  return buildKernel({
    name: `permute_r${rank}`,
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params,
    workgroup: [SHAPE_GROUP],
    body: `${head}
${lines.join("\n")}
st_y(i, ld_x(src));`,
  });
}

// x: [s0..s(r-1)] f32 as vec4s -> y: [d0..d(r-1)] as vec4s (the last output axis has input
// stride 1 and a length divisible by 4, so every other stride is too)
/**
 * `permuteKernel` four elements at a time, for f32 permutations that keep a contiguous last axis
 * of whole vec4s (attention's head split): one 16-byte load and store per invocation.
 */
export function permuteVec4Kernel(rank: number): BuiltKernel {
  const params: [string, "u32"][] = [["n", "u32"]];
  for (let d = 0; d < rank; d++) params.push([`d${d}`, "u32"], [`s${d}`, "u32"]);
  const lines: string[] = ["var r = i * 4u; var src = 0u;"];
  for (let d = rank - 1; d >= 1; d--) {
    lines.push(`{ let c = r % P.d${d}; r = r / P.d${d}; src += c * P.s${d}; }`);
  }
  lines.push("src += r * P.s0;");
  return buildKernel({
    name: `permute_vec4_r${rank}`,
    bindings: [{ name: "x", type: "vec4<f32>" }, { name: "y", type: "vec4<f32>", write: true }],
    params,
    workgroup: [SHAPE_GROUP],
    body: `${head}
${lines.join("\n")}
y[i] = x[src / 4u];`,
  });
}

// x: [s0..s(r-1)] -> y: [d0..d(r-1)] (vec4: f32 as vec4s, the last output axis contiguous in x)
/**
 * `permuteKernel` (or `permuteVec4Kernel` with `vec4`) with one invocation per row of the last
 * output axis (`n` rows), which it walks with the input stride: the index divisions (software
 * adapters divide integers lane by lane) are paid once per row instead of once per element.
 */
export function permuteRowsKernel(t: StorageType, rank: number, vec4: boolean): BuiltKernel {
  const params: [string, "u32"][] = [["n", "u32"]];
  for (let d = 0; d < rank; d++) params.push([`d${d}`, "u32"], [`s${d}`, "u32"]);
  const lines: string[] = ["var r = i; var src = 0u;"];
  for (let d = rank - 2; d >= 1; d--) {
    lines.push(`{ let c = r % P.d${d}; r = r / P.d${d}; src += c * P.s${d}; }`);
  }
  lines.push("src += r * P.s0;");
  const last = `P.d${rank - 1}`, step = `P.s${rank - 1}`;
  const copy = vec4
    ? `let L4 = ${last} / 4u; let o = i * L4; let s4 = src / 4u;
for (var q = 0u; q < L4; q++) { y[o + q] = x[s4 + q]; }`
    : `let o = i * ${last};
for (var q = 0u; q < ${last}; q++) { st_y(o + q, ld_x(src + q * ${step})); }`;
  const type = vec4 ? "vec4<f32>" as const : t;
  return buildKernel({
    name: `permute_rows${vec4 ? "_vec4" : ""}_r${rank}`,
    bindings: [{ name: "x", type }, { name: "y", type, write: true }],
    params,
    workgroup: [SHAPE_GROUP],
    body: `${head}
${lines.join("\n")}
${copy}`,
  });
}

// src: [O, Ls, I], dst: [O, Ld, I]; dst[o, dOff + j, k] = src[o, sOff + j, k] for j < L
/** Copies a block of `L` positions along one axis between two tensors of the same outer/inner. */
export function axisCopyKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "axis_copy",
    bindings: [{ name: "src", type: t }, { name: "dst", type: t, write: true }],
    params: [["n", "u32"], ["L", "u32"], ["I", "u32"], ["Ls", "u32"], ["Ld", "u32"], [
      "sOff",
      "u32",
    ], ["dOff", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
let k = i % P.I; let r = i / P.I; let j = r % P.L; let o = r / P.L;
st_dst((o * P.Ld + P.dOff + j) * P.I + k, ld_src((o * P.Ls + P.sOff + j) * P.I + k));`,
  });
}

// dy: [O, L, I] -> dx: [O, Lx, I]; dx[o, j, k] = dy[o, j - start, k] inside [start, start + L), else 0
/** The adjoint of a slice: scatters `dy` into a zero tensor of the input's shape in one pass. */
export function axisPadKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "axis_pad",
    bindings: [{ name: "dy", type: t }, { name: "dx", type: t, write: true }],
    params: [["n", "u32"], ["Lx", "u32"], ["I", "u32"], ["L", "u32"], ["start", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
let k = i % P.I; let r = i / P.I; let j = r % P.Lx; let o = r / P.Lx;
var v = 0.0;
if (j >= P.start && j < P.start + P.L) { v = ld_dy((o * P.L + j - P.start) * P.I + k); }
st_dx(i, v);`,
  });
}

// x: [N, H, W] -> y: [N, 2H, 2W]
/** Nearest-neighbour 2x upsampling of the two innermost axes. */
export function upsample2xKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "upsample2x",
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params: [["n", "u32"], ["H", "u32"], ["W", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
let W2 = 2u * P.W; let H2 = 2u * P.H;
let w = i % W2; let r = i / W2; let h = r % H2; let c = r / H2;
st_y(i, ld_x((c * P.H + h / 2u) * P.W + w / 2u));`,
  });
}

// dy: [N, 2H, 2W] -> dx: [N, H, W], each dx the sum of its 2x2 block
/** The adjoint of nearest 2x upsampling: sums each 2x2 block of `dy`. */
export function upsample2xGradKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "upsample2x_grad",
    bindings: [{ name: "dy", type: t }, { name: "dx", type: t, write: true }],
    params: [["n", "u32"], ["H", "u32"], ["W", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
let W2 = 2u * P.W;
let w = i % P.W; let r = i / P.W; let h = r % P.H; let c = r / P.H;
let b = (c * 2u * P.H + 2u * h) * W2 + 2u * w;
st_dx(i, (ld_dy(b) + ld_dy(b + 1u)) + (ld_dy(b + W2) + ld_dy(b + W2 + 1u)));`,
  });
}

// weight: [V, D], ids: [P] u32 -> y: [P, D]
/** Embedding gather: `y[p, d] = weight[ids[p], d]`. */
export function embeddingKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "embedding",
    bindings: [{ name: "w", type: t }, { name: "ids", type: "u32" }, {
      name: "y",
      type: t,
      write: true,
    }],
    params: [["n", "u32"], ["D", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
let d = i % P.D; let p = i / P.D;
st_y(i, ld_w(ids[p] * P.D + d));`,
  });
}

// dy: [P, D], csr: [V + 1 row offsets | P positions sorted by row] u32 -> dw: [V, D]
/**
 * Deterministic embedding scatter-add: one invocation per `(row, d)` sums, in position order, the
 * `dy` rows of the positions that looked that row up (a CSR list built on the CPU); rows nobody
 * looked up get zero.
 */
export function embeddingGradKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "embedding_grad",
    bindings: [{ name: "dy", type: t }, { name: "csr", type: "u32" }, {
      name: "dw",
      type: t,
      write: true,
    }],
    params: [["n", "u32"], ["D", "u32"], ["V", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
let d = i % P.D; let v = i / P.D;
let a = csr[v]; let b = csr[v + 1u];
var acc = 0.0;
for (var k = a; k < b; k++) { acc += ld_dy(csr[P.V + 1u + k] * P.D + d); }
st_dw(i, acc);`,
  });
}

// x: [n] f16 read as n / 2 u32 pairs -> y: [n] f32 as n / 4 vec4s (n % 4 == 0)
/**
 * f16 -> f32 four elements per invocation: two `u32` loads unpacked with `unpack2x16float` and
 * one 16-byte store (llvmpipe loads f16 storage one lane at a time).
 */
export function castF16Vec4Kernel(): BuiltKernel {
  return buildKernel({
    name: "cast_f16_f32_vec4",
    bindings: [{ name: "x", type: "u32" }, { name: "y", type: "vec4<f32>", write: true }],
    params: [["n", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
y[i] = vec4<f32>(unpack2x16float(x[2u * i]), unpack2x16float(x[2u * i + 1u]));`,
  });
}

// x: [n] in dtype `from` -> y: [n] in dtype `to`
/** Elementwise dtype conversion (through f32). */
export function castKernel(from: StorageType, to: StorageType): BuiltKernel {
  return buildKernel({
    name: `cast_${from}_${to}`,
    bindings: [{ name: "x", type: from }, { name: "y", type: to, write: true }],
    params: [["n", "u32"]],
    workgroup: [SHAPE_GROUP],
    body: `${head}
st_y(i, ld_x(i));`,
  });
}
