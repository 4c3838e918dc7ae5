import { equal } from "node:assert/strict";
import { backward, deviceInfo, mul, randn, scope, sum, type Tensor, zeros } from "../mod.ts";
import { materializesScores, scaledDotProductAttention } from "../src/nn/layers/attention.ts";
import { assertClose } from "./_helpers.ts";

async function run(materialize: boolean, xs: Tensor[], r: Tensor): Promise<Float32Array[]> {
  const [q, k, v] = xs.map((t) => {
    const c = t.view();
    c.requiresGrad = true;
    return c;
  }) as [Tensor, Tensor, Tensor];
  const y = scope(() => {
    const o = scaledDotProductAttention(q, k, v, { materialize });
    backward(sum(mul(o, r)));
    return o;
  });
  const out = [await y.toArray()];
  for (const t of [q, k, v]) out.push(await t.grad!.toArray());
  return out;
}

Deno.test("attention's fused and materialized paths agree forward and backward (70 keys)", async () => {
  const xs = [randn([2, 3, 66, 8]), randn([2, 3, 70, 8]), randn([2, 3, 70, 8])];
  const r = randn([2, 3, 66, 8]);
  const fused = await run(false, xs, r);
  const mat = await run(true, xs, r);
  // both f32 with different summation orders over 70 keys: agree to ~1e-5 of unit-scale values
  ["output", "dq", "dk", "dv"].forEach((what, i) =>
    assertClose(mat[i]!, fused[i]!, 2e-5, 1e-4, what)
  );
});

Deno.test("attention materializes scores on software adapters up to 64 MiB, and wide heads", () => {
  const q = zeros([1, 2, 64, 8]), k = zeros([1, 2, 12, 8]);
  equal(materializesScores(q, k), deviceInfo().software);
  // 2 x 4 x 2048 x 1025 x 4 bytes = 64 MiB + 64 KiB: over the limit, fused everywhere
  const big = zeros([2, 4, 2048, 1]), bigK = zeros([2, 4, 1025, 1]);
  equal(materializesScores(big, bigK), false);
  equal(materializesScores(zeros([1, 1, 4, 300]), zeros([1, 1, 4, 300])), true);
  for (const t of [q, k, big, bigK]) t.dispose();
});
