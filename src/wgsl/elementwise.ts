/**
 * Elementwise kernels: fill, broadcasting binary arithmetic, unary maps.
 *
 * @module
 */
import {
  type BindingSpec,
  buildKernel,
  type BuiltKernel,
  flatIndex,
  type StorageType,
} from "./builder.ts";

/** Most dimensions a broadcasting kernel handles. */
export const MAX_DIMS = 6;

/** Workgroup size of the 1-D elementwise kernels. */
export const EW_GROUP = 256;

// y: [n] = v
/** Fills `y` with a constant. */
export function fillKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "fill",
    bindings: [{ name: "y", type: t, write: true }],
    params: [["n", "u32"], ["v", "f32"]],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i < P.n) { st_y(i, P.v); }`,
  });
}

/** Binary operators with their WGSL expression over `a` and `b`. */
export const BINARY_EXPR = {
  add: "a + b",
  sub: "a - b",
  mul: "a * b",
  div: "a / b",
} as const;

/** Binary operator names. */
export type BinaryOp = keyof typeof BINARY_EXPR;

function stridedIndex(names: string[]): string {
  const dims = Array.from({ length: MAX_DIMS }, (_, d) => MAX_DIMS - 1 - d);
  return `var r = i; ${names.map((n) => `var i${n} = 0u;`).join(" ")}
${
    dims.map((d) =>
      `  { let c = r % P.d${d}; r = r / P.d${d}; ${
        names.map((n) => `i${n} += c * P.s${n}${d};`).join(" ")
      } }`
    ).join("\n")
  }`;
}

function stridedParams(names: string[]): [string, "u32"][] {
  const params: [string, "u32"][] = [["n", "u32"]];
  for (let d = 0; d < MAX_DIMS; d++) {
    params.push([`d${d}`, "u32"], ...names.map((n): [string, "u32"] => [`s${n}${d}`, "u32"]));
  }
  return params;
}

// a: broadcastable to out, b: broadcastable to out, out: [d0..d5] (dims right-aligned)
/** `y = a op b` with broadcasting through per-operand strides (0 on broadcast axes). */
export function binaryKernel(op: BinaryOp, t: StorageType, same: boolean): BuiltKernel {
  return buildKernel({
    name: `binary_${op}`,
    bindings: [{ name: "x", type: t }, { name: "z", type: t }, { name: "y", type: t, write: true }],
    params: same ? [["n", "u32"]] : stridedParams(["a", "b"]),
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
${same ? "let ia = i; let ib = i;" : stridedIndex(["a", "b"])}
let a = ld_x(ia); let b = ld_z(ib);
st_y(i, ${BINARY_EXPR[op]});`,
  });
}

// x: broadcastable to out -> y: out [d0..d5]
/** Copies `x` into a larger shape, reading through broadcast strides. */
export function expandKernel(t: StorageType): BuiltKernel {
  return buildKernel({
    name: "expand",
    bindings: [{ name: "x", type: t }, { name: "y", type: t, write: true }],
    params: stridedParams(["a"]),
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
${stridedIndex(["a"])}
st_y(i, ld_x(ia));`,
  });
}

// a, b, y: [n / 4] as vec4 (f32, same shapes, n % 4 == 0)
/**
 * Same-shape f32 `y = a op b` on vec4 lanes: one 16-byte load per operand, which software
 * adapters (a per-lane loop per storage load) run about 4x faster than scalar loads.
 */
export function binaryVec4Kernel(op: BinaryOp): BuiltKernel {
  return buildKernel({
    name: `binary_vec4_${op}`,
    bindings: [
      { name: "x", type: "vec4<f32>" },
      { name: "z", type: "vec4<f32>" },
      { name: "y", type: "vec4<f32>", write: true },
    ],
    params: [["n", "u32"]],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let a = x[i]; let b = z[i];
y[i] = ${BINARY_EXPR[op]};`,
  });
}

// x: [n] -> y: [n]; (x, dy: [n]) -> dx: [n]
/** `y = f(x)` for a WGSL expression in `x` (and scalar params `p0`, `p1`). */
export function unaryKernel(name: string, expr: string, t: StorageType): BuiltKernel {
  return buildKernel({
    name: `unary_${name}`,
    bindings: [{ name: "xs", type: t }, { name: "y", type: t, write: true }],
    params: [["n", "u32"], ["p0", "f32"], ["p1", "f32"]],
    workgroup: [EW_GROUP],
    prelude: UNARY_PRELUDE,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let x = ld_xs(i); let p0 = P.p0; let p1 = P.p1;
st_y(i, ${expr});`,
  });
}

/** `dx = dy * f'(x)` for a WGSL derivative expression in `x` (and `p0`, `p1`). */
export function unaryGradKernel(name: string, dexpr: string, t: StorageType): BuiltKernel {
  return buildKernel({
    name: `unary_grad_${name}`,
    bindings: [{ name: "xs", type: t }, { name: "dy", type: t }, {
      name: "dx",
      type: t,
      write: true,
    }],
    params: [["n", "u32"], ["p0", "f32"], ["p1", "f32"]],
    workgroup: [EW_GROUP],
    prelude: UNARY_PRELUDE,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let x = ld_xs(i); let p0 = P.p0; let p1 = P.p1;
st_dx(i, ld_dy(i) * (${dexpr}));`,
  });
}

// xs: [n / 4] f32 as vec4 -> y: [n / 4]; (xs, dy) -> dx with `grad`
/**
 * `unaryKernel` (or, with `grad`, `unaryGradKernel`) four f32 elements at a time: 16-byte loads
 * and stores, the scalar expression applied per lane (n % 4 == 0, `P.n` counts vec4s).
 */
export function unaryVec4Kernel(name: string, expr: string, grad: boolean): BuiltKernel {
  const lanes = (v: string) => `vec4<f32>(f_(${v}.x), f_(${v}.y), f_(${v}.z), f_(${v}.w))`;
  const bindings: BindingSpec[] = [{ name: "xs", type: "vec4<f32>" }];
  if (grad) bindings.push({ name: "dy", type: "vec4<f32>" });
  bindings.push({ name: grad ? "dx" : "y", type: "vec4<f32>", write: true });
  return buildKernel({
    name: `unary_${grad ? "grad_" : ""}vec4_${name}`,
    bindings,
    params: [["n", "u32"], ["p0", "f32"], ["p1", "f32"]],
    workgroup: [EW_GROUP],
    prelude: `${UNARY_PRELUDE}
fn f_(x: f32) -> f32 { let p0 = P.p0; let p1 = P.p1; return ${expr}; }`,
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
${grad ? `dx[i] = dy[i] * ${lanes("xs[i]")};` : `y[i] = ${lanes("xs[i]")};`}`,
  });
}

/** WGSL helpers the unary kernels may call: `erf_` (Abramowitz-Stegun 7.1.26, |err| < 1.5e-7). */
export const UNARY_PRELUDE = `fn erf_(v: f32) -> f32 {
  let s = sign(v); let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1.0 - p * exp(-a * a));
}
fn sigm_(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }`;

// big: [n] (the output shape), small: [m] broadcast over a leading block A and a trailing block S
// of the output ([A, m, S]) -> y: [n]
/**
 * `y = a op b` where one operand has the output's shape and the other is broadcast over a leading
 * and a trailing block (bias [N] onto [M, N], per-channel [B, C, 1, 1] onto [B, C, H, W]): the
 * small operand's index is `(i / S) % m`, two integer operations instead of the strided kernel's
 * twelve. `vec4` (f32, S % 4 == 0) handles four outputs per invocation with one small load.
 */
export function binaryBandKernel(
  op: BinaryOp,
  t: StorageType,
  smallIsB: boolean,
  vec4: boolean,
): BuiltKernel {
  const [a, b] = smallIsB ? ["big", "sm"] : ["sm", "big"];
  if (vec4) {
    return buildKernel({
      name: `binary_band_vec4_${op}`,
      bindings: [
        { name: "xb", type: "vec4<f32>" },
        { name: "xs" },
        { name: "y", type: "vec4<f32>", write: true },
      ],
      params: [["n4", "u32"], ["m", "u32"], ["S4", "u32"]],
      workgroup: [EW_GROUP],
      body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n4) { return; }
let big = xb[i]; let sm = vec4<f32>(ld_xs((i / P.S4) % P.m));
let a = ${a}; let b = ${b};
y[i] = ${BINARY_EXPR[op]};`,
    });
  }
  return buildKernel({
    name: `binary_band_${op}`,
    bindings: [{ name: "xb", type: t }, { name: "xs", type: t }, {
      name: "y",
      type: t,
      write: true,
    }],
    params: [["n", "u32"], ["m", "u32"], ["S", "u32"]],
    workgroup: [EW_GROUP],
    body: `let i = ${flatIndex(EW_GROUP)}; if (i >= P.n) { return; }
let big = ld_xb(i); let sm = ld_xs((i / P.S) % P.m);
let a = ${a}; let b = ${b};
st_y(i, ${BINARY_EXPR[op]});`,
  });
}
