import { equal, ok, throws } from "node:assert/strict";
import {
  add,
  backward,
  conv2d,
  conv2dRef,
  deviceInfo,
  dispatchCount,
  type MatmulVariant,
  profile,
  randn,
  scope,
  ShapeError,
  sum,
  tensor,
} from "../mod.ts";
import { checkOp } from "./_helpers.ts";

type Case = { x: number[]; w: number[]; stride: number; pad: number; bias: boolean; what: string };
const cases: Case[] = [
  {
    x: [1, 3, 7, 6],
    w: [5, 3, 3, 3],
    stride: 1,
    pad: 1,
    bias: true,
    what: "3x3 padding 1 and odd sizes",
  },
  {
    x: [2, 2, 9, 7],
    w: [4, 2, 3, 3],
    stride: 2,
    pad: 1,
    bias: true,
    what: "stride 2 and odd sizes",
  },
  { x: [2, 5, 4, 3], w: [3, 5, 1, 1], stride: 1, pad: 0, bias: true, what: "1x1 (no im2col)" },
  { x: [2, 3, 6, 5], w: [2, 3, 3, 3], stride: 1, pad: 0, bias: false, what: "no padding, no bias" },
  // rows of whole vec4s: the texture variant packs im2col from 16-byte loads
  { x: [2, 3, 5, 8], w: [4, 3, 3, 3], stride: 1, pad: 1, bias: true, what: "vec4 rows, 3x3" },
  { x: [1, 2, 6, 12], w: [3, 2, 5, 5], stride: 1, pad: 2, bias: false, what: "vec4 rows, 5x5" },
  { x: [1, 2, 3, 8], w: [2, 2, 3, 5], stride: 1, pad: 0, bias: true, what: "vec4 rows, 3x5 valid" },
  { x: [2, 1, 4, 4], w: [2, 1, 3, 5], stride: 1, pad: 4, bias: true, what: "vec4 rows, pad 4" },
  // 3 x 6400 positions: the folded weight gradient splits the batch over two products when a
  // texture holds at most 16384 rows (llvmpipe) and accumulates the second into the first
  {
    x: [3, 1, 80, 80],
    w: [2, 1, 3, 3],
    stride: 1,
    pad: 1,
    bias: true,
    what: "batch past a texture",
  },
  { x: [2, 3, 5, 6], w: [7, 3, 1, 1], stride: 2, pad: 0, bias: false, what: "1x1 stride 2" },
  // under 64 output positions per sample: the texture variant folds the batch into one product
  // (columns b * 16 + p), forward and the transposed convolution of dx
  { x: [3, 8, 4, 4], w: [6, 8, 3, 3], stride: 1, pad: 1, bias: true, what: "4x4, batch folded" },
  // 64 output positions: the weight gradient copies dy's rows (256 bytes) side by side
  { x: [2, 3, 8, 8], w: [5, 3, 3, 3], stride: 1, pad: 1, bias: true, what: "8x8, dy rows copied" },
  // "same" padding on the texture variant: im2col copied from shifted copies of x (and from x
  // itself when a channel is whole 256-byte rows), zeros copied where taps reach past x
  { x: [2, 2, 8, 8], w: [3, 2, 5, 5], stride: 1, pad: 2, bias: true, what: "5x5 on 8x8, copies" },
  { x: [2, 2, 1, 4], w: [3, 2, 3, 3], stride: 1, pad: 1, bias: false, what: "a one-row map" },
  // more outputs than im2col columns: the forward keeps the im2col kernel (no pass over the
  // weight to reorder it); the input gradient's transposed convolution, whose flipped weight is
  // taps-major anyway, still copies
  {
    x: [1, 20, 4, 4],
    w: [20, 20, 3, 3],
    stride: 1,
    pad: 1,
    bias: true,
    what: "a weight wider than its im2col",
  },
];

for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of cases) {
    Deno.test(`conv2d() ${variant} matches the reference for ${c.what}`, () =>
      checkOp({
        shapes: c.bias ? [c.x, c.w, [c.w[0]!]] : [c.x, c.w],
        gpu: (x, w, b) => conv2d(x, w!, b ?? null, { stride: c.stride, padding: c.pad, variant }),
        ref: (x, w, b) => conv2dRef(x, c.x, w!, c.w, b ?? null, c.stride, c.pad),
        atol: 1e-5,
        rtol: 1e-4,
      }));
  }
}

Deno.test("conv2d() names both shapes when channels differ", () => {
  throws(
    () =>
      conv2d(
        tensor(new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]),
        tensor(new Float32Array(4 * 2 * 9), [4, 2, 3, 3]),
      ),
    (e: Error) =>
      e instanceof ShapeError && e.message.includes("[4, 2, 3, 3]") &&
      e.message.includes("[2, 3, 4, 4]"),
  );
});

// the residual is copied into the output and the product accumulates onto it (beta = 1)
type ResidualCase = { x: number[]; w: number[]; pad: number; what: string };
const residualCases: ResidualCase[] = [
  { x: [2, 3, 5, 6], w: [4, 3, 3, 3], pad: 1, what: "3x3 (im2col texture on the texture variant)" },
  { x: [2, 5, 4, 3], w: [3, 5, 1, 1], pad: 0, what: "1x1 (no im2col)" },
  { x: [3, 5, 4, 4], w: [4, 5, 3, 3], pad: 1, what: "4x4 (batch folded on the texture variant)" },
];

for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of residualCases) {
    Deno.test(`conv2d() ${variant} adds a residual for ${c.what}`, () => {
      const [B, , H, W] = c.x as [number, number, number, number];
      const out = [B, c.w[0]!, H + 2 * c.pad - c.w[2]! + 1, W + 2 * c.pad - c.w[3]! + 1];
      return checkOp({
        shapes: [c.x, c.w, [c.w[0]!], out],
        gpu: (x, w, b, r) => conv2d(x, w!, b!, { padding: c.pad, variant, residual: r! }),
        ref: (x, w, b, r) => conv2dRef(x, c.x, w!, c.w, b!, 1, c.pad).map((v, i) => v + r![i]!),
        // f32 sums of up to 27 products of values in [-1, 1) plus one residual: below 1e-5
        atol: 1e-5,
        rtol: 1e-4,
      });
    });
  }
}

Deno.test("conv2d() names a residual that does not match the output", () => {
  const x = tensor(new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
  const w = tensor(new Float32Array(4 * 3 * 9), [4, 3, 3, 3]);
  throws(
    () => conv2d(x, w, null, { residual: tensor(new Float32Array(2 * 4 * 16), [2, 4, 4, 4]) }),
    /residual \[2, 4, 4, 4\] f32 must match the output \[2, 4, 2, 2\] f32/,
  );
});

// x feeds two convolutions: the second one's input-gradient product accumulates onto the first
// one's gradient (the transposed convolution for 3x3 stride 1, the product for 1x1)
for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of residualCases) {
    Deno.test(`conv2d() ${variant} adds x's gradient from another use for ${c.what}`, () =>
      checkOp({
        shapes: [c.x, c.w, c.w],
        gpu: (x, w1, w2) =>
          add(
            conv2d(x, w1!, null, { padding: c.pad, variant }),
            conv2d(x, w2!, null, { padding: c.pad, variant }),
          ),
        ref: (x, w1, w2) => {
          const b = conv2dRef(x, c.x, w2!, c.w, null, 1, c.pad);
          return conv2dRef(x, c.x, w1!, c.w, null, 1, c.pad).map((v, i) => v + b[i]!);
        },
        // f32 sums of up to 27 products of values in [-1, 1), twice
        atol: 1e-5,
        rtol: 1e-4,
      }));
  }
}

Deno.test("conv2d() backward of x used twice costs no more dispatches than two inputs", () => {
  const count = (shared: boolean): number =>
    scope(() => {
      const x = randn([2, 3, 5, 6], { requiresGrad: true });
      const x2 = shared ? x : randn([2, 3, 5, 6], { requiresGrad: true });
      const w = () => randn([4, 3, 3, 3]);
      const y = add(conv2d(x, w(), null, { padding: 1 }), conv2d(x2, w(), null, { padding: 1 }));
      const before = dispatchCount();
      backward(sum(y));
      return dispatchCount() - before;
    });
  equal(count(true), count(false));
});

// a bias per sample [B, Cout] (a time embedding) goes into the epilogue after the conv's bias:
// the per-batch texture products, the folded 4x4 product and the matmul (1x1) path
type SampleBiasCase = { x: number[]; w: number[]; pad: number; what: string };
const sampleBiasCases: SampleBiasCase[] = [
  { x: [2, 3, 8, 8], w: [4, 3, 3, 3], pad: 1, what: "3x3 (a product per sample)" },
  { x: [3, 5, 4, 4], w: [4, 5, 3, 3], pad: 1, what: "4x4 (batch folded on the texture variant)" },
  { x: [2, 5, 4, 3], w: [3, 5, 1, 1], pad: 0, what: "1x1" },
];
for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of sampleBiasCases) {
    Deno.test(`conv2d() ${variant} adds a bias per sample for ${c.what}`, () =>
      checkOp({
        shapes: [c.x, c.w, [c.w[0]!], [c.x[0]!, c.w[0]!]],
        gpu: (x, w, b, sb) => conv2d(x, w!, b!, { padding: c.pad, variant, sampleBias: sb! }),
        ref: (x, w, b, sb) => conv2dRef(x, c.x, w!, c.w, b!, 1, c.pad, sb!),
        // f32 sums of up to 45 products of values in [-1, 1) plus the bias: below 1e-5
        atol: 1e-5,
        rtol: 1e-4,
      }));
  }
}

// K = C kh kw past the texture side: the texture variant splits the input channels into groups
// whose products fit (accumulated through the residual) instead of the tiled kernel
const side = deviceInfo().limits.maxTextureDimension2D;
const wide: Case = {
  x: [2, Math.floor(side / 9) + 1, 3, 3],
  w: [3, Math.floor(side / 9) + 1, 3, 3],
  stride: 1,
  pad: 1,
  bias: true,
  what: `K past the texture side (${side})`,
};
Deno.test(`conv2d() texture splits the channels when ${wide.what}`, async () => {
  await checkOp({
    shapes: [wide.x, wide.w, [wide.w[0]!], [wide.x[0]!, wide.w[0]!, 3, 3]],
    gpu: (x, w, b, r) => conv2d(x, w!, b!, { padding: 1, variant: "texture", residual: r! }),
    ref: (x, w, b, r) => conv2dRef(x, wide.x, w!, wide.w, b!, 1, 1).map((v, i) => v + r![i]!),
    // sums of 16k+ products of values in [-1, 1) (|y| ~ 130): f32 rounding ~1e-5 relative
    atol: 1e-4,
    rtol: 1e-4,
    fdSamples: 16,
  });
  const x = randn(wide.x), w = randn(wide.w);
  const report = await profile(() => conv2d(x, w, null, { padding: 1, variant: "texture" }));
  const kernels = report.byKernel.map((k) => k.key);
  ok(!kernels.some((k) => k.startsWith("matmul_tiled")), kernels.join(", "));
  ok(kernels.some((k) => k.startsWith("matmul_texture")), kernels.join(", "));
});
