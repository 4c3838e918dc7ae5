/**
 * Unary elementwise ops and activations. Each rule sits in one table typed over the op names:
 * the WGSL forward, the WGSL derivative (both in `x`, `p0`, `p1`) and their CPU references.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP, unaryGradKernel, unaryKernel, unaryVec4Kernel } from "../wgsl/elementwise.ts";
import { Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { record } from "./autograd.ts";

/** Names of the unary ops. */
export type UnaryOp =
  | "exp"
  | "log"
  | "sqrt"
  | "square"
  | "affine"
  | "relu"
  | "sigmoid"
  | "silu"
  | "gelu"
  | "quickGelu";

/** One unary op: its WGSL forward and derivative (in `x`, `p0`, `p1`) and their CPU references. */
export interface UnaryRule {
  /** WGSL expression of the forward. */
  f: string;
  /** WGSL expression of the derivative. */
  df: string;
  /** CPU reference of the forward. */
  ref: (x: number, p0: number, p1: number) => number;
  /** CPU reference of the derivative. */
  dref: (x: number, p0: number, p1: number) => number;
}

const sig = (x: number) => 1 / (1 + Math.exp(-x));
function erf(x: number): number {
  // Series / continued fraction accurate to ~1e-15 (CPU reference only).
  const a = Math.abs(x);
  if (a < 3) {
    let sum = x, term = x;
    for (let n = 1; n < 200; n++) {
      term *= -x * x / n;
      sum += term / (2 * n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return 2 / Math.sqrt(Math.PI) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (a + f);
  const c = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return Math.sign(x) * (1 - c);
}

/** Forward and derivative of every unary op (the backward-rule map). */
export const UNARY: { readonly [K in UnaryOp]: UnaryRule } = {
  exp: { f: "exp(x)", df: "exp(x)", ref: Math.exp, dref: Math.exp },
  log: { f: "log(x)", df: "1.0 / x", ref: Math.log, dref: (x) => 1 / x },
  sqrt: { f: "sqrt(x)", df: "0.5 / sqrt(x)", ref: Math.sqrt, dref: (x) => 0.5 / Math.sqrt(x) },
  square: { f: "x * x", df: "2.0 * x", ref: (x) => x * x, dref: (x) => 2 * x },
  affine: { f: "p0 * x + p1", df: "p0", ref: (x, a, b) => a * x + b, dref: (_x, a) => a },
  relu: {
    f: "max(x, 0.0)",
    df: "select(0.0, 1.0, x > 0.0)",
    ref: (x) => Math.max(x, 0),
    dref: (x) => (x > 0 ? 1 : 0),
  },
  sigmoid: {
    f: "sigm_(x)",
    df: "sigm_(x) * (1.0 - sigm_(x))",
    ref: sig,
    dref: (x) => sig(x) * (1 - sig(x)),
  },
  silu: {
    f: "x * sigm_(x)",
    df: "sigm_(x) * (1.0 + x * (1.0 - sigm_(x)))",
    ref: (x) => x * sig(x),
    dref: (x) => sig(x) * (1 + x * (1 - sig(x))),
  },
  gelu: {
    f: "0.5 * x * (1.0 + erf_(x * 0.70710678118654752))",
    df: "0.5 * (1.0 + erf_(x * 0.70710678118654752)) + x * 0.3989422804014327 * exp(-0.5 * x * x)",
    ref: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    dref: (x) =>
      0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI),
  },
  quickGelu: {
    f: "x * sigm_(1.702 * x)",
    df: "sigm_(1.702 * x) * (1.0 + 1.702 * x * (1.0 - sigm_(1.702 * x)))",
    ref: (x) => x * sig(1.702 * x),
    dref: (x) => sig(1.702 * x) * (1 + 1.702 * x * (1 - sig(1.702 * x))),
  },
};

const VEC4_MIN = 1 << 16;

function run(op: UnaryOp, x: Tensor, p0: number, p1: number, dy?: Tensor): Tensor {
  const rule = UNARY[op];
  const y = new Tensor(x.shape, x.dtype);
  if (y.size === 0) return y;
  const res = dy ? [x.binding, dy.binding, y.binding] : [x.binding, y.binding];
  // f32 of whole vec4s: 16-byte loads and stores (the expression per lane), from 64K elements;
  // smaller tensors keep the one scalar pipeline (their time is the dispatch's, not the loads')
  if (x.dtype === "f32" && y.size % 4 === 0 && y.size >= VEC4_MIN) {
    const grad = dy !== undefined;
    const k = cachedKernel(
      `unary vec4 ${op} ${grad}`,
      () => unaryVec4Kernel(op, grad ? rule.df : rule.f, grad),
    );
    const n = y.size / 4;
    dispatch(k, res, [n, p0, p1], grid1d(Math.ceil(n / EW_GROUP)));
    return y;
  }
  const k = dy
    ? cachedKernel(`dunary ${op} ${x.dtype}`, () => unaryGradKernel(op, rule.df, x.dtype))
    : cachedKernel(`unary ${op} ${x.dtype}`, () => unaryKernel(op, rule.f, x.dtype));
  dispatch(k, res, [y.size, p0, p1], grid1d(Math.ceil(y.size / EW_GROUP)));
  return y;
}

/**
 * Applies a unary op; `p0`, `p1` are its scalar parameters (only `affine` uses them).
 *
 * @example
 * ```ts
 * import { getDevice, tensor, unary } from "../../mod.ts";
 * await getDevice();
 * console.log(await unary("silu", tensor([0, 1], [2])).toArray());
 * ```
 */
export function unary(op: UnaryOp, x: Tensor, p0 = 0, p1 = 0): Tensor {
  // x: [...] -> y: [...]
  return record(op, [x], run(op, x, p0, p1), [x], (dy, [sx]) => [run(op, sx!, p0, p1, dy)]);
}

/** CPU reference of a unary op (float64). */
export function unaryRef(op: UnaryOp, x: ArrayLike<number>, p0 = 0, p1 = 0): Float64Array {
  return Float64Array.from(x, (v) => UNARY[op].ref(v, p0, p1));
}

/** `e^x` */
export const exp = (x: Tensor): Tensor => unary("exp", x);
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => unary("log", x);
/** Square root. */
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x);
/** `x * x` */
export const square = (x: Tensor): Tensor => unary("square", x);
/** `a * x + b` */
export const affine = (x: Tensor, a: number, b: number): Tensor => unary("affine", x, a, b);
/** `s * x` */
export const scale = (x: Tensor, s: number): Tensor => unary("affine", x, s, 0);
/** `max(x, 0)` */
export const relu = (x: Tensor): Tensor => unary("relu", x);
/** Logistic sigmoid. */
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x);
/** SiLU (swish): `x * sigmoid(x)`. */
export const silu = (x: Tensor): Tensor => unary("silu", x);
/** Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`. */
export const gelu = (x: Tensor): Tensor => unary("gelu", x);
/** CLIP's quick-GELU: `x * sigmoid(1.702 x)`. */
export const quickGelu = (x: Tensor): Tensor => unary("quickGelu", x);
