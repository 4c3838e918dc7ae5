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
 * @module
 */
import { buildKernel, type BuiltKernel, type StorageType } from "./builder.ts";

/** Query (or key) rows per workgroup, one per invocation. */
export const ATTN_ROWS = 64;

/** Largest head dimension the kernels accept. */
export const ATTN_MAX_D = 256;

/** Compile-time sizes for a head dimension: padded D and rows per staged tile. */
export function attentionTile(d: number): { dmax: number; tile: number } {
  const dmax = Math.max(8, Math.ceil(d / 8) * 8);
  // two staged [tile, dmax] f32 arrays plus two [tile] arrays within 16 KiB of workgroup memory
  const tile = Math.max(1, Math.min(32, Math.floor(2048 / (dmax + 1))));
  return { dmax, tile };
}

const PARAMS: [string, "u32" | "i32" | "f32"][] = [
  ["BH", "u32"],
  ["Tq", "u32"],
  ["Tk", "u32"],
  ["D", "u32"],
  ["scale", "f32"],
  ["causal", "u32"],
  ["off", "i32"],
];

function stage(a: string, b: string, tile: number, dmax: number, extra = ""): string {
  return `var<workgroup> ${a}: array<f32, ${tile * dmax}>;
var<workgroup> ${b}: array<f32, ${tile * dmax}>;${extra}`;
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
  const { dmax, tile } = attentionTile(d);
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
    prelude: stage("ks", "vs", tile, dmax),
    body: `${PAIR}
let i = wid.x * ${ATTN_ROWS}u + lid.x;
let valid = i < P.Tq;
let qb = (bh * P.Tq + min(i, P.Tq - 1u)) * P.D;
var qr: array<f32, ${dmax}>;
var acc: array<f32, ${dmax}>;
for (var d = 0u; d < P.D; d++) { qr[d] = ld_q(qb + d) * P.scale; acc[d] = 0.0; }
var m = -1e30;
var l = 0.0;
let lim = i32(i) + P.off;
${KEY_END}
var s: array<f32, ${tile}>;
for (var j0 = 0u; j0 < jEnd; j0 += ${tile}u) {
  let n = min(${tile}u, jEnd - j0);
  let kb = (bh * P.Tk + j0) * P.D;
  for (var e = lid.x; e < n * P.D; e += ${ATTN_ROWS}u) { ks[e] = ld_k(kb + e); vs[e] = ld_v(kb + e); }
  workgroupBarrier();
  var tmax = m;
  for (var u = 0u; u < n; u++) {
    var dot = 0.0;
    let kr = u * P.D;
    for (var d = 0u; d < P.D; d++) { dot += qr[d] * ks[kr + d]; }
    let masked = P.causal != 0u && i32(j0 + u) > lim;
    s[u] = select(dot, -3.0e38, masked);
    if (!masked) { tmax = max(tmax, dot); }
  }
  if (tmax > m) {
    let corr = exp(m - tmax);
    l *= corr;
    for (var d = 0u; d < P.D; d++) { acc[d] *= corr; }
    m = tmax;
  }
  for (var u = 0u; u < n; u++) {
    if (s[u] < -1.0e38) { continue; }
    let p = exp(s[u] - m);
    l += p;
    let vr = u * P.D;
    for (var d = 0u; d < P.D; d++) { acc[d] += p * vs[vr + d]; }
  }
  workgroupBarrier();
}
if (valid) {
  let ob = (bh * P.Tq + i) * P.D;
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var d = 0u; d < P.D; d++) { st_o(ob + d, acc[d] * inv); }
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
  const { dmax, tile } = attentionTile(d);
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
    prelude: stage("ks", "vs", tile, dmax),
    body: `${PAIR}
let i = wid.x * ${ATTN_ROWS}u + lid.x;
let valid = i < P.Tq;
let row = bh * P.Tq + min(i, P.Tq - 1u);
let qb = row * P.D;
var qr: array<f32, ${dmax}>;
var dor: array<f32, ${dmax}>;
var dqr: array<f32, ${dmax}>;
var dl = 0.0;
for (var d = 0u; d < P.D; d++) {
  qr[d] = ld_q(qb + d) * P.scale;
  dor[d] = ld_dout(qb + d);
  dqr[d] = 0.0;
  dl += dor[d] * ld_o(qb + d);
}
let ls = lse[row];
let lim = i32(i) + P.off;
${KEY_END}
for (var j0 = 0u; j0 < jEnd; j0 += ${tile}u) {
  let n = min(${tile}u, jEnd - j0);
  let kb = (bh * P.Tk + j0) * P.D;
  for (var e = lid.x; e < n * P.D; e += ${ATTN_ROWS}u) { ks[e] = ld_k(kb + e); vs[e] = ld_v(kb + e); }
  workgroupBarrier();
  for (var u = 0u; u < n; u++) {
    if (P.causal != 0u && i32(j0 + u) > lim) { continue; }
    let r = u * P.D;
    var sc = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < P.D; d++) { sc += qr[d] * ks[r + d]; dp += dor[d] * vs[r + d]; }
    let ds = exp(sc - ls) * (dp - dl);
    for (var d = 0u; d < P.D; d++) { dqr[d] += ds * ks[r + d]; }
  }
  workgroupBarrier();
}
if (valid) {
  for (var d = 0u; d < P.D; d++) { st_dq(qb + d, dqr[d] * P.scale); }
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
  const { dmax, tile } = attentionTile(d);
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
    prelude: stage(
      "qs",
      "dos",
      tile,
      dmax,
      `\nvar<workgroup> lss: array<f32, ${tile}>;\nvar<workgroup> dls: array<f32, ${tile}>;`,
    ),
    body: `${PAIR}
let j = wid.x * ${ATTN_ROWS}u + lid.x;
let valid = j < P.Tk;
let kb = (bh * P.Tk + min(j, P.Tk - 1u)) * P.D;
var kr: array<f32, ${dmax}>;
var vr: array<f32, ${dmax}>;
var dkr: array<f32, ${dmax}>;
var dvr: array<f32, ${dmax}>;
for (var d = 0u; d < P.D; d++) {
  kr[d] = ld_k(kb + d) * P.scale;
  vr[d] = ld_v(kb + d);
  dkr[d] = 0.0;
  dvr[d] = 0.0;
}
// causal: query i sees key j when i >= j - off; start at the first key of this tile
var iStart = 0u;
if (P.causal != 0u) { iStart = u32(clamp(i32(wid.x * ${ATTN_ROWS}u) - P.off, 0, i32(P.Tq))); }
let first = i32(j) - P.off;
for (var i0 = iStart; i0 < P.Tq; i0 += ${tile}u) {
  let n = min(${tile}u, P.Tq - i0);
  let qb = (bh * P.Tq + i0) * P.D;
  for (var e = lid.x; e < n * P.D; e += ${ATTN_ROWS}u) { qs[e] = ld_q(qb + e); dos[e] = ld_dout(qb + e); }
  if (lid.x < n) { lss[lid.x] = lse[bh * P.Tq + i0 + lid.x]; dls[lid.x] = delta[bh * P.Tq + i0 + lid.x]; }
  workgroupBarrier();
  for (var u = 0u; u < n; u++) {
    if (P.causal != 0u && i32(i0 + u) < first) { continue; }
    let r = u * P.D;
    var sc = 0.0;
    var dp = 0.0;
    for (var d = 0u; d < P.D; d++) { sc += qs[r + d] * kr[d]; dp += dos[r + d] * vr[d]; }
    let p = exp(sc - lss[u]);
    let ds = p * (dp - dls[u]);
    for (var d = 0u; d < P.D; d++) { dvr[d] += p * dos[r + d]; dkr[d] += ds * qs[r + d]; }
  }
  workgroupBarrier();
}
if (valid) {
  for (var d = 0u; d < P.D; d++) { st_dk(kb + d, dkr[d] * P.scale); st_dv(kb + d, dvr[d]); }
}`,
  });
}
