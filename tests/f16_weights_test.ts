// f16 weights with f32 activations: matmul and conv2d (both variants) against CPU references on
// the f16-rounded weights, their input gradients, and a tiny U-Net whose weights are stored f16.
import { equal, ok } from "node:assert/strict";
import {
  backward,
  conv2d,
  conv2dRef,
  deviceInfo,
  Generator,
  matmul,
  matmulRef,
  type MatmulVariant,
  mul,
  noGrad,
  profile,
  sum,
  type Tensor,
  tensor,
} from "../src/ops/mod.ts";
import { UNet2DConditionModel } from "../src/nn/mod.ts";
import { assertClose, randomData } from "./_helpers.ts";
import { TINY_UNET } from "./_sd_fixture.ts";

const f16 = deviceInfo().f16;
const skip = f16 ? "" : " (skipped: adapter has no shader-f16)";

/** Values rounded to f16, as the GPU stores them. */
function half(n: number, seed: number): Float64Array {
  return Float64Array.from(randomData(n, seed), (v) => new Float16Array([v])[0]!);
}

for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  Deno.test({
    name: `matmul() ${variant}: f32 x [2, 5, 33] by an f16 weight [7, 33]^T, and dx${skip}`,
    ignore: !f16,
    fn: async () => {
      const xs = randomData(2 * 5 * 33, 1), ws = half(7 * 33, 2), gs = randomData(2 * 5 * 7, 3);
      const x = tensor(xs, [2, 5, 33], { requiresGrad: true });
      const w = tensor(ws, [7, 33], { dtype: "f16" });
      const y = matmul(x, w, { transB: true, variant });
      equal(y.dtype, "f32");
      // the f16 values are exact in f32, so only f32 accumulation order differs from the reference
      assertClose(
        await y.toArray(),
        matmulRef(xs, [1, 10, 33], ws, [1, 7, 33], false, true),
        1e-5,
        1e-5,
      );
      backward(sum(mul(y, tensor(gs, [2, 5, 7]))));
      assertClose(await x.grad!.toArray(), matmulRef(gs, [1, 10, 7], ws, [1, 7, 33]), 1e-5, 1e-5);
      equal(w.grad, null);
    },
  });

  Deno.test({
    name: `conv2d() ${variant}: f32 x by an f16 3x3 kernel with an f32 bias, and dx${skip}`,
    ignore: !f16,
    fn: async () => {
      const xShape = [2, 3, 6, 8], wShape = [5, 3, 3, 3];
      const xs = randomData(2 * 3 * 6 * 8, 4), ws = half(5 * 27, 5), bs = randomData(5, 6);
      const x = tensor(xs, xShape, { requiresGrad: true });
      const w = tensor(ws, wShape, { dtype: "f16" });
      const y = conv2d(x, w, tensor(bs, [5]), { padding: 1, variant });
      equal(y.dtype, "f32");
      const want = conv2dRef(xs, xShape, ws, wShape, bs, 1, 1);
      assertClose(await y.toArray(), want, 1e-5, 1e-5);
      // d/dx of sum(y): every output position adds its kernel tap, the reference's own adjoint
      backward(sum(y));
      const dx = await x.grad!.toArray();
      const eps = 1e-3, i = 2 * 48 + 3 * 8 + 4; // an interior pixel of channel 2, batch 0
      const bump = (d: number) => {
        const v = Float64Array.from(xs);
        v[i]! += d;
        return conv2dRef(v, xShape, ws, wShape, bs, 1, 1).reduce((a, b) => a + b, 0);
      };
      assertClose([dx[i]!], [(bump(eps) - bump(-eps)) / (2 * eps)], 1e-3, 1e-3);
    },
  });
}

function bytesOf(ts: Iterable<Tensor>): number {
  let n = 0;
  for (const t of ts) n += t.bytes;
  return n;
}

Deno.test({
  name: `A U-Net with f16 weights needs about half the bytes and matches the f32 one${skip}`,
  ignore: !f16,
  fn: async () => {
    using a = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
    using b = new UNet2DConditionModel(TINY_UNET, {
      generator: new Generator(2),
      weightDType: "f16",
    });
    b.loadStateDict(a.stateDict());
    for (const [k, t] of b.stateDict()) {
      equal(t.dtype, t.shape.length >= 2 ? "f16" : "f32", `${k} is stored ${t.dtype}`);
    }
    const ratio = bytesOf(b.stateDict().values()) / bytesOf(a.stateDict().values());
    ok(ratio < 0.52, `f16 weights take ${ratio.toFixed(3)} of the f32 bytes`);
    const x = tensor(randomData(2 * 4 * 8 * 8, 7), [2, 4, 8, 8]);
    const ctx = tensor(randomData(2 * 5 * 32, 8), [2, 5, 32]);
    const run = (m: UNet2DConditionModel) => noGrad(() => m.forward(x, 321, ctx)).toArray();
    const ya = await run(a), yb = await run(b);
    // weights rounded to f16 (relative error 2^-11 each) move the outputs by well under 1%
    // of their spread; a broken mixed-dtype path is off by O(1)
    const spread = Math.sqrt(ya.reduce((s, v) => s + v * v, 0) / ya.length);
    assertClose(yb, ya, 2e-2 * spread, 0);
  },
});

Deno.test({
  name: `conv2d() texture: an f16 weight with K % 64 == 0 is cast whole, then copied${skip}`,
  ignore: !f16,
  fn: async () => {
    // K = 64 * 9 = 576: rows of 2,304 bytes as f32, the copy's 256-byte pitch
    const xShape = [2, 64, 5, 5], wShape = [6, 64, 3, 3];
    const xs = randomData(2 * 64 * 25, 7), ws = half(6 * 576, 8), bs = randomData(6, 9);
    const x = tensor(xs, xShape), w = tensor(ws, wShape, { dtype: "f16" });
    const b = tensor(bs, [6]);
    const report = await profile(async () => {
      const y = conv2d(x, w, b, { padding: 1, variant: "texture" });
      // sums of 576 products of values in [-1, 1): f32 rounding well below 1e-4
      assertClose(await y.toArray(), conv2dRef(xs, xShape, ws, wShape, bs, 1, 1), 1e-4, 1e-4);
    });
    const kernels = report.byKernel.map((k) => k.key);
    ok(kernels.some((k) => k.startsWith("cast_f16_f32")), kernels.join(", "));
    ok(!kernels.some((k) => k.startsWith("matmul_pack f16")), kernels.join(", "));
  },
});
