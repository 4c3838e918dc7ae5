// Linear benches: the fused product (bias in the matmul epilogue, residual accumulated onto a copy)
// against the separate matmul and element-wise adds it replaces, at the small U-Net's
// feed-forward sizes (batch 16 at 16x16: 4096 tokens of 64 features).
import { add, linear, matmul, randn, type Tensor } from "../mod.ts";
import { benchOp } from "./_bench.ts";

let y: Tensor | null = null;
const keep = (t: Tensor) => {
  y?.dispose();
  y = t;
};

const sizes: { rows: number; k: number; n: number; residual: boolean }[] = [
  { rows: 4096, k: 64, n: 512, residual: false }, // GEGLU's projection
  { rows: 4096, k: 256, n: 64, residual: true }, // the feed-forward's output onto the residual
];

for (const { rows, k, n, residual } of sizes) {
  const shape = `${rows}x${k}->${n}${residual ? " +residual" : ""}`;
  const flops = 2 * rows * k * n;
  for (const fused of [true, false]) {
    benchOp({
      group: `linear ${shape}`,
      name: `linear f32 ${shape} ${fused ? "fused" : "matmul then adds"}`,
      work: { flops },
      baseline: !fused,
      n: 20,
      setup: () => {
        const x = randn([rows, k]), w = randn([n, k]), b = randn([n]);
        const r = residual ? randn([rows, n]) : null;
        return Promise.resolve(() => {
          if (fused) return keep(linear(x, w, { bias: b, residual: r }));
          const p = matmul(x, w, { transB: true });
          const pb = add(p, b);
          p.dispose();
          if (!r) return keep(pb);
          keep(add(pb, r));
          pb.dispose();
        });
      },
    });
  }
}
