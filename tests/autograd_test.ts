import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  add,
  backward,
  checkpoint,
  DisposedError,
  flush,
  Generator,
  matmul,
  memoryStats,
  mul,
  noGrad,
  randn,
  resetPeakBytes,
  scope,
  silu,
  sum,
  sync,
  type Tensor,
  tensor,
} from "../mod.ts";
import { assertClose } from "./_helpers.ts";

Deno.test("backward() accumulates into .grad across calls and skips frozen tensors", async () => {
  const x = tensor([1, 2, 3], [3], { requiresGrad: true });
  const frozen = tensor([4, 5, 6], [3]);
  backward(sum(mul(x, frozen)));
  backward(sum(mul(x, x)));
  deepEqual([...await x.grad!.toArray()], [4 + 2, 5 + 4, 6 + 6]);
  equal(frozen.grad, null);
  equal(frozen.requiresGrad, false);
});

Deno.test("a tensor used twice in a graph gets the sum of both gradient paths", async () => {
  const x = tensor([0.5, -1], [2], { requiresGrad: true });
  const y = add(mul(x, x), silu(x)); // d/dx = 2x + silu'(x)
  backward(sum(y));
  const s = (v: number) => 1 / (1 + Math.exp(-v));
  const want = [0.5, -1].map((v) => 2 * v + s(v) * (1 + v * (1 - s(v))));
  assertClose(await x.grad!.toArray(), want, 1e-6, 1e-5);
});

Deno.test("noGrad() records no graph", () => {
  const x = tensor([1], [1], { requiresGrad: true });
  const y = noGrad(() => mul(x, x));
  equal(y.requiresGrad, false);
  equal(y.node, null);
});

Deno.test("using a disposed tensor throws a clear error", () => {
  const x = tensor([1, 2], [2]);
  x.dispose();
  throws(() => add(x, x), (e: Error) => e instanceof DisposedError && e.message.includes("[2]"));
});

Deno.test("scope() frees what it does not return", () => {
  flush();
  const before = memoryStats().liveBytes;
  const kept = scope(() => {
    const a = randn([256, 256]);
    const b = mul(a, a);
    return add(b, a);
  });
  flush(); // per-dispatch uniform buffers return to the pool at submit
  equal(memoryStats().liveBytes - before, kept.buffer.size);
  kept.dispose();
});

function block(x: Tensor, ws: Tensor[]): Tensor {
  let h = x;
  for (const w of ws) h = silu(matmul(h, w));
  return h;
}

Deno.test("checkpoint() gives identical gradients with a lower peak of live bytes", async () => {
  const g = new Generator(5);
  const x = randn([128, 128], { generator: g, requiresGrad: true });
  const ws = Array.from(
    { length: 8 },
    () => randn([128, 128], { generator: g, std: 0.1, requiresGrad: true }),
  );
  const run = async (ck: boolean) => {
    await sync();
    resetPeakBytes();
    const before = memoryStats().liveBytes;
    scope(() => {
      // four segments of two layers: checkpointing keeps only the segment outputs
      let y = x;
      for (let i = 0; i < ws.length; i += 2) {
        const seg = ws.slice(i, i + 2);
        y = ck ? checkpoint((a) => block(a, seg), [y]) : block(y, seg);
      }
      backward(sum(y));
    });
    await sync();
    const peak = memoryStats().peakBytes - before;
    const grads = [x, ...ws].map((t) => t.grad!);
    const data = await Promise.all(grads.map((t) => t.toArray()));
    for (const t of [x, ...ws]) {
      t.grad!.dispose();
      t.grad = null;
    }
    return { peak, data };
  };
  const plain = await run(false);
  const ck = await run(true);
  plain.data.forEach((d, i) => deepEqual([...ck.data[i]!], [...d], `gradient ${i} differs`));
  ok(ck.peak < plain.peak, `checkpoint peak ${ck.peak} should be below ${plain.peak}`);
});
