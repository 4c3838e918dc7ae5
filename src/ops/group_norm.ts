/**
 * Group normalization: statistics per (sample, group of channels) over the group's channels and
 * all spatial positions, then a per-channel affine. Also holds the row-normalization launcher that
 * layer norm shares.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import {
  type ChannelGradFlags,
  channelGradKernel,
  channelGradVec4Kernel,
  NORM_REGS_MAX4,
  NORM_THREAD_GROUP,
  normGroup,
  rowNormGradKernel,
  rowNormGradRegsKernel,
  rowNormGradVec4Kernel,
  rowNormKernel,
  rowNormRegsKernel,
  rowNormVec4Kernel,
} from "../wgsl/norm.ts";
import { type RowKernelOptions, rowThreads } from "./row_variant.ts";
import { ROW_THREAD_MAX } from "../wgsl/softmax.ts";
import { Tensor } from "./tensor.ts";
import { copyToTexture, dispatch, grid1d, type Resource } from "./runtime.ts";
import { acquireTexture, releaseTexture } from "./pool.ts";
import { deviceInfo } from "./device.ts";
import { record } from "./autograd.ts";
import { ArgumentError, DTypeError, fmtShape, ShapeError } from "./errors.ts";

/**
 * Geometry of a row normalization: `rows` contiguous rows of `L` elements; element j of row r has
 * channel `(r % G) * Cg + j / S` of `C` channels, and `B = rows / G`.
 */
export interface RowNormGeometry {
  /** Op name for messages and the graph. */
  op: string;
  rows: number;
  L: number;
  S: number;
  Cg: number;
  G: number;
  C: number;
}

/** Checks an optional per-channel parameter: shape [C] and the dtype of x. */
export function checkChannelParam(
  op: string,
  what: string,
  p: Tensor | null,
  x: Tensor,
  C: number,
): void {
  if (!p) return;
  if (p.shape.length !== 1 || p.shape[0] !== C) {
    throw new ShapeError(
      `${op}() got ${what} of shape ${fmtShape(p.shape)} for input ${fmtShape(x.shape)}; ` +
        `${what} must have shape [${C}]`,
    );
  }
  if (p.dtype !== x.dtype) {
    throw new DTypeError(
      `${op}() got a ${p.dtype} ${what} for a ${x.dtype} input; cast it to ${x.dtype}`,
    );
  }
}

/** Checks that eps is a finite number >= 0. */
export function checkEps(op: string, eps: number): void {
  if (!(Number.isFinite(eps) && eps >= 0)) {
    throw new ArgumentError(`${op}() needs eps >= 0, got ${eps}`);
  }
}

// x: [rows, L] f32 -> texture of `rows` rows, L / 4 texels each (L % 64 == 0)
function rowsTexture(x: Tensor, g: RowNormGeometry): GPUTexture {
  const tex = acquireTexture(g.L / 4, g.rows);
  copyToTexture({ buffer: x.buffer, bytesPerRow: g.L * 4 }, { texture: tex }, g.L / 4, g.rows);
  return tex;
}

/**
 * Normalizes contiguous rows and applies a per-channel affine, with backward to x, weight and
 * bias (internal launcher shared by `groupNorm`, `groupNormSilu` and `layerNorm`); `silu` applies
 * SiLU to the output in the same kernel, and its backward recomputes the affine output from x and
 * the statistics (nothing more is saved).
 */
export function rowNorm(
  g: RowNormGeometry,
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  variant: RowKernelOptions["variant"] = "auto",
  silu = false,
): Tensor {
  const t = x.dtype;
  const y = new Tensor(x.shape, t);
  const mean = new Tensor([g.rows], "f32");
  const rstd = new Tensor([g.rows], "f32");
  // one invocation per f32 row of whole vec4s whose four elements share a channel or have one
  // each (a row of every channel, as the kernels index the weight from channel 0): 16-byte loads
  // (the row length then counted in vec4s)
  const perElem = g.S === 1 && g.G === 1;
  const whole4 = t === "f32" && g.L % 4 === 0 && (perElem || g.S % 4 === 0);
  // llvmpipe, one invocation per row: layer norm [16, 256, 64] forward+backward 397 -> 46 ms;
  // scalar rows of 2048 gain forward but lose backward, so `auto` stops at 1024 for them; the
  // 16-byte kernels win at every length (group norm forward+backward, [16, 128, 16, 16] g16
  // 100.5 -> 69.3 ms, [1, 512, 32, 32] g32 102.2 -> 73.8 ms, [1, 1280, 8, 8] g32 35.0 -> 30.7 ms)
  const wg = rowThreads(g.L, variant, whole4 ? ROW_THREAD_MAX : 1024) ? 1 : normGroup(g.L);
  const grid = grid1d(wg === 1 ? Math.ceil(g.rows / NORM_THREAD_GROUP) : g.rows);
  const vec4 = wg === 1 && whole4;
  // layer norm rows of at most 32 vec4s stay in registers: x read once forward, x and dy once
  // backward (llvmpipe, [4096, 64] forward 10.5 -> 7.0 ms)
  const regs = vec4 && perElem && g.L / 4 <= NORM_REGS_MAX4 ? g.L / 4 : 0;
  // rows of whole 256 bytes are read from texture copies (software adapters load textures
  // faster than storage buffers)
  const max = deviceInfo().limits.maxTextureDimension2D;
  const tex = vec4 && g.L % 64 === 0 && g.L / 4 <= max && g.rows <= max;
  const geo = [g.rows, vec4 ? g.L / 4 : g.L, g.S, g.Cg, g.G];
  const hasW = weight !== null;
  if (y.size > 0) {
    const hasB = bias !== null;
    const k = regs
      ? cachedKernel(
        `row_norm regs ${hasW} ${hasB} ${regs} ${tex} ${silu}`,
        () => rowNormRegsKernel(hasW, hasB, regs, tex, silu),
      )
      : vec4
      ? cachedKernel(
        `row_norm vec4 ${hasW} ${hasB} ${perElem} ${tex} ${silu}`,
        () => rowNormVec4Kernel(hasW, hasB, perElem, tex, silu),
      )
      : cachedKernel(
        `row_norm ${t} ${hasW} ${hasB} ${wg} ${silu}`,
        () => rowNormKernel(t, hasW, hasB, wg, silu),
      );
    const xt = tex ? rowsTexture(x, g) : null;
    const res: Resource[] = [xt ?? x.binding];
    if (weight) res.push(weight.binding);
    if (bias) res.push(bias.binding);
    res.push(y.binding, mean.binding, rstd.binding);
    dispatch(k, res, regs ? [g.rows, eps] : [...geo, eps], grid);
    if (xt) releaseTexture(xt);
  }
  const inputs = [x, weight, bias].filter((v): v is Tensor => v !== null);
  // silu's backward recomputes the affine output, so it keeps the bias too (`siluB`)
  const siluB = silu && bias !== null;
  const saved = [x, mean, rstd, ...(weight ? [weight] : []), ...(silu && bias ? [bias] : [])];
  const out = record(g.op, inputs, y, saved, (dy, s, pending) => {
    const [sx, sm, sr] = s as [Tensor, Tensor, Tensor];
    const sw = hasW ? s[3]! : null, sb = siluB ? s[hasW ? 4 : 3]! : null;
    // the affine parameters the kernels bind after x and dy: w, then (under silu) the bias
    const affine = [sw, sb].filter((v): v is Tensor => v !== null).map((v) => v.binding);
    const grads: (Tensor | null)[] = [];
    if (x.requiresGrad) {
      const dx = new Tensor(x.shape, t);
      if (dx.size > 0) {
        // x's gradient from its other uses (a residual) is added in the same pass
        const acc = pending.take(0);
        const k = regs
          ? cachedKernel(
            `row_norm_grad regs ${hasW} ${regs} ${acc !== null} ${tex} ${silu} ${siluB}`,
            () => rowNormGradRegsKernel(hasW, regs, acc !== null, tex, silu, siluB),
          )
          : vec4
          ? cachedKernel(
            `row_norm_grad vec4 ${hasW} ${perElem} ${acc !== null} ${tex} ${silu} ${siluB}`,
            () => rowNormGradVec4Kernel(hasW, perElem, acc !== null, tex, silu, siluB),
          )
          : cachedKernel(
            `row_norm_grad ${t} ${hasW} ${wg} ${acc !== null} ${silu} ${siluB}`,
            () => rowNormGradKernel(t, hasW, wg, acc !== null, silu, siluB),
          );
        const ts = tex ? [rowsTexture(sx, g), rowsTexture(dy, g)] : null;
        const res: Resource[] = ts ? [...ts] : [sx.binding, dy.binding];
        res.push(...affine, sm.binding, sr.binding, dx.binding);
        if (acc) res.push(acc.binding);
        dispatch(k, res, regs ? [g.rows] : geo, grid);
        for (const t of ts ?? []) releaseTexture(t);
      }
      grads.push(dx);
    } else grads.push(null);
    const dw = weight?.requiresGrad ? new Tensor([g.C], t) : null;
    const db = bias?.requiresGrad ? new Tensor([g.C], t) : null;
    if ((dw || db) && g.C > 0) {
      const f: ChannelGradFlags = {
        dx: "none",
        hasW: silu && hasW,
        dw: dw !== null,
        db: db !== null,
        silu,
        hasB: siluB,
      };
      const B = g.rows / g.G;
      const cwg = normGroup(B * g.S);
      // f32 maps of whole vec4s (group norm): 16-byte loads
      const k = t === "f32" && g.S % 4 === 0
        ? cachedKernel(
          `norm_channel_grad vec4 ${f.dw} ${f.db} ${cwg} ${silu} ${f.hasW} ${siluB}`,
          () => channelGradVec4Kernel(f.dw, f.db, cwg, silu, f.hasW, siluB),
        )
        : cachedKernel(
          `norm_channel_grad ${t} none ${f.dw} ${f.db} ${cwg} ${silu} ${f.hasW} ${siluB}`,
          () => channelGradKernel(t, f, cwg),
        );
      const res = [sx.binding, dy.binding, ...(silu ? affine : []), sm.binding, sr.binding];
      if (dw) res.push(dw.binding);
      if (db) res.push(db.binding);
      dispatch(k, res, [g.C, B, g.S, g.G, g.Cg], grid1d(g.C));
    }
    if (weight) grads.push(dw);
    if (bias) grads.push(db);
    return grads;
  });
  mean.dispose();
  rstd.dispose();
  return out;
}

// x: [B, C, ...spatial], weight, bias: [C] | null -> y: [B, C, ...spatial]
/**
 * Group normalization: splits the C channels into `groups` groups, normalizes each (sample,
 * group) over its channels and spatial positions, then applies `weight` and `bias` per channel.
 *
 * @example
 * ```ts
 * import { getDevice, groupNorm, ones, randn, zeros } from "../../mod.ts";
 * await getDevice();
 * const y = groupNorm(randn([2, 8, 4, 4]), 4, ones([8]), zeros([8]), 1e-5);
 * console.log(y.shape); // [2, 8, 4, 4]
 * ```
 */
export function groupNorm(
  x: Tensor,
  groups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
  options: RowKernelOptions = {},
): Tensor {
  const g = groupGeometry("groupNorm", x, groups, weight, bias, eps);
  return rowNorm(g, x, weight, bias, eps, options.variant);
}

/**
 * Checks a group norm's arguments (`op` names it in messages) and returns its row geometry: one
 * row per (sample, group).
 */
export function groupGeometry(
  op: string,
  x: Tensor,
  groups: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
): RowNormGeometry {
  if (x.shape.length < 2) {
    throw new ShapeError(
      `${op}() needs an input of shape [B, C, ...spatial], got ${fmtShape(x.shape)}`,
    );
  }
  const [B, C] = x.shape as [number, number];
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new ShapeError(
      `${op}() got ${groups} groups for input ${fmtShape(x.shape)}; ` +
        `groups must be a whole number >= 1 that divides the ${C} channels`,
    );
  }
  checkChannelParam(op, "weight", weight, x, C);
  checkChannelParam(op, "bias", bias, x, C);
  checkEps(op, eps);
  const S = x.shape.slice(2).reduce((a, b) => a * b, 1);
  const Cg = C / groups;
  return { op, rows: B * groups, L: Cg * S, S, Cg, G: groups, C };
}

/** CPU reference of `groupNorm` (float64, two-pass statistics). */
export function groupNormRef(
  x: ArrayLike<number>,
  shape: readonly number[],
  groups: number,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  eps: number,
): Float64Array {
  const B = shape[0]!, C = shape[1]!;
  const S = shape.slice(2).reduce((a, b) => a * b, 1);
  const Cg = C / groups, L = Cg * S;
  const y = new Float64Array(x.length);
  for (let r = 0; r < B * groups; r++) {
    const base = r * L;
    let m = 0;
    for (let j = 0; j < L; j++) m += x[base + j]!;
    m /= L;
    let v = 0;
    for (let j = 0; j < L; j++) v += (x[base + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / L + eps);
    for (let j = 0; j < L; j++) {
      const c = (r % groups) * Cg + Math.floor(j / S);
      y[base + j] = (x[base + j]! - m) * rs * (weight ? weight[c]! : 1) + (bias ? bias[c]! : 0);
    }
  }
  return y;
}
