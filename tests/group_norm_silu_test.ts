// groupNormSilu(): the fused group norm + SiLU against its float64 reference and finite
// differences on every kernel path, against silu(groupNorm()) to f32 rounding, in f16, and its
// dispatch count.
import { equal, throws as assertThrows } from "node:assert/strict";
import {
  backward,
  cast,
  deviceInfo,
  dispatchCount,
  groupNorm,
  groupNormSilu,
  groupNormSiluRef,
  mul,
  scope,
  ShapeError,
  silu,
  sum,
  type Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import { assertClose, checkOp, maxAbs, randomData } from "./_helpers.ts";

const EPS = 1e-5;

// Inputs with a nonzero mean and a spread that differs per row; the weight and bias (inputs 1
// and 2) spread the normalized values over [-2, 2.4], through SiLU's bend and both tails.
const data = (i: number, n: number) =>
  i === 0
    ? Float64Array.from(randomData(n, 5), (v, j) => 0.3 + v * (1 + (j % 7) / 3))
    : Float64Array.from(randomData(n, 40 + i), (v) => (i === 1 ? 1 + v : 0.4 * v));

// [shape, groups, the kernels it takes with variant "thread"]; "workgroup" runs the tree
// reduction kernels on each
const cases: [number[], number, string][] = [
  [[2, 6, 5, 3], 3, "scalar rows (15 positions per channel), scalar channel sums"],
  [[2, 8], 2, "scalar rows (one position per channel in groups of 4)"],
  [[2, 6, 4, 2], 3, "vec4 rows from storage, vec4 channel sums"],
  [[2, 4, 8, 8], 2, "vec4 rows from texture copies (128 elements)"],
  [[3, 16], 1, "rows of 4 vec4s in registers"],
  [[2, 64], 1, "rows of 16 vec4s in registers, from texture copies"],
  [[2, 136], 1, "rows of 34 vec4s, one weight per element, from storage"],
  [[2, 256], 1, "rows of 64 vec4s, one weight per element, from texture copies"],
  [[1, 2, 97, 101], 1, "rows of 19594 elements: 256-wide workgroups only"],
];
for (const [shape, g, path] of cases) {
  const C = shape[1]!;
  const L = shape.slice(1).reduce((a, d) => a * d, 1) / g;
  for (const variant of ["workgroup", "thread"] as const) {
    if (variant === "thread" && L > 16384) continue;
    Deno.test(`groupNormSilu() ${variant} matches the reference and finite differences for ${shape} in ${g} groups (${path})`, () =>
      checkOp({
        shapes: [shape, [C], [C]],
        gpu: (x, w, b) => groupNormSilu(x, g, w!, b!, EPS, { variant }),
        ref: (x, w, b) => groupNormSiluRef(x, shape, g, w!, b!, EPS),
        data,
        // f32 statistics over rows of up to ~2e4 elements, as groupNorm's tests allow
        atol: 2e-5,
        rtol: 2e-4,
      }));
  }
}

// the kernels bind the weight and the bias only when given: each combination on a scalar and a
// vec4 path
for (const [shape, g] of [[[2, 6, 5, 3], 3], [[2, 4, 8, 8], 2]] as [number[], number][]) {
  const C = shape[1]!;
  const affines = [
    ["without weight and bias", false, false],
    ["with a weight only", true, false],
    ["with a bias only", false, true],
  ] as const;
  for (const [what, hasW, hasB] of affines) {
    Deno.test(`groupNormSilu() matches the reference and finite differences ${what} for ${shape}`, () =>
      checkOp({
        shapes: [shape, ...(hasW ? [[C]] : []), ...(hasB ? [[C]] : [])],
        gpu: (x, p) => groupNormSilu(x, g, hasW ? p! : null, hasB ? p! : null, EPS),
        ref: (x, p) => groupNormSiluRef(x, shape, g, hasW ? p! : null, hasB ? p! : null, EPS),
        data,
        atol: 2e-5,
        rtol: 2e-4,
      }));
  }
}

/** y, dx, dw and db of `f` on seeded inputs for the loss sum(y * r). */
async function outputs(
  shape: number[],
  f: (x: Tensor, w: Tensor, b: Tensor) => Tensor,
  dtype: "f32" | "f16" = "f32",
): Promise<Float32Array[]> {
  const C = shape[1]!, n = shape.reduce((a, d) => a * d, 1);
  const h = (v: Float64Array) => Float64Array.from(v, (u) => new Float16Array([u])[0]!);
  const [x, w, b] = [data(0, n), data(1, C), data(2, C)].map(h);
  return await scope(async () => {
    const opts = { requiresGrad: true, dtype } as const;
    const xs = [tensor(x!, shape, opts), tensor(w!, [C], opts), tensor(b!, [C], opts)] as const;
    const y = cast(f(...xs), "f32");
    const out = [await y.toArray()];
    backward(sum(mul(y, tensor(randomData(n, 99), shape))));
    for (const t of xs) out.push(await t.grad!.toArray());
    return out;
  });
}

const NAMES = ["y", "dx", "dw", "db"];

// the forward is the same arithmetic as groupNorm then silu (bit-equal on llvmpipe); the backward
// recomputes n and sums in another order, so each output agrees to a few f32 roundings of its
// largest value (1e-6 relative: ~8 ulps)
for (const [shape, g, path] of cases.slice(0, 6)) {
  for (const variant of ["workgroup", "thread"] as const) {
    Deno.test(`groupNormSilu() ${variant} equals silu(groupNorm()) to f32 rounding for ${shape} (${path})`, async () => {
      const fused = await outputs(shape, (x, w, b) => groupNormSilu(x, g, w, b, EPS, { variant }));
      const composed = await outputs(
        shape,
        (x, w, b) => silu(groupNorm(x, g, w, b, EPS, { variant })),
      );
      fused.forEach((v, i) =>
        assertClose(v, composed[i]!, 1e-6 * maxAbs(composed[i]!), 0, NAMES[i])
      );
    });
  }
}

const f16 = deviceInfo().f16;
Deno.test({
  name: `groupNormSilu() in f16 agrees with f32 to f16 rounding${
    f16 ? "" : " (skipped: no shader-f16)"
  }`,
  ignore: !f16,
  async fn() {
    const shape = [2, 6, 4, 2];
    const run = (dtype: "f32" | "f16") =>
      outputs(shape, (x, w, b) => groupNormSilu(x, 3, w, b, EPS), dtype);
    const [half, full] = [await run("f16"), await run("f32")];
    // f16 stores y, dy and the gradients with relative error 2^-11 (4.9e-4) each; dx compounds
    // the rounded dy through the norm's backward, so 4e-3 of each output's largest value
    half.forEach((v, i) => assertClose(v, full[i]!, 4e-3 * maxAbs(full[i]!), 0, NAMES[i]));
  },
});

Deno.test("groupNormSilu() saves silu(groupNorm())'s silu dispatch forward and its dispatch backward", () => {
  const count = (f: (x: Tensor, w: Tensor, b: Tensor) => Tensor) =>
    scope(() => {
      const o = { requiresGrad: true } as const;
      const x = tensor(data(0, 384), [2, 6, 4, 8], o);
      const [w, b] = [tensor(data(1, 6), [6], o), tensor(data(2, 6), [6], o)];
      const d0 = dispatchCount();
      const y = f(x, w, b);
      const d1 = dispatchCount();
      backward(sum(y));
      return [d1 - d0, dispatchCount() - d0];
    });
  const fused = count((x, w, b) => groupNormSilu(x, 3, w, b, EPS));
  const composed = count((x, w, b) => silu(groupNorm(x, 3, w, b, EPS)));
  equal(fused[0], composed[0]! - 1, "forward dispatches");
  equal(fused[1], composed[1]! - 2, "forward and backward dispatches");
});

Deno.test("groupNormSilu() names itself and the shapes when groups do not divide the channels", () => {
  assertThrows(
    () => groupNormSilu(zeros([2, 6, 3]), 4),
    (e: Error) =>
      e instanceof ShapeError &&
      e.message.startsWith("groupNormSilu() got 4 groups for input [2, 6, 3]"),
  );
});
