/**
 * Matrix multiply kernels, two variants:
 * - `texture`: for software adapters. Operands are packed into read-only `rgba32float` storage
 *   textures (llvmpipe inlines texture loads but loops per lane over storage-buffer loads), then
 *   an outer-product kernel computes 16x8 outputs per invocation (`../shared/probes`).
 * - `tiled`: for hardware GPUs. 64x64 output tiles staged through workgroup memory, 4x4 outputs
 *   per invocation, operands read from storage buffers with any transpose.
 *
 * @module
 */
import { type BindingSpec, buildKernel, type BuiltKernel, type StorageType } from "./builder.ts";

/** Storage types of a matmul's buffers and its epilogue bias. */
export interface MatmulTypes {
  /** Output (and `beta` input) storage. */
  c: StorageType;
  /** Storage of the bias the epilogue adds to C, `bias[m]` per row (default: no bias). */
  bias?: StorageType;
  /** Whether the bias runs along C's columns, `bias[n]` (a Linear layer's), instead of rows. */
  biasN?: boolean;
  /** Storage of a second bias with one row per batch, `sbias[b * M + m]`, added after `bias`. */
  sampleBias?: StorageType;
  /**
   * Storage of a tensor of C's shape that multiplies the product and its biases element-wise
   * before `beta`: `c = gate * (alpha acc + biases) + beta c` (a softmax's backward, `P * (dP -
   * D)`, in the product of dP).
   */
  gate?: StorageType;
  /**
   * Whether the vec4 epilogue reads the (f32) gate from an `rgba32float` texture of C's rows, B M
   * rows of N / 4 texels (software adapters load textures faster than storage buffers).
   */
  gateTexture?: boolean;
  /**
   * Whether the vec4 epilogue reads `beta`'s input, C as it was, from an `rgba32float` texture
   * copy (`cin`, laid out as `gateTexture`'s) instead of C's storage.
   */
  cTexture?: boolean;
}

/** The cache key part of a matmul's epilogue types. */
export function epilogueKey(t: MatmulTypes): string {
  return `${t.c} ${t.bias ?? "none"}${t.biasN ? " n" : ""} ${t.sampleBias ?? "none"}${
    t.gate ? ` gate ${t.gate}${t.gateTexture ? " texture" : ""}` : ""
  }${t.cTexture ? " cin" : ""}`;
}

// The biases of output (m, n) in batch bb: bias[m] or bias[n], then sbias[bb, m].
function biases(t: MatmulTypes, vec4: boolean): string {
  const n4 = "vec4<f32>(ld_bias(n), ld_bias(n + 1u), ld_bias(n + 2u), ld_bias(n + 3u))";
  const b = !t.bias ? "" : ` + ${t.biasN ? (vec4 ? n4 : "ld_bias(n)") : "ld_bias(m)"}`;
  return b + (t.sampleBias ? " + ld_sbias(bb * P.M + m)" : "");
}

// c = (alpha * acc (+ bias[m] or bias[n]) (+ sbias[bb, m])) (* gate[i]) + beta * c (beta 0
// never reads c: c may hold garbage)
function epilogue(t: MatmulTypes): string {
  const add = biases(t, false);
  return `fn out_(i: u32, m: u32, n: u32, bb: u32, acc: f32) {
  let v = (P.alpha * acc${add})${t.gate ? " * ld_gate(i)" : ""};
  if (P.beta == 0.0) { st_c(i, v); } else { st_c(i, v + P.beta * ld_c(i)); }
}`;
}

// c[i4] (4 floats from column n) = (alpha * acc (+ bias)) (* gate[i4]) + beta * c[i4], on a
// vec4<f32> C (and gate)
function epilogue4(t: MatmulTypes): string {
  const add = biases(t, true);
  return `fn out4_(i4: u32, m: u32, n: u32, bb: u32, acc: vec4<f32>) {
  let v = (P.alpha * acc${add})${
    !t.gate
      ? ""
      : t.gateTexture
      ? " * textureLoad(gate, vec2<u32>(n / 4u, bb * P.M + m))"
      : " * gate[i4]"
  };
  if (P.beta == 0.0) { c[i4] = v; } else { c[i4] = v + P.beta * ${
    t.cTexture ? "textureLoad(cin, vec2<u32>(n / 4u, bb * P.M + m))" : "c[i4]"
  }; }
}`;
}

function outBindings(t: MatmulTypes, vec4 = false): BindingSpec[] {
  const out: BindingSpec[] = [{ name: "c", type: vec4 ? "vec4<f32>" : t.c, write: true }];
  if (t.bias) out.push({ name: "bias", type: t.bias });
  if (t.sampleBias) out.push({ name: "sbias", type: t.sampleBias });
  if (t.gate) {
    out.push(
      t.gateTexture && vec4
        ? { name: "gate", kind: "texture_read" }
        : { name: "gate", type: vec4 ? "vec4<f32>" : t.gate },
    );
  }
  if (t.cTexture && vec4) out.push({ name: "cin", kind: "texture_read" });
  return out;
}

/** Rows of C per invocation of the texture kernel. */
export const TEX_ROWS = 16;
/** Columns of C per invocation of the texture kernel. */
export const TEX_COLS = 8;
/** Invocations along x per workgroup of the texture kernel (columns: 8 x 8 = 64). 16 padded
 * narrow products to 128 columns: llvmpipe, 4096x64 by 64x64 16.4 -> 3.3 ms, a 3x3 conv at 4x4
 * with batch 16 57 -> 25 ms, 512^3 unchanged. */
export const TEX_GROUP = 8;

// src: batch of [rows, cols] read through strides -> tex texel (c / 4, (b - b0) * rows + r)
/**
 * Packs a strided operand into an `rgba32float` texture: texel (x, b * rows + r) holds elements
 * (r, 4x .. 4x + 3) of batch b; columns past `cols` are zero.
 */
export function packKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "matmul_pack",
    bindings: [{ name: "src", type: t }, { name: "tex", kind: "texture_write" }],
    params: [
      ["rows", "u32"],
      ["cols", "u32"],
      ["rs", "u32"],
      ["cs", "u32"],
      ["bs", "u32"],
      ["width", "u32"],
      ["batches", "u32"],
      ["b0", "u32"],
    ],
    workgroup: [8, 8],
    body: `let x = gid.x; let y = gid.y;
if (x >= P.width || y >= P.rows * P.batches) { return; }
let b = P.b0 + y / P.rows; let r = y % P.rows;
var v = vec4<f32>();
for (var c = 0u; c < 4u; c++) {
  let col = x * 4u + c;
  if (col < P.cols) { v[c] = ld_src(b * P.bs + r * P.rs + col * P.cs); }
}
textureStore(tex, vec2<u32>(x, y), v);`,
  });
}

const SW = ["x", "y", "z", "w"];

/**
 * Rows of an operand texture folded into one texture row: `G` rows of 256 / G bytes side by side
 * in a 256-byte row (1: no fold), so that a contiguous operand with narrow rows (attention's 16-
 * and 32-wide heads) is one buffer-to-texture copy at the copy's 256-byte row pitch. Row `y`,
 * texel `x` of the unfolded texture is texel `x + (y % G) * 16 / G` of row `y / G`.
 */
export type RowFold = 1 | 2 | 4 | 8 | 16;

// The texel (x, y) of an operand texture whose rows are folded G to a row, for a row offset
// `yc` known at compile time and `y0 % G == 0`.
function foldedAt(x: string, y0: string, yc: number, G: RowFold): string {
  if (G === 1) return `vec2<u32>(${x}, ${y0} + ${yc}u)`;
  return `vec2<u32>(${x} + ${(yc % G) * (16 / G)}u, ${y0} / ${G}u + ${Math.floor(yc / G)}u)`;
}

// The loop of the kernel with A k-major (texel (x, b M + m) holds 4 consecutive k of row m,
// zero past K): 4 k per step, a guarded last step when K % 4 > 0 (B's rows past K belong to the
// next batch). `aG`, `bG`: the operands' row folds (A: M % aG == 0; B: K % bG == 0, bG <= 4).
function chunkedLoop(aG: RowFold, bG: RowFold): string[] {
  const step = (guard: boolean): string[] => {
    const out: string[] = [];
    for (let r = 0; r < TEX_ROWS; r++) {
      out.push(`  let ar${r} = textureLoad(at, ${foldedAt("k4", "arow", r, aG)});`);
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let h = 0; h < 2; h++) {
        const load = `textureLoad(bt, ${foldedAt(`c4 + ${h}u`, "(base + k0)", kk, bG)})`;
        const v = guard ? `select(vec4<f32>(), ${load}, k0 + ${kk}u < P.K)` : load;
        out.push(`  let bv${kk}_${h} = ${v};`);
      }
      for (let r = 0; r < TEX_ROWS; r++) {
        const a = `ar${r}.${SW[kk]}`;
        out.push(`  acc${r}_0 += ${a} * bv${kk}_0; acc${r}_1 += ${a} * bv${kk}_1;`);
      }
    }
    return out;
  };
  return [
    "let base = wid.z * P.K; let arow = wid.z * P.aBatch * P.M + r4 * 4u;",
    "let KB = P.K / 4u;",
    "for (var k4 = 0u; k4 < KB; k4++) {",
    "  let k0 = k4 * 4u;",
    ...step(false),
    "}",
    "if (P.K % 4u != 0u) {",
    "  let k4 = KB; let k0 = KB * 4u;",
    ...step(true),
    "}",
  ];
}

// The loop of the all-mn kernel: one k per step (B's rows folded `bG` to a texture row).
function simpleLoop(bG: RowFold): string[] {
  const lines = [
    "let base = wid.z * P.K; let abase = wid.z * P.aBatch * P.K;",
    "for (var k = 0u; k < P.K; k++) {",
  ];
  for (let q = 0; q < TEX_ROWS / 4; q++) {
    lines.push(`  let a${q} = textureLoad(at, vec2<u32>(r4 + ${q}u, abase + k));`);
  }
  const [x, y] = bG === 1
    ? ["c4", "base + k"]
    : [`c4 + ((base + k) % ${bG}u) * ${16 / bG}u`, `(base + k) / ${bG}u`];
  lines.push(`  let b0 = textureLoad(bt, vec2<u32>(${x}, ${y}));`);
  lines.push(`  let b1 = textureLoad(bt, vec2<u32>(${x} + 1u, ${y}));`);
  for (let r = 0; r < TEX_ROWS; r++) {
    const a = `a${r >> 2}.${SW[r & 3]}`;
    lines.push(`  acc${r}_0 += ${a} * b0; acc${r}_1 += ${a} * b1;`);
  }
  lines.push("}");
  return lines;
}

// at: texels (i / 4, b * K + k) of op(A)^T (aK: texels (k / 4, b * M + i) of op(A)),
// bt: texels (j / 4, b * K + k) of op(B) -> c: [B, M, N]
/**
 * The outer-product kernel over packed operands; one invocation computes 16 x 8 of C, and the
 * epilogue optionally adds a bias per row or per column; `vec4` (an f32 C with N % 4 == 0) stores
 * 16 bytes at a time instead of one float; `fold` writes a product whose columns are batches of
 * `nblk` (a convolution's batch folded into N) to C [B, M, nblk]; the workgroup is `gx` invocations
 * along N by `TEX_GROUP / gx` along M (narrow products). `aK` takes op(A) k-major, the layout of a row-major
 * operand, so that packing it is a copy; it steps 4 k at a time (the same 24 texel loads per 512
 * multiply-adds as 4 steps of the other loop). (op(B) k-major measured slower: 11-30 ms against
 * 7-18 ms for Linear-sized products, so B always runs along n.) `aG` and `bG` read operand
 * textures whose rows are folded (see `RowFold`; `aG` only with `aK`, `bG` at most 4 with `aK`).
 */
export function textureMatmulKernel(
  t: MatmulTypes,
  aK = false,
  vec4 = false,
  fold = false,
  gx = TEX_GROUP,
  aG: RowFold = 1,
  bG: RowFold = 1,
): BuiltKernel {
  if ((aG > 1 && !aK) || (aK && bG > 4)) {
    throw new Error(`The texture matmul cannot read rows folded ${aG} (A) and ${bG} (B) here`);
  }
  if (vec4 && (t.c !== "f32" || (t.gate && t.gate !== "f32"))) {
    throw new Error("The vec4 matmul epilogue needs an f32 output and gate");
  }
  const lines: string[] = [];
  for (let r = 0; r < TEX_ROWS; r++) {
    lines.push(`var acc${r}_0 = vec4<f32>(); var acc${r}_1 = vec4<f32>();`);
  }
  lines.push(...(aK ? chunkedLoop(aG, bG) : simpleLoop(bG)));
  lines.push("let col = c4 * 4u; let out = (P.b0 + wid.z) * P.M * P.N;");
  // C's element (m, n): row-major, or with `fold` column n = b * nblk + p of batch b's [M, nblk]
  const at = (m: string, n: string) =>
    fold ? `(${n} / P.nblk) * P.M * P.nblk + ${m} * P.nblk + ${n} % P.nblk` : `o + ${n}`;
  // the batch of column n
  const bb = (n: string) => fold ? `${n} / P.nblk` : "P.b0 + wid.z";
  for (let r = 0; r < TEX_ROWS; r++) {
    lines.push(`{ let m = r4 * 4u + ${r}u; if (m < P.M) { let o = out + m * P.N;`);
    if (vec4) {
      // N % 4 == 0 (and nblk % 4 == 0): each row's 8 columns are two whole vec4s
      for (let h = 0; h < 2; h++) {
        const n = `(col + ${4 * h}u)`;
        lines.push(
          `  if (${n} < P.N) { out4_((${at("m", n)}) / 4u, m, ${n}, ${bb(n)}, acc${r}_${h}); }`,
        );
      }
    } else {
      for (let c = 0; c < TEX_COLS; c++) {
        const n = `(col + ${c}u)`;
        lines.push(
          `  if (${n} < P.N) { out_(${at("m", n)}, m, ${n}, ${bb(n)}, acc${r}_${c >> 2}.${
            SW[c & 3]
          }); }`,
        );
      }
    }
    lines.push("}");
    lines.push("}");
  }
  return buildKernel({
    name: `${aK ? "matmul_texture_ak" : "matmul_texture"}${vec4 ? "_vec4" : ""}`,
    bindings: [
      { name: "at", kind: "texture_read" },
      { name: "bt", kind: "texture_read" },
      ...outBindings(t, vec4),
    ],
    // aBatch 0: one A shared by every batch (a weight), packed once
    params: [
      ["M", "u32"],
      ["N", "u32"],
      ["K", "u32"],
      ["b0", "u32"],
      ["alpha", "f32"],
      ["beta", "f32"],
      ["aBatch", "u32"],
      ...(fold ? [["nblk", "u32"] as [string, "u32"]] : []),
    ],
    workgroup: [gx, TEX_GROUP / gx],
    prelude: vec4 ? epilogue4(t) : epilogue(t),
    body: `let c4 = gid.x * 2u;
let r4 = gid.y * 4u;
${lines.join("\n")}`,
  });
}

/** Output tile side of the tiled kernel. */
export const TILE = 64;
const TK = 16;

// a: batch of op(A) [M, K] via strides, b: batch of op(B) [K, N] via strides -> c: [B, M, N]
/**
 * The tiled kernel: a 16 x 16 workgroup computes a 64 x 64 tile of C, 4 x 4 per invocation,
 * staging 64 x 16 slices of A and B in workgroup memory. Operands are read through strides, so
 * transposes cost nothing; each operand has its own storage type (an f16 weight times f32
 * activations). Batch is `wid.z`; `sbA`/`sbB` of 0 broadcast an operand.
 */
export function tiledMatmulKernel(
  t: MatmulTypes & { a: StorageType; b: StorageType },
): BuiltKernel {
  return buildKernel({
    name: "matmul_tiled",
    bindings: [{ name: "a", type: t.a }, { name: "b", type: t.b }, ...outBindings(t)],
    params: [
      ["M", "u32"],
      ["N", "u32"],
      ["K", "u32"],
      ["amk", "u32"], // stride of op(A) along m
      ["akk", "u32"], // stride of op(A) along k
      ["bkk", "u32"], // stride of op(B) along k
      ["bnk", "u32"], // stride of op(B) along n
      ["sbA", "u32"],
      ["sbB", "u32"],
      ["alpha", "f32"],
      ["beta", "f32"],
    ],
    workgroup: [16, 16],
    prelude: `${epilogue(t)}
var<workgroup> As: array<array<f32, ${TILE}>, ${TK}>;
var<workgroup> Bs: array<array<f32, ${TILE}>, ${TK}>;`,
    body: `let row0 = wid.y * ${TILE}u; let col0 = wid.x * ${TILE}u;
let aOff = wid.z * P.sbA; let bOff = wid.z * P.sbB;
let t = lid.y * 16u + lid.x;
var acc: array<vec4<f32>, 4>;
for (var k0 = 0u; k0 < P.K; k0 += ${TK}u) {
  for (var e = t; e < ${TILE * TK}u; e += 256u) {
    let kk = e / ${TILE}u; let mm = e % ${TILE}u;
    let gm = row0 + mm; let gk = k0 + kk; let gn = col0 + mm;
    var av = 0.0; var bv = 0.0;
    if (gm < P.M && gk < P.K) { av = ld_a(aOff + gm * P.amk + gk * P.akk); }
    if (gn < P.N && gk < P.K) { bv = ld_b(bOff + gk * P.bkk + gn * P.bnk); }
    As[kk][mm] = av; Bs[kk][mm] = bv;
  }
  workgroupBarrier();
  for (var kk = 0u; kk < ${TK}u; kk++) {
    let bv = vec4<f32>(Bs[kk][lid.x * 4u], Bs[kk][lid.x * 4u + 1u], Bs[kk][lid.x * 4u + 2u], Bs[kk][lid.x * 4u + 3u]);
    for (var i = 0u; i < 4u; i++) { acc[i] += As[kk][lid.y * 4u + i] * bv; }
  }
  workgroupBarrier();
}
let cOff = wid.z * P.M * P.N;
for (var i = 0u; i < 4u; i++) {
  let m = row0 + lid.y * 4u + i;
  if (m < P.M) {
    for (var j = 0u; j < 4u; j++) {
      let n = col0 + lid.x * 4u + j;
      if (n < P.N) { out_(cOff + m * P.N + n, m, n, wid.z, acc[i][j]); }
    }
  }
}`,
  });
}
