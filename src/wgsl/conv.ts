/**
 * Convolution helpers: im2col (gather patches into columns) and its adjoint col2im.
 *
 * @module
 */
import { buildKernel, type BuiltKernel, flatIndex, type StorageType } from "./builder.ts";
import { EW_GROUP } from "./elementwise.ts";

/** Params shared by im2col and col2im. */
const CONV_PARAMS: [string, "u32" | "i32"][] = [
  ["n", "u32"],
  ["C", "u32"],
  ["H", "u32"],
  ["W", "u32"],
  ["kh", "u32"],
  ["kw", "u32"],
  ["stride", "u32"],
  ["pad", "i32"],
  ["Ho", "u32"],
  ["Wo", "u32"],
];

// x: [B, C, H, W] -> cols: [B, C * kh * kw, Ho * Wo]
/** Gathers every kh x kw patch (zero outside the padded input) into a column. */
export function im2colKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "im2col",
    bindings: [{ name: "x", type: t }, { name: "cols", type: t, write: true }],
    params: CONV_PARAMS,
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let P2 = P.Ho * P.Wo; let KK = P.kh * P.kw;
let p = i % P2; let row = (i / P2) % (P.C * KK); let b = i / (P2 * P.C * KK);
let c = row / KK; let kk = row % KK; let ki = kk / P.kw; let kj = kk % P.kw;
let oh = p / P.Wo; let ow = p % P.Wo;
let h = i32(oh * P.stride + ki) - P.pad; let w = i32(ow * P.stride + kj) - P.pad;
var v = 0.0;
if (h >= 0 && w >= 0 && h < i32(P.H) && w < i32(P.W)) {
  v = ld_x(((b * P.C + c) * P.H + u32(h)) * P.W + u32(w));
}
st_cols(i, v);`,
  });
}

// x: [B, C, H, W] -> cols: [B, C * kh * kw, Ho * Wo]
/**
 * im2col with one invocation per output row segment (b, column row, oh) looping over ow: a few
 * integer divisions per Wo outputs instead of ten per output, which software adapters (scalar
 * integer division) run several times faster. `n` is B * C * kh * kw * Ho.
 */
export function im2colRowsKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "im2col_rows",
    bindings: [{ name: "x", type: t }, { name: "cols", type: t, write: true }],
    params: CONV_PARAMS,
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let KK = P.kh * P.kw;
let oh = i % P.Ho; let t = i / P.Ho;
let row = t % (P.C * KK); let b = t / (P.C * KK);
let c = row / KK; let kk = row % KK; let ki = kk / P.kw; let kj = kk % P.kw;
let h = i32(oh * P.stride + ki) - P.pad;
let out = i * P.Wo;
if (h < 0 || h >= i32(P.H)) {
  for (var ow = 0u; ow < P.Wo; ow++) { st_cols(out + ow, 0.0); }
  return;
}
let src = ((b * P.C + c) * P.H + u32(h)) * P.W;
for (var ow = 0u; ow < P.Wo; ow++) {
  let w = i32(ow * P.stride + kj) - P.pad;
  var v = 0.0;
  if (w >= 0 && w < i32(P.W)) { v = ld_x(src + u32(w)); }
  st_cols(out + ow, v);
}`,
  });
}

// cols: [B, C * kh * kw, Ho * Wo] -> dx: [B, C, H, W]
/** The adjoint of im2col: each input pixel sums the column entries it was copied to. */
export function col2imKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "col2im",
    bindings: [{ name: "cols", type: t }, { name: "dx", type: t, write: true }],
    params: CONV_PARAMS,
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let w = i % P.W; let h = (i / P.W) % P.H; let c = (i / (P.W * P.H)) % P.C;
let b = i / (P.W * P.H * P.C);
let P2 = P.Ho * P.Wo; let KK = P.kh * P.kw;
var acc = 0.0;
for (var ki = 0u; ki < P.kh; ki++) {
  let th = i32(h) + P.pad - i32(ki);
  if (th < 0 || th % i32(P.stride) != 0) { continue; }
  let oh = u32(th) / P.stride; if (oh >= P.Ho) { continue; }
  for (var kj = 0u; kj < P.kw; kj++) {
    let tw = i32(w) + P.pad - i32(kj);
    if (tw < 0 || tw % i32(P.stride) != 0) { continue; }
    let ow = u32(tw) / P.stride; if (ow >= P.Wo) { continue; }
    acc += ld_cols(((b * P.C + c) * KK + ki * P.kw + kj) * P2 + oh * P.Wo + ow);
  }
}
st_dx(i, acc);`,
  });
}

// x: [B, C, H, W] -> tex texel (p / 4, (b - b0) * C*kh*kw + row): im2col columns p..p+3 of row
/**
 * im2col straight into the B operand texture of the texture matmul (no column buffer): texel
 * (t, y) holds output positions 4t .. 4t + 3 of patch row `y % (C kh kw)` of batch `b0 + y / (C kh kw)`.
 */
export function im2colPackKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "im2col_pack",
    bindings: [{ name: "x", type: t }, { name: "tex", kind: "texture_write" }],
    params: [...CONV_PARAMS, ["width", "u32"], ["nb", "u32"], ["b0", "u32"]],
    workgroup: [8, 8],
    body: `let tx = gid.x; let y = gid.y; let KK = P.kh * P.kw; let rows = P.C * KK;
if (tx >= P.width || y >= rows * P.nb) { return; }
let b = P.b0 + y / rows; let row = y % rows;
let c = row / KK; let kk = row % KK; let ki = kk / P.kw; let kj = kk % P.kw;
let base = (b * P.C + c) * P.H;
var v = vec4<f32>();
for (var e = 0u; e < 4u; e++) {
  let p = tx * 4u + e;
  if (p < P.Ho * P.Wo) {
    let h = i32((p / P.Wo) * P.stride + ki) - P.pad; let w = i32((p % P.Wo) * P.stride + kj) - P.pad;
    if (h >= 0 && w >= 0 && h < i32(P.H) && w < i32(P.W)) { v[e] = ld_x((base + u32(h)) * P.W + u32(w)); }
  }
}
textureStore(tex, vec2<u32>(tx, y), v);`,
  });
}

/** Whether `im2colPackRowKernel` serves a geometry: stride 1, rows of x and of the output in
 * whole vec4s, a kernel at most 9 wide. */
export function im2colPackRowFits(
  g: { stride: number; W: number; Wo: number; kw: number; pad: number },
): boolean {
  return g.stride === 1 && g.W % 4 === 0 && g.Wo % 4 === 0 && g.kw <= 9;
}

// x: [B, C, H, W] as vec4s along W -> tex texels (p / 4, (b - b0) * C*kh*kw + (c*kh + ki)*kw + kj)
//   (fold: texels (((b - b0) * Ho*Wo + p) / 4, (c*kh + ki)*kw + kj))
/**
 * The same texture as `im2colPackKernel`, for stride-1 convolutions whose rows are whole vec4s:
 * one invocation loads the few aligned vec4s of x that cover output positions 4t .. 4t + 3 for
 * every kj, then stores `kw` texels. Loads are 16 bytes and shared by the kw texels, about 4 kw
 * times fewer than one load per element (storage loads are the slow part on software adapters).
 * `kw` and `pad` are compiled in, so every lane select is static. `fold` lays the batches side
 * by side along the texture's rows (one product over N = B Ho Wo for narrow outputs).
 */
export function im2colPackRowKernel(kw: number, pad: number, fold = false): BuiltKernel {
  const lead = Math.ceil(pad / 4); // whole vec4s left of the output quad
  const nt = Math.floor((4 * lead - pad + kw + 2) / 4) + 1; // vec4s covering every kj
  const lines: string[] = [];
  for (let j = 0; j < nt; j++) {
    lines.push(`let t${j} = i32(q0) - ${lead - j}; var v${j} = vec4<f32>();
if (rowOk && t${j} >= 0 && t${j} < i32(W4)) { v${j} = x[rowBase + u32(t${j})]; }`);
  }
  const sw = ["x", "y", "z", "w"];
  for (let kj = 0; kj < kw; kj++) {
    const lanes = [0, 1, 2, 3].map((e) => {
      const q = 4 * lead - pad + kj + e;
      return `v${q >> 2}.${sw[q & 3]}`;
    });
    lines.push(`textureStore(tex, vec2<u32>(x0, y0 + ${kj}u), vec4<f32>(${lanes.join(", ")}));`);
  }
  // folded: batch b's positions continue along the texture's row instead of below it
  const x0 = fold ? "(r / rows) * (P.Ho * P.Wo / 4u) + tx" : "tx";
  const y0 = fold ? `ck * ${kw}u` : `(r / rows) * rows * ${kw}u + ck * ${kw}u`;
  return buildKernel({
    name: `im2col_pack_row k${kw} p${pad}${fold ? " fold" : ""}`,
    bindings: [{ name: "x", type: "vec4<f32>" }, { name: "tex", kind: "texture_write" }],
    params: [...CONV_PARAMS, ["width", "u32"], ["nb", "u32"], ["b0", "u32"]],
    workgroup: [8, 8],
    body: `let tx = gid.x; let r = gid.y; let rows = P.C * P.kh;
if (tx * 4u >= P.Ho * P.Wo || r >= rows * P.nb) { return; }
let b = P.b0 + r / rows; let ck = r % rows; let c = ck / P.kh; let ki = ck % P.kh;
let p0 = tx * 4u; let oh = p0 / P.Wo; let q0 = (p0 % P.Wo) / 4u; let W4 = P.W / 4u;
let h = i32(oh + ki) - P.pad; let rowOk = h >= 0 && h < i32(P.H);
let rowBase = ((b * P.C + c) * P.H + u32(max(h, 0))) * W4;
let x0 = ${x0}; let y0 = ${y0};
${lines.join("\n")}`,
  });
}

// x: [B*C, H, W] as vec4s along W -> sh: [slots, B*C, S] as vec4s, sh[slot(kj), bc, h * W + w] =
//   x[bc, h, w + kj - pad] (zero outside x); the slots are kj = 0 .. kw - 1, without kj = pad
//   when `skipCenter`
/**
 * The horizontally shifted copies of x from which the copied im2col
 * (`src/ops/_conv_im2col_copy.ts`) takes its rows: for a stride-1 convolution whose output is as
 * large as x, im2col row (ki, kj, c) of a sample is one contiguous run of copy kj (the rows of x
 * that tap ki reaches). They hold a `kh`-th of the im2col's elements, fewer when x itself serves
 * as the unshifted copy (`skipCenter`); buffer-to-texture copies, several times faster than
 * kernel stores on software adapters, then assemble the im2col. One invocation a row of x (`n` =
 * B C H) slides a window of vec4s along it: one 16-byte load per vec4 and one integer division
 * per row (software adapters divide integers lane by lane). `S` (vec4s `S4`) is the stride
 * between copies of one channel; `kw` and `pad` are compiled in.
 */
export function convShiftKernel(kw: number, pad: number, skipCenter: boolean): BuiltKernel {
  const lead = Math.ceil(pad / 4); // whole vec4s left of the output quad
  const nt = Math.floor((4 * lead - pad + kw + 2) / 4) + 1; // vec4s covering every kj
  const sw = ["x", "y", "z", "w"];
  // the window v0 .. v(nt-1) holds quads q - lead .. q - lead + nt - 1 of the row
  const init: string[] = [];
  for (let j = 0; j < nt - 1; j++) {
    // quads left of the row are zero
    init.push(
      `var v${j} = vec4<f32>();${
        j < lead ? "" : `\nif (${j - lead}u < P.W4) { v${j} = x[rowBase + ${j - lead}u]; }`
      }`,
    );
  }
  const stores: string[] = [];
  const slots = [...Array(kw).keys()].filter((kj) => !(skipCenter && kj === pad));
  slots.forEach((kj, slot) => {
    const lanes = [0, 1, 2, 3].map((e) => {
      const q = 4 * lead - pad + kj + e;
      return `v${q >> 2}.${sw[q & 3]}`;
    });
    stores.push(`  sh[${slot}u * P.BC * P.S4 + o + q] = vec4<f32>(${lanes.join(", ")});`);
  });
  const shift = [...Array(nt - 1).keys()].map((j) => `v${j} = v${j + 1};`).join(" ");
  return buildKernel({
    name: `conv_shift k${kw} p${pad}${skipCenter ? " x" : ""}`,
    bindings: [{ name: "x", type: "vec4<f32>" }, { name: "sh", type: "vec4<f32>", write: true }],
    params: [["n", "u32"], ["BC", "u32"], ["H", "u32"], ["W4", "u32"], ["S4", "u32"]],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let bc = i / P.H; let rowBase = i * P.W4; let o = bc * P.S4 + (i - bc * P.H) * P.W4;
${init.join("\n")}
for (var q = 0u; q < P.W4; q++) {
  let tn = i32(q) + ${nt - 1 - lead}; var v${nt - 1} = vec4<f32>();
  if (tn >= 0 && tn < i32(P.W4)) { v${nt - 1} = x[rowBase + u32(tn)]; }
${stores.join("\n")}
  ${shift}
}`,
  });
}

// x: [B, C, H, W] -> tex texel (row / 4, (b - b0) * Ho*Wo + p): im2col rows 4t .. 4t + 3 at p
/**
 * The transposed im2col texture: the B operand of the convolution's weight gradient summed over
 * the batch in one product, `dw[o, row] = sum over (b, p) of dy[b, o, p] * cols[b, row, p]`.
 * Texel (t, y) holds patch rows 4t .. 4t + 3 (zero past C kh kw) at output position
 * `y % (Ho Wo)` of batch `b0 + y / (Ho Wo)`. One invocation fills a texel column along one
 * output row (b, oh), so its integer divisions (scalar on software adapters) are paid once per
 * Wo texels.
 */
export function im2colPackTKernel(t: StorageType): BuiltKernel {
  const sw = ["x", "y", "z", "w"];
  const taps = [0, 1, 2, 3].map((e) =>
    `let r${e} = tx * 4u + ${e}u; let c${e} = r${e} / KK; let k${e} = r${e} % KK;
let h${e} = i32(oh * P.stride + k${e} / P.kw) - P.pad; let j${e} = i32(k${e} % P.kw) - P.pad;
let ok${e} = r${e} < P.C * KK && h${e} >= 0 && h${e} < i32(P.H);
let base${e} = ((b * P.C + min(c${e}, P.C - 1u)) * P.H + u32(max(h${e}, 0))) * P.W;`
  );
  const loads = [0, 1, 2, 3].map((e) =>
    `  let w${e} = i32(ow * P.stride) + j${e};
  if (ok${e} && w${e} >= 0 && w${e} < i32(P.W)) { v.${sw[e]} = ld_x(base${e} + u32(w${e})); }`
  );
  return buildKernel({
    name: "im2col_pack_t",
    bindings: [{ name: "x", type: t }, { name: "tex", kind: "texture_write" }],
    params: [...CONV_PARAMS, ["width", "u32"], ["nb", "u32"], ["b0", "u32"]],
    workgroup: [8, 8],
    body: `let tx = gid.x; let r = gid.y; let KK = P.kh * P.kw;
if (tx >= P.width || r >= P.Ho * P.nb) { return; }
let b = P.b0 + r / P.Ho; let oh = r % P.Ho;
${taps.join("\n")}
let y0 = r * P.Wo;
for (var ow = 0u; ow < P.Wo; ow++) {
  var v = vec4<f32>();
${loads.join("\n")}
  textureStore(tex, vec2<u32>(tx, y0 + ow), v);
}`,
  });
}

// w: [Cout, Cin, kh, kw] -> wf: [Cin, Cout, kh, kw] (tapsMajor: [Cin, kh, kw, Cout]), each
//   kernel turned 180 degrees
/**
 * The weight of the transposed convolution: channels swapped and each kh x kw kernel flipped,
 * so that a stride-1 convolution's input gradient is itself a convolution of the output
 * gradient (padding kh - 1 - pad). `tapsMajor` orders each row by tap, then channel: the column
 * order of the copied im2col. `n` is the element count (with `tapsMajor`, the row count Cin kk).
 */
export function convWeightFlipKernel(
  t: StorageType,
  to: StorageType = t,
  tapsMajor = false,
): BuiltKernel {
  // taps-major: one invocation per output row (c, t), walking o with the input's stride (two
  // divisions a row instead of three an element; software adapters divide lane by lane)
  const body = tapsMajor
    ? `let c = i / P.kk; let t = i % P.kk; let src = c * P.kk + P.kk - 1u - t;
for (var o = 0u; o < P.Cout; o++) { st_wf(i * P.Cout + o, ld_w(src + o * P.Cin * P.kk)); }`
    : `let t = i % P.kk; let o = (i / P.kk) % P.Cout; let c = i / (P.kk * P.Cout);
st_wf(i, ld_w((o * P.Cin + c) * P.kk + P.kk - 1u - t));`;
  return buildKernel({
    name: `conv_weight_flip${tapsMajor ? " taps" : ""}`,
    bindings: [{ name: "w", type: t }, { name: "wf", type: to, write: true }],
    params: [["n", "u32"], ["Cout", "u32"], ["Cin", "u32"], ["kk", "u32"]],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
${body}`,
  });
}
