// conv2d benches (im2col + matmul on the adapter's matmul variant).
import { conv2d, randn, type Tensor } from "../mod.ts";
import { benchOp } from "./_bench.ts";

const cases: [number, number, number, number, number, number][] = [
  // B, Cin, Cout, H, k, stride
  [2, 64, 64, 32, 3, 1],
  [2, 64, 64, 32, 1, 1],
  [2, 64, 64, 32, 3, 2],
  [2, 320, 320, 32, 3, 1],
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
