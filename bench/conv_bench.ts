// conv2d benches (im2col + matmul on the adapter's matmul variant).
import { backward, conv2d, randn, scope, sum, type Tensor } from "../mod.ts";
import { benchOp } from "./_bench.ts";

const cases: [number, number, number, number, number, number][] = [
  // B, Cin, Cout, H, k, stride
  [2, 64, 64, 32, 3, 1],
  [2, 64, 64, 32, 1, 1],
  [2, 64, 64, 32, 3, 2],
  [2, 320, 320, 32, 3, 1],
  // 16 positions per sample: the texture variant folds the batch into one product's columns
  [16, 128, 128, 4, 3, 1],
];
for (const [B, Ci, Co, H, k, s] of cases) {
  const Ho = Math.floor((H + 2 * (k >> 1) - k) / s) + 1;
  benchOp({
    group: "conv2d",
    name: `conv2d f32 ${k}x${k} s${s} ${B}x${Ci}x${H}x${H} -> ${Co}`,
    work: { flops: 2 * B * Co * Ho * Ho * Ci * k * k },
    n: Ci >= 320 ? 5 : undefined,
    // CONV_REPS=1 times one conv per wait (includes Deno's ~11.5 ms completion polling)
    reps: Ci >= 320 ? 1 : Number(Deno.env.get("CONV_REPS") ?? 5),
    setup: () => {
      const x = randn([B, Ci, H, H]), w = randn([Co, Ci, k, k]), b = randn([Co]);
      let y: Tensor | null = null;
      return Promise.resolve(() => {
        y?.dispose();
        y = conv2d(x, w, b, { stride: s, padding: k >> 1 });
      });
    },
  });
}
// forward + backward to x and the weight (software adapters: the weight gradient is one product
// over the batch, its transposed im2col written straight into the operand texture)
benchOp({
  group: "conv2d",
  name: "conv2d forward+backward f32 3x3 s1 16x64x16x16 -> 64",
  work: { flops: 3 * 2 * 16 * 64 * 256 * 64 * 9 },
  n: 5,
  setup: () => {
    const x = randn([16, 64, 16, 16], { requiresGrad: true });
    const w = randn([64, 64, 3, 3], { requiresGrad: true });
    return Promise.resolve(() =>
      scope(() => {
        backward(sum(conv2d(x, w, null, { padding: 1 })));
        for (const t of [x, w]) {
          t.grad?.dispose();
          t.grad = null;
        }
      })
    );
  },
});
// backward to the weight only (a frozen input, as in a LoRA's conv adapter): the folded product
benchOp({
  group: "conv2d",
  name: "conv2d forward+weight grad f32 3x3 s1 16x128x8x8 -> 128",
  work: { flops: 2 * 2 * 16 * 128 * 64 * 128 * 9 },
  n: 5,
  setup: () => {
    const x = randn([16, 128, 8, 8]);
    const w = randn([128, 128, 3, 3], { requiresGrad: true });
    return Promise.resolve(() =>
      scope(() => {
        backward(sum(conv2d(x, w, null, { padding: 1 })));
        w.grad?.dispose();
        w.grad = null;
      })
    );
  },
});
