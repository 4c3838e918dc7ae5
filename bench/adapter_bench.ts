// Benches of the training-side ops: the fused LoRA linear, GEGLU and the AdamW update.
import { AdamW, geglu, loraLinear, randn, type Tensor } from "../mod.ts";
import { benchOp } from "./_bench.ts";

let y: Tensor | null = null;
const keep = (t: Tensor) => {
  y?.dispose();
  y = t;
};

// SD's attention projections at 32x32 latents: 2 x 1024 tokens of width 640, rank 8
const [T, K, N, r] = [2048, 640, 640, 8];
benchOp({
  group: "lora",
  name: `lora_linear f32 ${T}x${K} -> ${N} rank ${r}`,
  work: { flops: 2 * T * K * N + 2 * T * K * r + 2 * T * r * N },
  reps: 5,
  setup: () => {
    const x = randn([T, K]), w = randn([N, K]), d = randn([r, K]), u = randn([N, r]);
    return Promise.resolve(() => keep(loraLinear(x, w, null, d, u, 1)));
  },
});
benchOp({
  group: "activation",
  name: "geglu f32 2x1024x5120",
  work: { bytes: 4 * (2 * 1024 * 5120 + 2 * 1024 * 2560) },
  reps: 5,
  setup: () => {
    const x = randn([2, 1024, 5120]);
    return Promise.resolve(() => keep(geglu(x)));
  },
});
const P = 4 * 1024 * 1024;
benchOp({
  group: "optimizer",
  name: "adamw f32 4M parameters",
  // reads p, g, m, v and writes p, m, v
  work: { bytes: 7 * 4 * P },
  reps: 5,
  setup: () => {
    const p = randn([P], { requiresGrad: true });
    p.grad = randn([P]);
    const opt = new AdamW([p]);
    return Promise.resolve(() => opt.step());
  },
});
