/**
 * Normalization kernels: a row kernel (one workgroup per contiguous row, for group norm and layer
 * norm), a channel kernel (one workgroup per channel, strided over batch and space, for batch
 * norm) and the per-channel gradient kernel that serves all three.
 *
 * @module
 */
import {
  type BindingSpec,
  buildKernel,
  type BuiltKernel,
  flatIndex,
  rowInput,
  type StorageType,
} from "./builder.ts";

/**
 * Threads per workgroup of the normalization and softmax kernels for `n` elements per row: 64,
 * or 256 for long rows. Software adapters (llvmpipe / lavapipe) stop a shader after 65535 loop
 * iterations per invocation, so the wide variant keeps rows of up to ~5M elements correct there.
 */
export function normGroup(n: number): number {
  return n > 8192 ? 256 : 64;
}

/**
 * Workgroup tree reductions over `wg` lanes: `wg_sum2` sums a vec2, `wg_max` takes a maximum.
 * Call them from uniform control flow (they contain barriers).
 */
export function wgReducePrelude(wg: number): string {
  return `var<workgroup> red_: array<vec2<f32>, ${wg}>;
fn wg_sum2(v: vec2<f32>, i: u32) -> vec2<f32> {
  red_[i] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (i < s) { red_[i] += red_[i + s]; }
    workgroupBarrier();
  }
  let r = red_[0];
  workgroupBarrier();
  return r;
}
fn wg_max(v: f32, i: u32) -> f32 {
  red_[i] = vec2<f32>(v, 0.0);
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (i < s) { red_[i].x = max(red_[i].x, red_[i + s].x); }
    workgroupBarrier();
  }
  let r = red_[0].x;
  workgroupBarrier();
  return r;
}`;
}

/** Workgroup size of the one-invocation-per-row norm variants (`wg` = 1). */
export const NORM_THREAD_GROUP = 64;

function rowStart(wg: number): string {
  const row = wg === 1 ? flatIndex(NORM_THREAD_GROUP) : "wid.x + wid.y * nwg.x";
  return `let row = ${row};
if (row >= P.rows) { return; }
let base = row * P.L;`;
}

/** Loop over a row: strided by lanes, or the whole row in one invocation (`wg` = 1). */
function overRow(wg: number): string {
  return wg === 1 ? "for (var j = 0u; j < P.L; j++)" : `for (var j = lid.x; j < P.L; j += ${wg}u)`;
}

/** A row total: the tree reduction over lanes, or the invocation's own sum (`wg` = 1). */
function total(wg: number, v: string): string {
  return wg === 1 ? v : `wg_sum2(${v}, lid.x)`;
}

/** The input `x` and the optional per-channel `w` and `b` bindings of a normalization. */
function affineInputs(t: StorageType, hasW: boolean, hasB: boolean): BindingSpec[] {
  const bindings: BindingSpec[] = [{ name: "x", type: t }];
  if (hasW) bindings.push({ name: "w", type: t });
  if (hasB) bindings.push({ name: "b", type: t });
  return bindings;
}

// The SiLU epilogue of a fused norm, `v = silu(v)` on an f32 or a vec4<f32> `v`, written as the
// unary op writes it (the same f32 rounding).
const SILU = "v = v * (1.0 / (1.0 + exp(-v)));";

// The gradient `dn` into a fused norm's pre-activation `pre = xh * w + b` (f32 or vec4; `w`, `b`
// WGSL expressions, or null when the norm has none), recomputed from the normalized input:
// `dn = dy * silu'(pre)`, silu'(pre) = s (1 + pre (1 - s)), s = sigmoid(pre), as the unary op's
// derivative is written.
function siluGrad(dy: string, xh: string, w: string | null, b: string | null): string {
  return `let pre = ${xh}${w ? ` * ${w}` : ""}${b ? ` + ${b}` : ""};
  let sg = 1.0 / (1.0 + exp(-pre));
  let dn = ${dy} * (sg * (1.0 + pre * (1.0 - sg)));`;
}

// x: [rows, L] (row r = (b, g), channel of element j is (r % G) * Cg + j / S), w, b: [C]
//   -> y: [rows, L], mean: [rows], rstd: [rows] (f32)
/**
 * Row normalization forward (group norm, layer norm): two-pass mean and variance per row, one
 * workgroup of `wg` lanes per row, or (`wg` = 1) one invocation per row with no barriers; `silu`
 * applies SiLU to the output (a fused group norm + SiLU).
 */
export function rowNormKernel(
  t: StorageType,
  hasW: boolean,
  hasB: boolean,
  wg: number,
  silu = false,
): BuiltKernel {
  const bindings = affineInputs(t, hasW, hasB);
  bindings.push(
    { name: "y", type: t, write: true },
    { name: "mean", write: true },
    { name: "rstd", write: true },
  );
  const one = wg === 1;
  return buildKernel({
    name: `${one ? "row_norm_thread" : "row_norm"}${silu ? " silu" : ""}`,
    bindings,
    params: [["rows", "u32"], ["L", "u32"], ["S", "u32"], ["Cg", "u32"], ["G", "u32"], [
      "eps",
      "f32",
    ]],
    workgroup: [one ? NORM_THREAD_GROUP : wg],
    ...(one ? {} : { prelude: wgReducePrelude(wg) }),
    body: `${rowStart(wg)}
var s = 0.0;
${overRow(wg)} { s += ld_x(base + j); }
let mu = ${total(wg, "vec2<f32>(s, 0.0)")}.x / f32(P.L);
var q = 0.0;
${overRow(wg)} { let d = ld_x(base + j) - mu; q += d * d; }
let r = inverseSqrt(${total(wg, "vec2<f32>(q, 0.0)")}.x / f32(P.L) + P.eps);
let c0 = (row % P.G) * P.Cg;
${overRow(wg)} {
  let c = c0 + j / P.S;
  var v = (ld_x(base + j) - mu) * r;
  ${hasW ? "v = v * ld_w(c);" : ""}
  ${hasB ? "v = v + ld_b(c);" : ""}
  ${silu ? `${SILU}\n  ` : ""}st_y(base + j, v);
}
${one ? "" : "if (lid.x == 0u) "}{ mean[row] = mu; rstd[row] = r; }`,
  });
}

// x, dy: [rows, L], w: [C], mean, rstd: [rows], acc: [rows, L] -> dx: [rows, L]
/**
 * Row normalization backward to x: `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))`,
 * `g = dy * w` (`wg` = 1: one invocation per row); with `acc`, x's gradient accumulated so far
 * is added to dx in the same pass. `silu`: the forward applied SiLU to `n = xhat * w + b`, so
 * `g = dy * silu'(n) * w`, n recomputed (`hasB`: with the bias, bound after `w` as `bias`).
 */
export function rowNormGradKernel(
  t: StorageType,
  hasW: boolean,
  wg: number,
  acc = false,
  silu = false,
  hasB = false,
): BuiltKernel {
  const one = wg === 1;
  const bindings: BindingSpec[] = [{ name: "x", type: t }, { name: "dy", type: t }];
  if (hasW) bindings.push({ name: "w", type: t });
  if (silu && hasB) bindings.push({ name: "bias", type: t });
  bindings.push({ name: "mean" }, { name: "rstd" }, { name: "dx", type: t, write: true });
  if (acc) bindings.push({ name: "acc", type: t });
  // under silu, g and the normalized input xh of element j
  const gx = silu
    ? `let c = c0 + j / P.S; let xh = (ld_x(base + j) - mu) * r;
  ${siluGrad("ld_dy(base + j)", "xh", hasW ? "ld_w(c)" : null, hasB ? "ld_bias(c)" : null)}
  let g = dn${hasW ? " * ld_w(c)" : ""};`
    : null;
  const g = `let g = ld_dy(base + j)${hasW ? " * ld_w(c0 + j / P.S)" : ""};`;
  return buildKernel({
    name: `${one ? "row_norm_grad_thread" : "row_norm_grad"}${silu ? " silu" : ""}`,
    bindings,
    params: [["rows", "u32"], ["L", "u32"], ["S", "u32"], ["Cg", "u32"], ["G", "u32"]],
    workgroup: [one ? NORM_THREAD_GROUP : wg],
    ...(one ? {} : { prelude: wgReducePrelude(wg) }),
    body: `${rowStart(wg)}
let mu = mean[row]; let r = rstd[row];
let c0 = (row % P.G) * P.Cg;
var acc = vec2<f32>(0.0, 0.0);
${overRow(wg)} {
  ${gx ?? g}
  acc += vec2<f32>(g, g * ${gx ? "xh" : "(ld_x(base + j) - mu) * r"});
}
let m = ${total(wg, "acc")} / f32(P.L);
${overRow(wg)} {
  ${gx ?? `${g}\n  let xh = (ld_x(base + j) - mu) * r;`}
  st_dx(base + j, r * (g - m.x - xh * m.y)${acc ? " + ld_acc(base + j)" : ""});
}`,
  });
}

// The affine weight of elements 4j .. 4j + 3 of a row: per element (S = 1, a layer norm: w read
// as vec4s) or one channel for the four (S % 4 == 0), loaded once per channel by `rowLoop4`.
function weight4(perElem: boolean, name: string): string {
  return perElem ? `${name}[j]` : `vec4<f32>(ch_${name})`;
}

// A loop over a row's vec4s j = 0 .. L4 - 1 around `body`; for rows of whole channels (S % 4 ==
// 0) it runs channel by channel, loading the channel's weights (`names`) once and dividing no
// index (software adapters divide integers lane by lane).
function rowLoop4(perElem: boolean, names: string[], body: string): string {
  if (perElem) {
    return `for (var j = 0u; j < P.L4; j++) {
${body}
}`;
  }
  const loads = names.map((n) => `let ch_${n} = ld_${n}(c0 + cc);`).join(" ");
  return `{ var j = 0u; let S4 = P.S / 4u;
for (var cc = 0u; cc < P.Cg; cc++) {
  ${loads}
  for (var s4 = 0u; s4 < S4; s4++) {
${body}
  j++;
  }
} }`;
}

function affine4(perElem: boolean, name: string): BindingSpec {
  return perElem ? { name, type: "vec4<f32>" } : { name };
}

// x: [rows, L] f32 as vec4s (L % 4 == 0; S == 1 or S % 4 == 0), w, b: [C] -> y, mean, rstd
/**
 * `rowNormKernel`'s one-invocation-per-row variant with 16-byte loads and stores, for f32 rows of
 * whole vec4s whose four elements share a channel (`S % 4 == 0`) or have one each (`perElem`,
 * S = 1: a layer norm, the weight and bias read as vec4s). The mean and variance come from one
 * pass (Welford's update per vec4 lane, the four lanes combined exactly), so x is read twice
 * instead of three times (llvmpipe, group norm [16, 64, 16, 16] g16: 7.4 -> 5.5 ms). `silu`
 * applies SiLU to the output.
 */
export function rowNormVec4Kernel(
  hasW: boolean,
  hasB: boolean,
  perElem: boolean,
  tex = false,
  silu = false,
): BuiltKernel {
  const [xIn, xj] = rowInput("x", tex);
  const bindings: BindingSpec[] = [xIn];
  if (hasW) bindings.push(affine4(perElem, "w"));
  if (hasB) bindings.push(affine4(perElem, "b"));
  bindings.push(
    { name: "y", type: "vec4<f32>", write: true },
    { name: "mean", write: true },
    { name: "rstd", write: true },
  );
  return buildKernel({
    name: `row_norm_thread_vec4${tex ? " tex" : ""}${silu ? " silu" : ""}`,
    bindings,
    params: [["rows", "u32"], ["L4", "u32"], ["S", "u32"], ["Cg", "u32"], ["G", "u32"], [
      "eps",
      "f32",
    ]],
    workgroup: [NORM_THREAD_GROUP],
    body: `let row = ${flatIndex(NORM_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * P.L4; let L = f32(P.L4 * 4u);
var m4 = vec4<f32>(); var q4 = vec4<f32>();
for (var j = 0u; j < P.L4; j++) {
  let v = ${xj}; let d = v - m4; m4 += d * (1.0 / f32(j + 1u)); q4 += d * (v - m4);
}
let mu = (m4.x + m4.y + m4.z + m4.w) * 0.25;
let dm = m4 - mu; let q = q4 + f32(P.L4) * dm * dm;
let r = inverseSqrt((q.x + q.y + q.z + q.w) / L + P.eps);
let c0 = (row % P.G) * P.Cg;
${
      rowLoop4(
        perElem,
        [...(hasW ? ["w"] : []), ...(hasB ? ["b"] : [])],
        `  var v = (${xj} - mu) * r;
  ${hasW ? `v = v * ${weight4(perElem, "w")};` : ""}
  ${hasB ? `v = v + ${weight4(perElem, "b")};` : ""}
  ${silu ? `${SILU}\n  ` : ""}y[base + j] = v;`,
      )
    }
mean[row] = mu; rstd[row] = r;`,
  });
}

// x, dy: [rows, L] f32 as vec4s, w: [C], mean, rstd: [rows], acc: [rows, L] -> dx: [rows, L]
/**
 * `rowNormGradKernel`'s vec4 variant (the same rows as {@link rowNormVec4Kernel}; `silu` and
 * `hasB` as there).
 */
export function rowNormGradVec4Kernel(
  hasW: boolean,
  perElem: boolean,
  acc = false,
  tex = false,
  silu = false,
  hasB = false,
): BuiltKernel {
  const [xIn, xj] = rowInput("x", tex), [dyIn, dyj] = rowInput("dy", tex);
  const bindings: BindingSpec[] = [xIn, dyIn];
  if (hasW) bindings.push(affine4(perElem, "w"));
  if (silu && hasB) bindings.push(affine4(perElem, "bias"));
  bindings.push({ name: "mean" }, { name: "rstd" }, {
    name: "dx",
    type: "vec4<f32>",
    write: true,
  });
  if (acc) bindings.push({ name: "acc", type: "vec4<f32>" });
  const g = `${dyj}${hasW ? ` * ${weight4(perElem, "w")}` : ""}`;
  const ws = [...(hasW ? ["w"] : []), ...(silu && hasB ? ["bias"] : [])];
  // under silu, g and the normalized input xh of vec4 j
  const w = hasW ? weight4(perElem, "w") : null;
  const gx = silu
    ? `  let xh = (${xj} - mu) * r;
  ${siluGrad(dyj, "xh", w, hasB ? weight4(perElem, "bias") : null)}
  let g = dn${w ? ` * ${w}` : ""};`
    : null;
  return buildKernel({
    name: `row_norm_grad_thread_vec4${tex ? " tex" : ""}${silu ? " silu" : ""}`,
    bindings,
    params: [["rows", "u32"], ["L4", "u32"], ["S", "u32"], ["Cg", "u32"], ["G", "u32"]],
    workgroup: [NORM_THREAD_GROUP],
    body: `let row = ${flatIndex(NORM_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * P.L4; let L = f32(P.L4 * 4u);
let mu = mean[row]; let r = rstd[row];
let c0 = (row % P.G) * P.Cg;
var a = vec4<f32>(); var b = vec4<f32>();
${
      rowLoop4(
        perElem,
        ws,
        gx ? `${gx}\n  a += g; b += g * xh;` : `  let g = ${g};
  a += g; b += g * (${xj} - mu) * r;`,
      )
    }
let mx = (a.x + a.y + a.z + a.w) / L; let my = (b.x + b.y + b.z + b.w) / L;
${
      rowLoop4(
        perElem,
        ws,
        `${
          gx ?? `  let g = ${g};
  let xh = (${xj} - mu) * r;`
        }
  dx[base + j] = r * (g - mx - xh * my)${acc ? " + acc[base + j]" : ""};`,
      )
    }`,
  });
}

const CHANNEL = `let c = wid.x + wid.y * nwg.x;
if (c >= P.C) { return; }
let n = P.B * P.S;`;

/** Element `i` of channel `c` in a [B, C, S] tensor. */
const AT = "((i / P.S) * P.C + c) * P.S + i % P.S";

// x: [B, C, S], w, b: [C] -> y: [B, C, S], mean, rstd: [C] (f32); running mean / var: [C]
/**
 * Batch norm forward, one workgroup per channel. `training`: batch statistics (two-pass), and
 * when `track` the running statistics are updated in place with momentum (unbiased variance);
 * otherwise the running statistics normalize. Always writes the mean and rstd used.
 */
export function batchNormKernel(
  t: StorageType,
  training: boolean,
  track: boolean,
  hasW: boolean,
  hasB: boolean,
  wg: number,
): BuiltKernel {
  const bindings = affineInputs(t, hasW, hasB);
  if (track || !training) {
    bindings.push({ name: "rm", type: t, write: training }, {
      name: "rv",
      type: t,
      write: training,
    });
  }
  bindings.push(
    { name: "y", type: t, write: true },
    { name: "mean", write: true },
    { name: "rstd", write: true },
  );
  const stats = training
    ? `var s = 0.0;
for (var i = lid.x; i < n; i += ${wg}u) { s += ld_x(${AT}); }
let mu = wg_sum2(vec2<f32>(s, 0.0), lid.x).x / f32(n);
var q = 0.0;
for (var i = lid.x; i < n; i += ${wg}u) { let d = ld_x(${AT}) - mu; q += d * d; }
let va = wg_sum2(vec2<f32>(q, 0.0), lid.x).x / f32(n);
let r = inverseSqrt(va + P.eps);
${
      track
        ? `if (lid.x == 0u) {
  st_rm(c, (1.0 - P.momentum) * ld_rm(c) + P.momentum * mu);
  st_rv(c, (1.0 - P.momentum) * ld_rv(c) + P.momentum * va * f32(n) / f32(max(n, 2u) - 1u));
}`
        : ""
    }`
    : `let mu = ld_rm(c); let r = inverseSqrt(ld_rv(c) + P.eps);`;
  return buildKernel({
    name: `batch_norm_${training ? "train" : "eval"}`,
    bindings,
    params: [["C", "u32"], ["B", "u32"], ["S", "u32"], ["eps", "f32"], ["momentum", "f32"]],
    workgroup: [wg],
    prelude: wgReducePrelude(wg),
    body: `${CHANNEL}
${stats}
let a = r${hasW ? " * ld_w(c)" : ""};
let sh = ${hasB ? "ld_b(c)" : "0.0"} - mu * a;
for (var i = lid.x; i < n; i += ${wg}u) { let k = ${AT}; st_y(k, ld_x(k) * a + sh); }
if (lid.x == 0u) { mean[c] = mu; rstd[c] = r; }`,
  });
}

/** What the per-channel gradient kernel writes. */
export interface ChannelGradFlags {
  /** Backward to x (batch norm only): with batch statistics, with fixed statistics, or none. */
  dx: "train" | "eval" | "none";
  /** Whether a weight multiplies xhat (used for dx, and for n under `silu`). */
  hasW: boolean;
  /** Write `dw[c] = sum(dy * xhat)`. */
  dw: boolean;
  /** Write `db[c] = sum(dy)`. */
  db: boolean;
  /**
   * A fused row norm's SiLU (with `dx` "none"): the sums take `dn = dy * silu'(n)` for dy, n =
   * xhat * w + b recomputed (w bound when `hasW`, the bias after it when `hasB`).
   */
  silu?: boolean;
  /** Whether the norm has a bias (used under `silu`). */
  hasB?: boolean;
}

// Under a fused SiLU, channel c's weight `cw` and bias `cb` (those the norm has), loaded once.
function channelAffine(hasW: boolean, hasB: boolean): string {
  const loads = [hasW ? "let cw = ld_w(c);" : "", hasB ? "let cb = ld_bias(c);" : ""];
  return `${loads.filter((l) => l !== "").join(" ")}\n`;
}

// x, dy: [B, C, S] f32 as vec4s (S % 4 == 0), w, bias: [C], mean, rstd: [B * sb + C / cdiv]
//   -> dw, db: [C]
/**
 * `channelGradKernel`'s weight and bias sums (no dx) four positions at a time, for f32 maps of
 * whole vec4s (a group norm's): 16-byte loads, and one statistics load and index computation per
 * four elements. `silu`, `hasW` and `hasB` as in {@link ChannelGradFlags}.
 */
export function channelGradVec4Kernel(
  dw: boolean,
  db: boolean,
  wg: number,
  silu = false,
  hasW = false,
  hasB = false,
): BuiltKernel {
  const bindings: BindingSpec[] = [{ name: "x", type: "vec4<f32>" }, {
    name: "dy",
    type: "vec4<f32>",
  }];
  if (silu && hasW) bindings.push({ name: "w" });
  if (silu && hasB) bindings.push({ name: "bias" });
  bindings.push({ name: "mean" }, { name: "rstd" });
  if (dw) bindings.push({ name: "dw", write: true });
  if (db) bindings.push({ name: "db", write: true });
  return buildKernel({
    name: `norm_channel_grad_vec4${silu ? " silu" : ""}`,
    bindings,
    params: [["C", "u32"], ["B", "u32"], ["S", "u32"], ["sb", "u32"], ["cdiv", "u32"]],
    workgroup: [wg],
    prelude: wgReducePrelude(wg),
    body: `let c = wid.x + wid.y * nwg.x;
if (c >= P.C) { return; }
let S4 = P.S / 4u; let n4 = P.B * S4; let cs = c / P.cdiv;
${silu ? channelAffine(hasW, hasB) : ""}var a = vec4<f32>(); var b = vec4<f32>();
for (var i = lid.x; i < n4; i += ${wg}u) {
  let bb = i / S4;
  let k = (bb * P.C + c) * S4 + i % S4;
  let st = bb * P.sb + cs;
  ${
      silu
        ? `let xh = (x[k] - mean[st]) * rstd[st];
  ${siluGrad("dy[k]", "xh", hasW ? "cw" : null, hasB ? "cb" : null)}
  a += dn; b += dn * xh;`
        : `let g = dy[k];
  a += g; b += g * (x[k] - mean[st]) * rstd[st];`
    }
}
let sums = wg_sum2(vec2<f32>(a.x + a.y + a.z + a.w, b.x + b.y + b.z + b.w), lid.x);
if (lid.x == 0u) {
  ${dw ? "st_dw(c, sums.y);" : ""}
  ${db ? "st_db(c, sums.x);" : ""}
}`,
  });
}

// x, dy: [B, C, S], w, bias: [C], mean, rstd: [B * sb + C / cdiv] (f32)
//   -> dx: [B, C, S], dw, db: [C]
/**
 * Per-channel gradient sums, one workgroup per channel: `dw = sum(dy * xhat)`, `db = sum(dy)`,
 * where element (b, c, s) normalizes with statistics `b * sb + c / cdiv` (group norm: sb = G,
 * cdiv = C / G; layer norm: S = 1, sb = 1, cdiv = C; batch norm: sb = 0, cdiv = 1). With `dx` it
 * also writes batch norm's input gradient.
 */
export function channelGradKernel(
  t: StorageType,
  f: ChannelGradFlags,
  wg: number,
): BuiltKernel {
  const bindings: BindingSpec[] = [{ name: "x", type: t }, { name: "dy", type: t }];
  if ((f.dx !== "none" || f.silu) && f.hasW) bindings.push({ name: "w", type: t });
  if (f.silu && f.hasB) bindings.push({ name: "bias", type: t });
  bindings.push({ name: "mean" }, { name: "rstd" });
  if (f.dx !== "none") bindings.push({ name: "dx", type: t, write: true });
  if (f.dw) bindings.push({ name: "dw", type: t, write: true });
  if (f.db) bindings.push({ name: "db", type: t, write: true });
  const wc = f.dx !== "none" && f.hasW ? "ld_w(c)" : "1.0";
  const dx = f.dx === "none" ? "" : `let a = rstd[c] * ${wc};
let m = sums / f32(n);
for (var i = lid.x; i < n; i += ${wg}u) {
  let k = ${AT};
  ${
    f.dx === "train"
      ? "let xh = (ld_x(k) - mean[c]) * rstd[c]; st_dx(k, a * (ld_dy(k) - m.x - xh * m.y));"
      : "st_dx(k, a * ld_dy(k));"
  }
}`;
  return buildKernel({
    name: `norm_channel_grad${f.silu ? " silu" : ""}`,
    bindings,
    params: [["C", "u32"], ["B", "u32"], ["S", "u32"], ["sb", "u32"], ["cdiv", "u32"]],
    workgroup: [wg],
    prelude: wgReducePrelude(wg),
    body: `${CHANNEL}
let cs = c / P.cdiv;
${f.silu ? channelAffine(f.hasW, f.hasB ?? false) : ""}var acc = vec2<f32>(0.0, 0.0);
for (var i = lid.x; i < n; i += ${wg}u) {
  let k = ${AT};
  let st = (i / P.S) * P.sb + cs;
  ${
      f.silu
        ? `let xh = (ld_x(k) - mean[st]) * rstd[st];
  ${siluGrad("ld_dy(k)", "xh", f.hasW ? "cw" : null, f.hasB ? "cb" : null)}
  acc += vec2<f32>(dn, dn * xh);`
        : `let g = ld_dy(k);
  acc += vec2<f32>(g, g * (ld_x(k) - mean[st]) * rstd[st]);`
    }
}
let sums = wg_sum2(acc, lid.x);
${dx}
if (lid.x == 0u) {
  ${f.dw ? "st_dw(c, sums.y);" : ""}
  ${f.db ? "st_db(c, sums.x);" : ""}
}`,
  });
}

/** Longest row (in vec4s) that the register variants of the layer norm kernels hold. */
export const NORM_REGS_MAX4 = 32;

// x: [rows, 4 n4] f32 as vec4s, w, b: [4 n4] as vec4s -> y, mean, rstd
/**
 * `rowNormVec4Kernel` for layer norm rows of `n4` vec4s (at most `NORM_REGS_MAX4`), compiled in:
 * the row is loaded once into registers, so the mean, the variance and the output read x once
 * instead of three times (storage loads are the slow part on software adapters); `tex` reads x
 * from a texture of one row per texel row; `silu` applies SiLU to the output.
 */
export function rowNormRegsKernel(
  hasW: boolean,
  hasB: boolean,
  n4: number,
  tex = false,
  silu = false,
): BuiltKernel {
  const [xIn, xj] = rowInput("x", tex);
  const bindings: BindingSpec[] = [xIn];
  if (hasW) bindings.push({ name: "w", type: "vec4<f32>" });
  if (hasB) bindings.push({ name: "b", type: "vec4<f32>" });
  bindings.push(
    { name: "y", type: "vec4<f32>", write: true },
    { name: "mean", write: true },
    { name: "rstd", write: true },
  );
  return buildKernel({
    name: `row_norm_regs${tex ? " tex" : ""}${silu ? " silu" : ""}`,
    bindings,
    params: [["rows", "u32"], ["eps", "f32"]],
    workgroup: [NORM_THREAD_GROUP],
    body: `let row = ${flatIndex(NORM_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * ${n4}u; let L = ${4 * n4}.0;
var xs: array<vec4<f32>, ${n4}>;
var s = vec4<f32>();
for (var j = 0u; j < ${n4}u; j++) { let v = ${xj}; xs[j] = v; s += v; }
let mu = (s.x + s.y + s.z + s.w) / L;
var q = vec4<f32>();
for (var j = 0u; j < ${n4}u; j++) { let d = xs[j] - mu; q += d * d; }
let r = inverseSqrt((q.x + q.y + q.z + q.w) / L + P.eps);
for (var j = 0u; j < ${n4}u; j++) {
  var v = (xs[j] - mu) * r;
  ${hasW ? "v = v * w[j];" : ""}
  ${hasB ? "v = v + b[j];" : ""}
  ${silu ? `${SILU}\n  ` : ""}y[base + j] = v;
}
mean[row] = mu; rstd[row] = r;`,
  });
}

// x, dy: [rows, 4 n4] f32 as vec4s, w: [4 n4], mean, rstd: [rows], acc -> dx: [rows, 4 n4]
/**
 * `rowNormGradVec4Kernel` for layer norm rows of `n4` vec4s (see `rowNormRegsKernel`): the
 * scaled gradient and the normalized input of the row stay in registers between the two passes
 * (`silu` and `hasB` as in `rowNormGradKernel`).
 */
export function rowNormGradRegsKernel(
  hasW: boolean,
  n4: number,
  acc = false,
  tex = false,
  silu = false,
  hasB = false,
): BuiltKernel {
  const [xIn, xj] = rowInput("x", tex), [dyIn, dyj] = rowInput("dy", tex);
  const bindings: BindingSpec[] = [xIn, dyIn];
  if (hasW) bindings.push({ name: "w", type: "vec4<f32>" });
  if (silu && hasB) bindings.push({ name: "bias", type: "vec4<f32>" });
  bindings.push({ name: "mean" }, { name: "rstd" }, {
    name: "dx",
    type: "vec4<f32>",
    write: true,
  });
  if (acc) bindings.push({ name: "acc", type: "vec4<f32>" });
  return buildKernel({
    name: `row_norm_grad_regs${tex ? " tex" : ""}${silu ? " silu" : ""}`,
    bindings,
    params: [["rows", "u32"]],
    workgroup: [NORM_THREAD_GROUP],
    body: `let row = ${flatIndex(NORM_THREAD_GROUP)};
if (row >= P.rows) { return; }
let base = row * ${n4}u; let L = ${4 * n4}.0;
let mu = mean[row]; let r = rstd[row];
var gs: array<vec4<f32>, ${n4}>; var hs: array<vec4<f32>, ${n4}>;
var a = vec4<f32>(); var b = vec4<f32>();
for (var j = 0u; j < ${n4}u; j++) {
  ${
      silu
        ? `let xh = (${xj} - mu) * r;
  ${siluGrad(dyj, "xh", hasW ? "w[j]" : null, hasB ? "bias[j]" : null)}
  let g = dn${hasW ? " * w[j]" : ""};`
        : `let g = ${dyj}${hasW ? " * w[j]" : ""}; let xh = (${xj} - mu) * r;`
    }
  gs[j] = g; hs[j] = xh; a += g; b += g * xh;
}
let mx = (a.x + a.y + a.z + a.w) / L; let my = (b.x + b.y + b.z + b.w) / L;
for (var j = 0u; j < ${n4}u; j++) {
  dx[base + j] = r * (gs[j] - mx - hs[j] * my)${acc ? " + acc[base + j]" : ""};
}`,
  });
}
