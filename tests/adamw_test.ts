import { equal } from "node:assert/strict";
import { AdamW, adamwRef, add, backward, clipGradNorm, mul, square, sum, tensor } from "../mod.ts";
import { assertClose, randomData } from "./_helpers.ts";

Deno.test("AdamW matches the CPU reference over 10 steps with global-norm clipping", async () => {
  // sizes 35 and 3 take the scalar kernel, 24 (a multiple of 4) the vec4 one
  const shapes = [[7, 5], [3], [4, 6]];
  const init = shapes.map((s, i) =>
    Float64Array.from(randomData(s[0]! * (s[1] ?? 1), 3 + i), Math.fround)
  );
  const coef = shapes.map((s, i) =>
    Float64Array.from(randomData(s[0]! * (s[1] ?? 1), 11 + i), (x) => Math.fround(2 + x))
  );
  const opts = { lr: 0.05, betas: [0.9, 0.99] as [number, number], eps: 1e-8, weightDecay: 0.1 };
  const maxGradNorm = 0.5;
  const params = init.map((d, i) => tensor(d, shapes[i]!, { requiresGrad: true }));
  const c = coef.map((d, i) => tensor(d, shapes[i]!));
  const opt = new AdamW(params, { ...opts, maxGradNorm });
  // reference state
  const p = init.map((d) => d.slice()), m = init.map((d) => new Float64Array(d.length));
  const v = init.map((d) => new Float64Array(d.length));
  let clipped = 0;
  for (let step = 1; step <= 10; step++) {
    // loss = sum_i sum(c_i * p_i^2), gradient 2 c p
    const loss = params.map((q, i) => sum(mul(square(q), c[i]!))).reduce((a, b) => add(a, b));
    backward(loss);
    opt.step();
    opt.zeroGrad();
    const g = p.map((pi, i) => pi.map((x, j) => 2 * coef[i]![j]! * x));
    const norm = Math.sqrt(g.reduce((s, gi) => s + gi.reduce((a, x) => a + x * x, 0), 0));
    const clip = Math.min(1, maxGradNorm / (norm + 1e-6));
    if (clip < 1) clipped++;
    p.forEach((pi, i) => adamwRef(pi, g[i]!, m[i]!, v[i]!, step, opts, clip));
  }
  equal(clipped > 0, true, "the test must exercise clipping");
  for (let i = 0; i < params.length; i++) {
    // f32 vs f64 over 10 steps: relative error ~1e-6 per step, lr-scaled
    assertClose(await params[i]!.toArray(), p[i]!, 2e-5, 1e-4, `parameter ${i}`);
  }
});

Deno.test("clipGradNorm() scales gradients to the requested global norm", async () => {
  const a = tensor([0, 0], [2], { requiresGrad: true });
  const b = tensor([0], [1], { requiresGrad: true });
  a.grad = tensor([3, 4], [2]);
  b.grad = tensor([12], [1]);
  const sq = clipGradNorm([a, b], 2.6);
  equal(await sq.item(), 169);
  const f = 2.6 / (13 + 1e-6);
  assertClose(await a.grad.toArray(), [3 * f, 4 * f], 1e-6, 1e-6);
  assertClose(await b.grad.toArray(), [12 * f], 1e-6, 1e-6);
});
