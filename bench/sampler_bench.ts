// Sampler benches on SD's 2x4x64x64 latent (batch 2, 512x512 images). "x25 steps" entries time
// 25 steps of each sampler's own work as `sample()` does it (model-input scaling, the NaN mark,
// the sampler update including any ancestral noise), model excluded, nothing read back, one sync
// at the end: divide by 25 for the cost of a step. The "loop" entry times a
// whole 25-step `sample()` with batched classifier-free guidance and a model that does nothing,
// i.e. 25 steps of overhead plus the one final NaN-flag readback. GB/s counts approximate bytes
// moved (each lincomb term read and each output written once, f32).
import { createSampler, randn, sample, type Sampler } from "../mod.ts";
import { markNonFinite, nonFiniteFlag } from "../src/ops/lincomb.ts";
import { benchOp } from "./_bench.ts";

const SHAPE = [2, 4, 64, 64];
const N = 2 * 4 * 64 * 64;
// element accesses per step: scale (2) + mark (1) + denoised (3) + update (3..5) + noise (1..2)
const ACCESSES: Record<string, number> = {
  ddpm: 2 + 1 + 3 + 4 + 1,
  ddim: 2 + 1 + 3 + 3,
  euler: 2 + 1 + 3 + 3,
  euler_a: 2 + 1 + 3 + 4 + 1,
  dpmpp_2m_karras: 2 + 1 + 3 + 4,
};

for (const [name, accesses] of Object.entries(ACCESSES)) {
  benchOp({
    group: "sampler steps",
    name: `${name} x25 steps f32 [2, 4, 64, 64]`,
    work: { bytes: 25 * 4 * N * accesses },
    baseline: name === "euler",
    n: 20,
    setup: () => {
      const out = randn(SHAPE), noise = randn(SHAPE);
      const flag = nonFiniteFlag();
      return Promise.resolve(() => {
        // 25 steps per iteration, so one sync is spread over 25 steps as in `sample()`
        const sampler: Sampler = createSampler(name, 25);
        let x = noise.view();
        for (let i = 0; i < 25; i++) {
          const xin = sampler.scaleModelInput(x, i);
          markNonFinite(out, flag, i);
          const { prev, denoised } = sampler.step(out, i, x);
          for (const t of [xin, denoised, x]) t.dispose();
          x = prev;
        }
        sampler.dispose();
        x.dispose();
      });
    },
  });
}

benchOp({
  group: "sampler loop",
  name: "sample() euler_a x25 steps with CFG f32 [2, 4, 64, 64], model excluded",
  work: { bytes: 25 * 4 * N * (ACCESSES.euler_a! + 4 + 3) },
  n: 10,
  setup: () => {
    const context = randn([2, 77, 8]), negativeContext = randn([2, 77, 8]);
    return Promise.resolve(async () => {
      const x = await sample((x) => x.view(), {
        sampler: "euler_a",
        steps: 25,
        shape: SHAPE,
        seed: 1,
        context,
        negativeContext,
        guidanceScale: 7,
      });
      x.dispose();
    });
  },
});
