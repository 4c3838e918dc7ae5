import { equal, throws as assertThrows } from "node:assert/strict";
import {
  add,
  ArgumentError,
  backward,
  batchNorm,
  batchNormRef,
  dispatchCount,
  groupNorm,
  groupNormRef,
  layerNorm,
  layerNormRef,
  memoryStats,
  ones,
  randn,
  scope,
  ShapeError,
  sum,
  type Tensor,
  tensor,
  zeros,
} from "../mod.ts";
import { assertClose, checkOp, randomData } from "./_helpers.ts";

const EPS = 1e-5;

// Inputs with a nonzero mean and a spread that differs per row, so normalization does work.
const shifted = (i: number, n: number) =>
  i === 0
    ? Float64Array.from(randomData(n, 5), (v, j) => 0.3 + v * (1 + (j % 7) / 3))
    : Float64Array.from(randomData(n, 40 + i), (v) => 1 + 0.5 * v);

// one element per group (the [1, 6] case): the exact input gradient is 0, but the kernel forms
// it as rstd * (a - b) with rstd = EPS^-1/2 ~ 316 and a ~ b ~ |dy| ~ 1, so one f32 rounding of
// a - b (6e-8) shows as up to ~2e-5; an NVIDIA H200 (Vulkan) gave -1.04e-5 there, over the
// default floor of 1e-6 that llvmpipe happens to meet. That case takes 5e-5 (gradTol 0.05).
const groupCases: [number[], number, number?][] = [
  [[2, 6, 5, 3], 3],
  [[1, 4, 7], 2],
  [[3, 8, 3, 5], 1],
  [[2, 4, 9, 11], 2], // rows of 198 elements: more than one workgroup stride
  [[1, 6], 6, 0.05],
  [[2, 4, 97, 101], 2], // long rows take the 256-wide workgroup
  [[2, 6, 4, 2], 3], // 8 positions per channel: the thread variant's vec4 kernels
  [[2, 4, 8, 8], 2], // rows of 128 elements (whole 256 bytes): read from texture copies
  [[2, 8], 2], // no spatial axes in 2 groups of 4: each element has its own weight
];
// both kernel variants on every machine (one workgroup per row; one invocation per row where
// the row fits its 16384-element limit)
const variants = ["workgroup", "thread"] as const;
for (const [shape, g, gradTol] of groupCases) {
  const C = shape[1]!;
  const L = shape.slice(1).reduce((a, d) => a * d, 1) / g;
  for (const variant of variants.filter((v) => v === "workgroup" || L <= 16384)) {
    Deno.test(`groupNorm() ${variant} variant matches the reference and finite differences for ${shape} in ${g} groups`, () =>
      checkOp({
        shapes: [shape, [C], [C]],
        gpu: (x, w, b) => groupNorm(x, g, w!, b!, EPS, { variant }),
        ref: (x, w, b) => groupNormRef(x, shape, g, w!, b!, EPS),
        data: shifted,
        atol: 2e-5,
        rtol: 2e-4,
        ...(gradTol ? { gradTol } : {}),
      }));
  }
}

Deno.test("groupNorm() matches the reference without weight and bias", () =>
  checkOp({
    shapes: [[2, 6, 3, 5]],
    gpu: (x) => groupNorm(x, 2, null, null, 1e-6),
    ref: (x) => groupNormRef(x, [2, 6, 3, 5], 2, null, null, 1e-6),
    data: shifted,
    atol: 2e-5,
    rtol: 2e-4,
  }));

Deno.test("groupNorm() gives gradients to weight and bias only when they require them", () =>
  checkOp({
    shapes: [[2, 4, 5], [4], [4]],
    grads: [false, true, false],
    gpu: (x, w, b) => groupNorm(x, 2, w!, b!, EPS),
    ref: (x, w, b) => groupNormRef(x, [2, 4, 5], 2, w!, b!, EPS),
    data: shifted,
    atol: 2e-5,
    rtol: 2e-4,
  }));

// [4, 1, 64] and [2, 3, 12]: rows of whole vec4s, the thread variant's vec4 kernels holding the
// row in registers; [2, 3, 136]: 34 vec4s, past the registers, read from storage
const layerCases: number[][] = [
  [2, 7, 33],
  [1, 5],
  [3, 130],
  [4, 1, 64],
  [2, 9001],
  [2, 3, 12],
  [2, 3, 136],
  [2, 3, 256], // 64 vec4s: read from texture copies
];
for (const shape of layerCases) {
  const N = shape[shape.length - 1]!;
  for (const variant of variants) {
    Deno.test(`layerNorm() ${variant} variant matches the reference and finite differences for ${shape}`, () =>
      checkOp({
        shapes: [shape, [N], [N]],
        gpu: (x, w, b) => layerNorm(x, w!, b!, EPS, { variant }),
        ref: (x, w, b) => layerNormRef(x, N, w!, b!, EPS),
        data: shifted,
        atol: 2e-5,
        rtol: 2e-4,
      }));
  }
}

// x feeds the norm and a residual: the norm's backward kernel adds the residual's gradient to dx
// (the pending gradient it takes) instead of a separate add pass
const residualNorms = {
  groupNorm: {
    shape: [2, 4, 3, 3],
    C: 4,
    gpu: (x: Tensor, w: Tensor, b: Tensor, variant: "workgroup" | "thread") =>
      groupNorm(x, 2, w, b, EPS, { variant }),
    ref: (x: Float64Array, w: Float64Array, b: Float64Array) =>
      groupNormRef(x, [2, 4, 3, 3], 2, w, b, EPS),
  },
  layerNorm: {
    shape: [3, 5, 8],
    C: 8,
    gpu: (x: Tensor, w: Tensor, b: Tensor, variant: "workgroup" | "thread") =>
      layerNorm(x, w, b, EPS, { variant }),
    ref: (x: Float64Array, w: Float64Array, b: Float64Array) => layerNormRef(x, 8, w, b, EPS),
  },
};
for (const [name, c] of Object.entries(residualNorms)) {
  for (const variant of variants) {
    Deno.test(`${name}() ${variant} variant adds a residual's gradient to dx`, () =>
      checkOp({
        shapes: [c.shape, [c.C], [c.C]],
        gpu: (x, w, b) => add(c.gpu(x, w!, b!, variant), x),
        ref: (x, w, b) => c.ref(x, w!, b!).map((v, i) => v + x[i]!),
        data: shifted,
        atol: 2e-5,
        rtol: 2e-4,
      }));
  }
  Deno.test(`${name}() backward through a residual costs no more dispatches than without`, () => {
    const count = (residual: boolean): number =>
      scope(() => {
        const x = randn(c.shape, { requiresGrad: true });
        const y = c.gpu(x, ones([c.C]), zeros([c.C]), "thread");
        const loss = sum(residual ? add(y, x) : y);
        const before = dispatchCount();
        backward(loss);
        x.grad?.dispose();
        return dispatchCount() - before;
      });
    equal(count(true), count(false));
  });
}

Deno.test("layerNorm() matches the reference without weight and bias", () =>
  checkOp({
    shapes: [[3, 2, 19]],
    gpu: (x) => layerNorm(x, null, null, 1e-6),
    ref: (x) => layerNormRef(x, 19, null, null, 1e-6),
    data: shifted,
    atol: 2e-5,
    rtol: 2e-4,
  }));

const bnCases: number[][] = [[3, 4, 5, 3], [1, 3, 4, 5], [5, 3], [2, 5, 1, 7], [3, 2, 60, 50]];
for (const shape of bnCases) {
  const C = shape[1]!;
  for (const training of [true, false]) {
    Deno.test(`batchNorm() in ${training ? "training" : "eval"} mode matches the reference and finite differences for ${shape}`, () => {
      const rm = Float64Array.from(randomData(C, 3), (v) => Math.fround(0.2 * v));
      const rv = Float64Array.from(randomData(C, 4), (v) => Math.fround(0.8 + 0.3 * v));
      return checkOp({
        shapes: [shape, [C], [C]],
        gpu: (x, w, b) =>
          batchNorm(x, w!, b!, { runningMean: tensor(rm, [C]), runningVar: tensor(rv, [C]) }, {
            training,
          }),
        ref: (x, w, b) => batchNormRef(x, shape, w!, b!, rm, rv, { training }).y,
        data: shifted,
        atol: 2e-5,
        rtol: 2e-4,
      });
    });
  }
}

Deno.test("batchNorm() matches the reference without weight, bias or running statistics", () =>
  checkOp({
    shapes: [[4, 3, 2, 3]],
    gpu: (x) => batchNorm(x, null, null, null, { training: true, eps: 1e-3 }),
    ref: (x) => batchNormRef(x, [4, 3, 2, 3], null, null, null, null, { eps: 1e-3 }).y,
    data: shifted,
    atol: 2e-5,
    rtol: 2e-4,
  }));

Deno.test("batchNorm() updates the running statistics in place with momentum and unbiased variance", async () => {
  const shape = [3, 5, 2, 3];
  const x = shifted(0, 90).map(Math.fround);
  const rm = Float64Array.from({ length: 5 }, (_, c) => 0.1 * c);
  const rv = Float64Array.from({ length: 5 }, (_, c) => 1 + 0.2 * c);
  const state = { runningMean: tensor(rm, [5]), runningVar: tensor(rv, [5]) };
  const opts = { training: true, momentum: 0.25 };
  const y = batchNorm(tensor(x, shape), ones([5]), zeros([5]), state, opts);
  const want = batchNormRef(x, shape, null, null, rm, rv, opts);
  assertClose(await y.toArray(), want.y, 2e-5, 2e-4, "output");
  assertClose(await state.runningMean.toArray(), want.runningMean, 1e-6, 1e-5, "running mean");
  assertClose(await state.runningVar.toArray(), want.runningVar, 1e-6, 1e-5, "running var");
  // a second step starts from the updated statistics
  batchNorm(tensor(x, shape), null, null, state, opts);
  const again = batchNormRef(x, shape, null, null, want.runningMean, want.runningVar, opts);
  assertClose(await state.runningVar.toArray(), again.runningVar, 1e-6, 1e-5, "running var");
  // eval mode leaves them alone
  batchNorm(tensor(x, shape), null, null, state, { training: false });
  assertClose(await state.runningMean.toArray(), again.runningMean, 1e-6, 1e-5, "running mean");
});

Deno.test("groupNorm() names the shapes when groups do not divide the channels", () => {
  assertThrows(
    () => groupNorm(zeros([2, 6, 3]), 4, null, null, EPS),
    (e: Error) => e instanceof ShapeError && /\[2, 6, 3\]/.test(e.message),
  );
  assertThrows(
    () => groupNorm(zeros([2, 6, 3]), 3, ones([5]), null, EPS),
    (e: Error) => e instanceof ShapeError && /\[5\].*\[2, 6, 3\].*\[6\]/.test(e.message),
  );
  assertThrows(() => groupNorm(zeros([6]), 3, null, null, EPS), ShapeError);
});

Deno.test("layerNorm() names the shapes when the weight does not fit the last dimension", () => {
  assertThrows(
    () => layerNorm(zeros([2, 7]), ones([6]), null, EPS),
    (e: Error) => e instanceof ShapeError && /\[6\].*\[2, 7\]/.test(e.message),
  );
  assertThrows(() => layerNorm(zeros([2, 7]), null, ones([7, 1]), EPS), ShapeError);
  assertThrows(() => layerNorm(zeros([2, 7]), null, null, -1), ArgumentError);
});

Deno.test("batchNorm() rejects bad shapes, a missing state in eval mode and single values", () => {
  assertThrows(
    () => batchNorm(zeros([2, 3, 4]), null, null, null),
    (e: Error) => e instanceof ShapeError && /\[2, 3, 4\]/.test(e.message),
  );
  const state = { runningMean: zeros([4]), runningVar: ones([4]) };
  assertThrows(
    () => batchNorm(zeros([2, 3, 4, 4]), null, null, state),
    (e: Error) => e instanceof ShapeError && /runningMean.*\[4\]/.test(e.message),
  );
  assertThrows(
    () => batchNorm(zeros([2, 3]), null, null, null, { training: false }),
    ArgumentError,
  );
  assertThrows(() => batchNorm(zeros([1, 3]), null, null, null), ShapeError);
  assertThrows(
    () => batchNorm(zeros([2, 3]), null, null, null, { momentum: 2 }),
    ArgumentError,
  );
  // eval mode with one sample is fine
  equal(batchNorm(zeros([1, 4]), null, null, state, { training: false }).shape.join(), "1,4");
});

Deno.test("groupNorm() backward from texture copies returns exactly those textures to the pool", () => {
  scope(() => {
    const x = randn([2, 4, 8, 8], { requiresGrad: true });
    backward(sum(groupNorm(x, 2, null, null, EPS, { variant: "thread" })));
    x.grad?.dispose();
  });
  // the memory counters stay numbers (a buffer handed to the texture pool made them NaN)
  equal(Number.isFinite(memoryStats().liveBytes), true);
});
