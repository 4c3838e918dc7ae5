// Normalization and softmax benches (GB/s counts one read of the input and one write of the
// output; the kernels read the input two or three times).
import {
  backward,
  batchNorm,
  groupNorm,
  groupNormSilu,
  layerNorm,
  ones,
  randn,
  scope,
  silu,
  softmax,
  type Tensor,
  zeros,
} from "../mod.ts";
import { benchOp } from "./_bench.ts";

let y: Tensor | null = null;
const keep = (t: Tensor) => {
  y?.dispose();
  y = t;
};
const rw = (shape: number[]) => 2 * 4 * shape.reduce((a, b) => a * b, 1);

const gn = [2, 320, 64, 64];
benchOp({
  group: "norm",
  name: "group_norm f32 2x320x64x64 g32",
  work: { bytes: rw(gn) },
  baseline: true,
  n: 20,
  setup: () => {
    const x = randn(gn), w = ones([320]), b = zeros([320]);
    return Promise.resolve(() => keep(groupNorm(x, 32, w, b, 1e-5)));
  },
});
benchOp({
  group: "norm",
  name: "group_norm f32 2x320x64x64 g32 forward+backward",
  // backward reads x and dy twice and writes dx: count x, dy read once, dx and y written
  work: { bytes: 2 * rw(gn) },
  n: 10,
  setup: () => {
    const x = randn(gn, { requiresGrad: true });
    const w = ones([320], { requiresGrad: true }), b = zeros([320], { requiresGrad: true });
    const dy = randn(gn);
    return Promise.resolve(() => {
      backward(groupNorm(x, 32, w, b, 1e-5), dy);
      for (const t of [x, w, b]) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
  },
});
// the fused group norm + SiLU beside groupNorm then silu on the same shapes (the U-Net's and the
// VAE's), forward and forward+backward; GB/s counts the same bytes for both
const gnSilu: [number[], number][] = [[[16, 128, 16, 16], 16], [[1, 512, 32, 32], 32]];
for (const [shape, g] of gnSilu) {
  const C = shape[1]!;
  const label = `${shape.join("x")} g${g}`;
  const ops = [
    ["group_norm_silu", (x: Tensor, w: Tensor, b: Tensor) => groupNormSilu(x, g, w, b, 1e-5)],
    ["group_norm then silu", (x: Tensor, w: Tensor, b: Tensor) => silu(groupNorm(x, g, w, b))],
  ] as const;
  for (const [name, op] of ops) {
    benchOp({
      group: `norm_silu ${label}`,
      name: `${name} f32 ${label}`,
      work: { bytes: rw(shape) },
      n: 20,
      setup: () => {
        const x = randn(shape), w = ones([C]), b = zeros([C]);
        // the scope frees the unfused pair's intermediate
        return Promise.resolve(() => keep(scope(() => op(x, w, b))));
      },
    });
    benchOp({
      group: `norm_silu ${label} forward+backward`,
      name: `${name} f32 ${label} forward+backward`,
      work: { bytes: 2 * rw(shape) },
      n: 10,
      setup: () => {
        const x = randn(shape, { requiresGrad: true });
        const w = ones([C], { requiresGrad: true }), b = zeros([C], { requiresGrad: true });
        const dy = randn(shape);
        return Promise.resolve(() => {
          scope(() => backward(op(x, w, b), dy));
          for (const t of [x, w, b]) {
            t.grad?.dispose();
            t.grad = null;
          }
        });
      },
    });
  }
}
const ln = [2, 4096, 320];
for (const variant of ["workgroup", "thread"] as const) {
  benchOp({
    group: "norm",
    name: `layer_norm f32 2x4096x320 ${variant}`,
    work: { bytes: rw(ln) },
    n: 20,
    setup: () => {
      const x = randn(ln), w = ones([320]), b = zeros([320]);
      return Promise.resolve(() => keep(layerNorm(x, w, b, 1e-5, { variant })));
    },
  });
}
const bn = [8, 64, 32, 32];
for (const training of [true, false]) {
  benchOp({
    group: "norm",
    name: `batch_norm f32 8x64x32x32 ${training ? "train" : "eval"}`,
    work: { bytes: rw(bn) },
    n: 20,
    setup: () => {
      const x = randn(bn), w = ones([64]), b = zeros([64]);
      const state = { runningMean: zeros([64]), runningVar: ones([64]) };
      return Promise.resolve(() => keep(batchNorm(x, w, b, state, { training })));
    },
  });
}
const sm = [16, 1024, 1024];
for (const variant of ["workgroup", "thread"] as const) {
  benchOp({
    group: "softmax",
    name: `softmax f32 16x1024x1024 ${variant}`,
    work: { bytes: rw(sm) },
    n: 10,
    setup: () => {
      const x = randn(sm);
      return Promise.resolve(() => keep(softmax(x, -1, { variant })));
    },
  });
}
