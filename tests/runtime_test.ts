import { equal, ok, throws } from "node:assert/strict";
import {
  add,
  bucketSize,
  deviceInfo,
  flush,
  LimitError,
  matmul,
  matmulRef,
  memoryStats,
  pipelineCount,
  randn,
  silu,
  tensor,
  unaryRef,
  zeros,
} from "../mod.ts";
import { assertClose, randomData } from "./_helpers.ts";

Deno.test("a tensor over the adapter's binding limit names its size and the limit", () => {
  const lim = deviceInfo().limits.maxStorageBufferBindingSize;
  const rows = Math.ceil(lim / 4 / 1024) + 1;
  throws(
    () => zeros([rows, 1024]),
    (e: Error) =>
      e instanceof LimitError && e.message.includes(String(rows * 4096)) &&
      e.message.includes(String(lim)),
  );
});

Deno.test("buffer buckets round up by at most an eighth", () => {
  for (const n of [1, 255, 257, 1000, 4096, 5000, 1 << 20, (1 << 20) + 1, 123456789]) {
    const b = bucketSize(n);
    ok(b >= n && (n <= 256 || b <= n * 1.25), `${n} -> ${b}`);
  }
});

Deno.test("released buffers are reused after a submit, so live bytes return to the start", () => {
  flush();
  const start = memoryStats().liveBytes;
  for (let i = 0; i < 5; i++) {
    const a = randn([1000]);
    const b = add(a, a);
    a.dispose();
    b.dispose();
  }
  flush();
  equal(memoryStats().liveBytes, start);
  ok(memoryStats().pooledBytes > 0);
});

Deno.test("one pipeline serves many shapes (shapes travel in uniforms)", () => {
  silu(randn([3, 5]));
  const n = pipelineCount();
  silu(randn([7, 11]));
  silu(randn([2, 2, 2]));
  equal(pipelineCount(), n);
});

Deno.test({
  name: `f16 storage computes in f32 and rounds once per element${
    deviceInfo().f16 ? "" : " (skipped: adapter has no shader-f16)"
  }`,
  ignore: !deviceInfo().f16,
  fn: async () => {
    const x = randomData(513, 4), w = randomData(513 * 3, 5);
    const h = (a: Float64Array) => Float64Array.from(a, (v) => new Float16Array([v])[0]!);
    const xs = h(x), ws = h(w);
    const y = await silu(tensor(xs, [513], { dtype: "f16" })).toArray();
    // f16 has 11 significant bits: half an ulp is 2^-11 relative
    assertClose(y, unaryRef("silu", xs), 1e-3, 2 ** -10);
    const m = await matmul(
      tensor(xs, [1, 513], { dtype: "f16" }),
      tensor(ws, [513, 3], { dtype: "f16" }),
    ).toArray();
    // sum of 513 products accumulated in f32, one rounding to f16 at the end
    assertClose(m, matmulRef(xs, [1, 1, 513], ws, [1, 513, 3]), 2e-2, 2 ** -10);
  },
});
