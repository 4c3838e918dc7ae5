// The texture matmul's cache of packed weights: a weight is packed once, an in-place write
// (here an AdamW step) drops its packs so products see the new values, and freeing it frees them.
import { equal, ok } from "node:assert/strict";
import {
  AdamW,
  backward,
  cachePacksOf,
  dispatchCount,
  matmul,
  matmulRef,
  packCacheBytes,
  setPackCacheLimit,
  sum,
  tensor,
} from "../src/ops/mod.ts";
import { Parameter } from "../src/nn/mod.ts";
import { assertClose, randomData } from "./_helpers.ts";

const xs = randomData(5 * 24, 1), ws = randomData(24 * 9, 2);

Deno.test("A cached weight is packed once and products stay exact", async () => {
  const before = packCacheBytes();
  using w = tensor(ws, [24, 9]);
  cachePacksOf(w);
  using x = tensor(xs, [5, 24]);
  const run = () => {
    const n = dispatchCount();
    const y = matmul(x, w, { variant: "texture" });
    return { y, dispatches: dispatchCount() - n };
  };
  const a = run(), b = run();
  equal(a.dispatches, 3, "pack x, pack w, multiply");
  equal(b.dispatches, 2, "the second product reuses w's pack");
  ok(packCacheBytes() > before);
  const want = matmulRef(xs, [1, 5, 24], ws, [1, 24, 9]);
  assertClose(await a.y.toArray(), want, 1e-5, 1e-5);
  assertClose(await b.y.toArray(), want, 1e-5, 1e-5);
  w.dispose();
  equal(packCacheBytes(), before, "freeing the weight frees its packs");
});

Deno.test("An optimizer step drops a parameter's packs, so the next product uses new values", async () => {
  const p = new Parameter(tensor(ws, [24, 9]));
  using x = tensor(xs, [5, 24]);
  matmul(x, p.value, { variant: "texture" }).dispose(); // packs and caches the weight
  backward(sum(matmul(x, p.value, { variant: "texture" })));
  const opt = new AdamW([p.value], { lr: 0.1, weightDecay: 0 });
  opt.step();
  const w1 = await p.value.toArray();
  assertClose([Math.abs(w1[0]! - ws[0]!)], [0.1], 1e-3, 0, "the step moved the weight");
  const y = await matmul(x, p.value, { variant: "texture" }).toArray();
  assertClose(y, matmulRef(xs, [1, 5, 24], w1, [1, 24, 9]), 1e-5, 1e-5);
  opt.dispose();
  p.dispose();
});

Deno.test("setPackCacheLimit(0) empties the cache and stops caching", () => {
  using w = tensor(ws, [24, 9]);
  cachePacksOf(w);
  using x = tensor(xs, [5, 24]);
  matmul(x, w, { variant: "texture" }).dispose();
  ok(packCacheBytes() > 0);
  setPackCacheLimit(0);
  try {
    equal(packCacheBytes(), 0);
    const n = dispatchCount();
    matmul(x, w, { variant: "texture" }).dispose();
    equal(dispatchCount() - n, 3, "w is packed again");
    equal(packCacheBytes(), 0);
  } finally {
    setPackCacheLimit(512 * 2 ** 20);
  }
});

Deno.test("A freed weight's buffer, reused by a temporary tensor, is not cached again", async () => {
  const before = packCacheBytes();
  using x = tensor(xs, [5, 24]);
  const w = tensor(ws, [24, 9]);
  cachePacksOf(w);
  matmul(x, w, { variant: "texture" }).dispose();
  const buffer = w.buffer;
  w.dispose();
  await x.toArray(); // a submit: the pool's quarantine ends
  using t = tensor(randomData(24 * 9, 3), [24, 9]);
  equal(t.buffer, buffer, "precondition: the pool hands the freed buffer out again");
  const n = dispatchCount();
  matmul(x, t, { variant: "texture" }).dispose();
  equal(dispatchCount() - n, 3, "t is packed like any temporary");
  equal(packCacheBytes(), before, "and its pack is not kept");
});
