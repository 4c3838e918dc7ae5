/**
 * Fused scaled-dot-product attention (flash-attention style). The forward keeps an online softmax
 * (running max, running sum, accumulator) per query row and saves the row's logsumexp; the
 * backward recomputes probabilities from it. No kernel ever holds a [Tq, Tk] score matrix: K/V
 * (or Q/dO) rows are staged through workgroup memory one tile at a time.
 *
 * Layout: q, o, dO: [BH, Tq, D]; k, v: [BH, Tk, D]; lse, delta: [BH, Tq] (f32). Rows of a (b, h)
 * pair sit in `wid.x` tiles of `ATTN_ROWS`; the pair index is `wid.y + wid.z * nwg.y`.
 * `causal` masks key j for query i when `j > i + off` (`off = Tk - Tq`).
 *
 * The head dimension is baked into each kernel and every loop over it is unrolled into vec4
 * operations: software adapters (llvmpipe / lavapipe) stop a shader after 65535 loop iterations
 * in total per invocation, so the only loops left run over keys (or queries) and tiles.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, type StorageType } from "./builder.ts";

/** Query (or key) rows per workgroup, one per invocation. */
export const ATTN_ROWS = 64;

/** Largest head dimension the kernels accept. */
export const ATTN_MAX_D = 256;

/** Compile-time sizes for a head dimension: vec4s per row and rows per staged tile. */
export function attentionTile(d: number): { vecs: number; tile: number } {
  const vecs = Math.ceil(d / 4);
  // two staged [tile, vecs] vec4 arrays plus two [tile] f32 arrays within 16 KiB
  const tile = Math.max(1, Math.min(32, Math.floor(16384 / (32 * vecs + 8))));
  return { vecs, tile };
}

const PARAMS: [string, "u32" | "i32" | "f32"][] = [
  ["BH", "u32"],
  ["Tq", "u32"],
  ["Tk", "u32"],
  ["scale", "f32"],
  ["causal", "u32"],
  ["off", "i32"],
];

/** Code generation helpers for one head dimension `d`. */
function gen(d: number) {
  const { vecs, tile } = attentionTile(d);
  const each = (f: (c: number) => string, sep = "\n") =>
    Array.from({ length: vecs }, (_, c) => f(c)).join(sep);
  const comp = (c: number, f: (e: number) => string) =>
    [0, 1, 2, 3].map((k) => (4 * c + k < d ? f(4 * c + k) : "0.0")).join(", ");
  return {
    vecs,
    tile,
    each,
    /** Row `base` of a global buffer into a private vec4 array, zero-padded. */
    loadRow: (arr: string, buf: string, base: string, mul = "") =>
      each((c) =>
        `${arr}[${c}] = vec4<f32>(${comp(c, (e) => `ld_${buf}(${base} + ${e}u)`)})${mul};`
      ),
    /** Writes a private vec4 array (times `mul`) to row `base` of a global buffer. */
    storeRow: (arr: string, buf: string, base: string, mul = "") =>
      each((c) =>
        [0, 1, 2, 3].filter((k) => 4 * c + k < d).map((k) =>
          `st_${buf}(${base} + ${4 * c + k}u, ${arr}[${c}][${k}]${mul});`
        ).join(" ")
      ),
    /** `sum dot(a[c], b[r + c])` over the row. */
    dotRow: (a: string, b: string, r: string) =>
      each((c) => `dot(${a}[${c}], ${b}[${r} + ${c}u])`, " + "),
    /** Stages rows [r0, r0 + n) of two global buffers into two workgroup vec4 tiles. */
    stage: (bufs: [string, string], tiles: [string, string], rowBase: string) => {
      const g = `${rowBase} * ${d}u + (e / ${vecs}u) * ${d}u + (e % ${vecs}u) * 4u`;
      const vec = (buf: string) =>
        `vec4<f32>(${
          [0, 1, 2, 3].map((k) => {
            const at = `ld_${buf}(g + ${k}u)`;
            return d % 4 === 0 || k === 0
              ? at
              : `select(0.0, ${at}, (e % ${vecs}u) * 4u + ${k}u < ${d}u)`;
          }).join(", ")
        })`;
      return `for (var e = lid.x; e < n * ${vecs}u; e += ${ATTN_ROWS}u) {
  let g = ${g};
  ${tiles[0]}[e] = ${vec(bufs[0])};
  ${tiles[1]}[e] = ${vec(bufs[1])};
}`;
    },
    shared: (a: string, b: string, extra = "") =>
      `var<workgroup> ${a}: array<vec4<f32>, ${tile * vecs}>;
var<workgroup> ${b}: array<vec4<f32>, ${tile * vecs}>;${extra}`,
  };
}

const PAIR = `let bh = wid.y + wid.z * nwg.y;
if (bh >= P.BH) { return; }`;

// Key range of this query tile (uniform): with causal, the last row's limit.
const KEY_END = `var jEnd = P.Tk;
if (P.causal != 0u) {
  let last = i32(min(wid.x * ${ATTN_ROWS}u + ${ATTN_ROWS}u, P.Tq)) - 1;
  jEnd = u32(clamp(last + P.off + 1, 0, i32(P.Tk)));
}`;

// q: [BH, Tq, D], k, v: [BH, Tk, D] -> o: [BH, Tq, D], lse: [BH, Tq] (f32)
/** Attention forward with an online softmax over key tiles staged in workgroup memory. */
export function attentionKernel(t: StorageType, d: number): BuiltKernel {
  const g = gen(d);
  const V = g.vecs;
  return buildKernel({
    name: "attention",
    bindings: [
      { name: "q", type: t },
      { name: "k", type: t },
      { name: "v", type: t },
      { name: "o", type: t, write: true },
      { name: "lse", write: true },
    ],
    params: PARAMS,
    workgroup: [ATTN_ROWS],
    prelude: g.shared("ks", "vs"),
    body: `${PAIR}
let i = wid.x * ${ATTN_ROWS}u + lid.x;
let valid = i < P.Tq;
let qb = (bh * P.Tq + min(i, P.Tq - 1u)) * ${d}u;
var qr: array<vec4<f32>, ${V}>;
var acc: array<vec4<f32>, ${V}>;
${g.loadRow("qr", "q", "qb", " * P.scale")}
var m = -1e30;
var l = 0.0;
let lim = i32(i) + P.off;
${KEY_END}
var s: array<f32, ${g.tile}>;
for (var j0 = 0u; j0 < jEnd; j0 += ${g.tile}u) {
  let n = min(${g.tile}u, jEnd - j0);
  ${g.stage(["k", "v"], ["ks", "vs"], "(bh * P.Tk + j0)")}
  workgroupBarrier();
  var tmax = m;
  for (var u = 0u; u < n; u++) {
    let r = u * ${V}u;
    let sc = ${g.dotRow("qr", "ks", "r")};
    let masked = P.causal != 0u && i32(j0 + u) > lim;
    s[u] = select(sc, -3.0e38, masked);
    if (!masked) { tmax = max(tmax, sc); }
  }
  if (tmax > m) {
    let corr = exp(m - tmax);
    l *= corr;
    ${g.each((c) => `acc[${c}] *= corr;`, " ")}
    m = tmax;
  }
  for (var u = 0u; u < n; u++) {
    if (s[u] < -1.0e38) { continue; }
    let p = exp(s[u] - m);
    l += p;
    let r = u * ${V}u;
    ${g.each((c) => `acc[${c}] += p * vs[r + ${c}u];`, " ")}
  }
  workgroupBarrier();
}
if (valid) {
  let ob = (bh * P.Tq + i) * ${d}u;
  let inv = select(0.0, 1.0 / l, l > 0.0);
  ${g.storeRow("acc", "o", "ob", " * inv")}
  // a row with every key masked gets output 0 and an lse that zeroes its probabilities
  lse[bh * P.Tq + i] = select(1e30, m + log(l), l > 0.0);
}`,
  });
}

// q, o, dO: [BH, Tq, D], k, v: [BH, Tk, D], lse: [BH, Tq] -> dq: [BH, Tq, D], delta: [BH, Tq]
/**
 * Attention backward to q, one invocation per query row looping over key tiles:
 * `delta = rowsum(dO * O)`, `p = exp(s - lse)`, `ds = p (dO.v - delta)`, `dq = scale sum ds k`.
 * Also writes `delta` for the key-side kernel.
 */
export function attentionGradQKernel(t: StorageType, d: number): BuiltKernel {
  const g = gen(d);
  const V = g.vecs;
  return buildKernel({
    name: "attention_grad_q",
    bindings: [
      { name: "q", type: t },
      { name: "k", type: t },
      { name: "v", type: t },
      { name: "o", type: t },
      { name: "dout", type: t },
      { name: "lse" },
      { name: "dq", type: t, write: true },
      { name: "delta", write: true },
    ],
    params: PARAMS,
    workgroup: [ATTN_ROWS],
    prelude: g.shared("ks", "vs"),
    body: `${PAIR}
let i = wid.x * ${ATTN_ROWS}u + lid.x;
let valid = i < P.Tq;
let row = bh * P.Tq + min(i, P.Tq - 1u);
let qb = row * ${d}u;
var qr: array<vec4<f32>, ${V}>;
var dor: array<vec4<f32>, ${V}>;
var orow: array<vec4<f32>, ${V}>;
var dqr: array<vec4<f32>, ${V}>;
${g.loadRow("qr", "q", "qb", " * P.scale")}
${g.loadRow("dor", "dout", "qb")}
${g.loadRow("orow", "o", "qb")}
let dl = ${g.each((c) => `dot(dor[${c}], orow[${c}])`, " + ")};
let ls = lse[row];
let lim = i32(i) + P.off;
${KEY_END}
for (var j0 = 0u; j0 < jEnd; j0 += ${g.tile}u) {
  let n = min(${g.tile}u, jEnd - j0);
  ${g.stage(["k", "v"], ["ks", "vs"], "(bh * P.Tk + j0)")}
  workgroupBarrier();
  for (var u = 0u; u < n; u++) {
    if (P.causal != 0u && i32(j0 + u) > lim) { continue; }
    let r = u * ${V}u;
    let sc = ${g.dotRow("qr", "ks", "r")};
    let dp = ${g.dotRow("dor", "vs", "r")};
    let ds = exp(sc - ls) * (dp - dl);
    ${g.each((c) => `dqr[${c}] += ds * ks[r + ${c}u];`, " ")}
  }
  workgroupBarrier();
}
if (valid) {
  ${g.storeRow("dqr", "dq", "qb", " * P.scale")}
  delta[row] = dl;
}`,
  });
}

// q, dO: [BH, Tq, D], k, v: [BH, Tk, D], lse, delta: [BH, Tq] -> dk, dv: [BH, Tk, D]
/**
 * Attention backward to k and v, one invocation per key row looping over query tiles:
 * `dv = sum p dO`, `dk = scale sum p (dO.v - delta) q`.
 */
export function attentionGradKVKernel(t: StorageType, d: number): BuiltKernel {
  const g = gen(d);
  const V = g.vecs;
  return buildKernel({
    name: "attention_grad_kv",
    bindings: [
      { name: "q", type: t },
      { name: "k", type: t },
      { name: "v", type: t },
      { name: "dout", type: t },
      { name: "lse" },
      { name: "delta" },
      { name: "dk", type: t, write: true },
      { name: "dv", type: t, write: true },
    ],
    params: PARAMS,
    workgroup: [ATTN_ROWS],
    prelude: g.shared(
      "qs",
      "dos",
      `\nvar<workgroup> lss: array<f32, ${g.tile}>;\nvar<workgroup> dls: array<f32, ${g.tile}>;`,
    ),
    body: `${PAIR}
let j = wid.x * ${ATTN_ROWS}u + lid.x;
let valid = j < P.Tk;
let kb = (bh * P.Tk + min(j, P.Tk - 1u)) * ${d}u;
var kr: array<vec4<f32>, ${V}>;
var vr: array<vec4<f32>, ${V}>;
var dkr: array<vec4<f32>, ${V}>;
var dvr: array<vec4<f32>, ${V}>;
${g.loadRow("kr", "k", "kb", " * P.scale")}
${g.loadRow("vr", "v", "kb")}
// causal: query i sees key j when i >= j - off; start at the first key of this tile
var iStart = 0u;
if (P.causal != 0u) { iStart = u32(clamp(i32(wid.x * ${ATTN_ROWS}u) - P.off, 0, i32(P.Tq))); }
let first = i32(j) - P.off;
for (var i0 = iStart; i0 < P.Tq; i0 += ${g.tile}u) {
  let n = min(${g.tile}u, P.Tq - i0);
  ${g.stage(["q", "dout"], ["qs", "dos"], "(bh * P.Tq + i0)")}
  if (lid.x < n) {
    lss[lid.x] = lse[bh * P.Tq + i0 + lid.x];
    dls[lid.x] = delta[bh * P.Tq + i0 + lid.x];
  }
  workgroupBarrier();
  for (var u = 0u; u < n; u++) {
    if (P.causal != 0u && i32(i0 + u) < first) { continue; }
    let r = u * ${V}u;
    let sc = ${g.dotRow("kr", "qs", "r")};
    let dp = ${g.dotRow("vr", "dos", "r")};
    let p = exp(sc - lss[u]);
    let ds = p * (dp - dls[u]);
    ${g.each((c) => `dvr[${c}] += p * dos[r + ${c}u]; dkr[${c}] += ds * qs[r + ${c}u];`, " ")}
  }
  workgroupBarrier();
}
if (valid) {
  ${g.storeRow("dkr", "dk", "kb", " * P.scale")}
  ${g.storeRow("dvr", "dv", "kb")}
}`,
  });
}
