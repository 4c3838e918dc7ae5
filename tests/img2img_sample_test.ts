// img2img and inpainting in the sampling loop, on the exact Gaussian model of sampling_k_test:
// strength 0 returns the start latents, 1 is text-to-image, in between runs the last steps of the
// full schedule (A1111's rule), and a mask keeps the unmasked latents exactly.
import { deepEqual, equal, notDeepEqual, ok, rejects } from "node:assert/strict";
import {
  affine,
  ArgumentError,
  createSchedule,
  Generator,
  randn,
  sample,
  type SampleOptions,
  ShapeError,
  type Tensor,
  tensor,
} from "../mod.ts";
import { sigmaSchedule } from "../src/schedule/sigma_schedules.ts";
import "./_helpers.ts"; // acquires the device

const MU = 0.3, S = 0.5, sch = createSchedule();
const epsModel = (xin: Tensor, t: number) => {
  const sigma = sch.tToSigma(t), c = Math.sqrt(sigma * sigma + 1), q = S * S + sigma * sigma;
  return affine(xin, c * sigma / q, -MU * sigma / q);
};
const SHAPE = [1, 4, 8, 8];

async function run(o: Partial<SampleOptions>): Promise<{ x: Float32Array; sigmas: number[] }> {
  const sigmas: number[] = [];
  using x = await sample(epsModel, {
    shape: SHAPE,
    steps: 10,
    seed: 3,
    sampler: "euler",
    sigmaSchedule: "karras",
    onStep: (i) => void sigmas.push(i.sigma),
    ...o,
  });
  return { x: await x.toArray(), sigmas };
}

Deno.test("img2img: strength 0 returns the input, 1 is text-to-image, 0.5 runs the last 6 of 10", async () => {
  using init = randn(SHAPE, { generator: new Generator(1) });
  const initArr = await init.toArray();
  const s0 = await run({ initLatent: init, strength: 0 });
  deepEqual(s0.x, initArr);
  equal(s0.sigmas.length, 0);
  const t2i = await run({});
  deepEqual((await run({ initLatent: init, strength: 1 })).x, t2i.x);
  // A1111: t_enc = floor(0.5 * 10) = 5, sigmas[10 - 5 - 1:]: 6 steps from sigma 4 of the
  // 10-step Karras schedule
  const half = await run({ initLatent: init, strength: 0.5 });
  const full = sigmaSchedule("karras", 10);
  equal(half.sigmas.length, 6);
  ok(Math.abs(half.sigmas[0]! - full[4]!) < 1e-12, `${half.sigmas[0]} vs ${full[4]}`);
  // a diffusers-style name runs its k-diffusion twin for img2img
  equal(
    (await run({ initLatent: init, strength: 0.5, sampler: "dpmpp_2m_karras" })).sigmas.length,
    6,
  );
  // the lower the strength, the closer to the input
  const low = await run({ initLatent: init, strength: 0.2 });
  const dist = (a: Float32Array) => a.reduce((e, v, i) => e + Math.abs(v - initArr[i]!), 0);
  ok(dist(low.x) < dist(half.x), `${dist(low.x)} vs ${dist(half.x)}`);
});

Deno.test("inpainting keeps the unmasked latents and repaints the masked ones", async () => {
  using init = randn(SHAPE, { generator: new Generator(2) });
  const initArr = await init.toArray();
  // repaint the left half
  const m = Array.from({ length: 64 }, (_, i) => (i % 8 < 4 ? 1 : 0));
  using mask = tensor(m, [1, 1, 8, 8]);
  const { x } = await run({ initLatent: init, strength: 0.8, mask });
  let kept = 0, changed = 0;
  for (let i = 0; i < x.length; i++) {
    if (m[i % 64] === 0) kept = Math.max(kept, Math.abs(x[i]! - initArr[i]!));
    else changed = Math.max(changed, Math.abs(x[i]! - initArr[i]!));
  }
  // the final Euler step returns the blended estimate: init + 0 * (D - init) is init exactly
  equal(kept, 0);
  ok(changed > 0.1, `${changed}`);
  notDeepEqual(x, initArr);
});

Deno.test("img2img bad input: strength out of range, mask of the wrong size", async () => {
  using init = randn(SHAPE);
  for (const strength of [-0.1, 1.5, NaN]) {
    await rejects(() => run({ initLatent: init, strength }), (e: Error) => {
      ok(e instanceof ArgumentError && e.message.includes("from 0 to 1"), e.message);
      return true;
    });
  }
  using bad = tensor(new Array(16).fill(1), [1, 1, 4, 4]);
  await rejects(() => run({ initLatent: init, mask: bad }), (e: Error) => {
    ok(e instanceof ShapeError && e.message.includes("[1, 1, 4, 4]"), e.message);
    return true;
  });
  await rejects(() => run({ strength: 0.5 }), ArgumentError);
});
