// Fused attention benches. FLOPs: the forward does two [Tq, Tk, D] products (4 B H Tq Tk D);
// the backward recomputes the scores and does five more (dQ side: s, dO.v, dq; key side: s,
// dO.v, dv, dk), 14 B H Tq Tk D.
import {
  attention,
  backward,
  memoryStats,
  noGrad,
  randn,
  resetPeakBytes,
  type Tensor,
} from "../mod.ts";
import { benchOp } from "./_bench.ts";

let y: Tensor | null = null;
const keep = (t: Tensor) => {
  y?.dispose();
  y = t;
};

// The required case: SD 1.x at 512x512 has 4096 tokens, 8 heads of 40 in the first blocks. The
// full score matrix would take 4096 * 4096 * 8 * 4 bytes = 512 MiB; the fused kernel must stay
// far below that, and this bench throws if it does not.
const SCORES = 4096 * 4096 * 8 * 4;
benchOp({
  group: "attention",
  name: "attention f32 1x8x4096x40",
  work: { flops: 4 * 8 * 4096 * 4096 * 40 },
  baseline: true,
  n: 1,
  warmup: 0,
  setup: () => {
    const shape = [1, 8, 4096, 40];
    const q = randn(shape), k = randn(shape), v = randn(shape);
    return Promise.resolve(() => {
      y?.dispose();
      y = null;
      resetPeakBytes();
      keep(noGrad(() => attention(q, k, v)));
      const peak = memoryStats().peakBytes;
      if (peak >= SCORES) {
        throw new Error(`attention peaked at ${peak} bytes, not below the ${SCORES}-byte scores`);
      }
    });
  },
});
const small = [2, 8, 1024, 40];
benchOp({
  group: "attention",
  name: "attention f32 2x8x1024x40",
  work: { flops: 4 * 2 * 8 * 1024 * 1024 * 40 },
  n: 3,
  warmup: 0,
  setup: () => {
    const q = randn(small), k = randn(small), v = randn(small);
    return Promise.resolve(() => keep(noGrad(() => attention(q, k, v))));
  },
});
benchOp({
  group: "attention",
  name: "attention f32 2x8x1024x40 forward+backward",
  work: { flops: 18 * 2 * 8 * 1024 * 1024 * 40 },
  n: 3,
  warmup: 0,
  setup: () => {
    const opts = { requiresGrad: true };
    const q = randn(small, opts), k = randn(small, opts), v = randn(small, opts);
    const dy = randn(small);
    return Promise.resolve(() => {
      backward(attention(q, k, v), dy);
      for (const t of [q, k, v]) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
  },
});
