import { equal, throws } from "node:assert/strict";
import {
  backward,
  type MatmulVariant,
  mul,
  profile,
  randn,
  scope,
  ShapeError,
  softmaxMatmul,
  softmaxMatmulRef,
  sum,
  tensor,
} from "../mod.ts";
import { checkOp } from "./_helpers.ts";

// s: [B, Tq, Tk], v: [B, Tk, D]
const cases: { s: number[]; D: number; what: string }[] = [
  // Tk % 4 == 0: the texture kernel's 16-byte epilogue reads the gate (P) a vec4 at a time
  { s: [2, 5, 8], D: 4, what: "keys in whole vec4s" },
  { s: [2, 3, 7], D: 5, what: "odd sizes" },
  { s: [1, 6, 12], D: 16, what: "12 keys, a 16-wide head" },
  // rows of 64 keys (256 bytes): the texture kernel reads the gate (P) from a texture copy
  { s: [2, 3, 64], D: 4, what: "64 keys, the gate from a texture" },
];

// both matmul kernels on every machine: the epilogue that folds softmax's backward exists in each
for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of cases) {
    const [B, Tq, Tk] = c.s as [number, number, number];
    Deno.test(`softmaxMatmul() ${variant} matches the reference and finite differences for ${c.what}`, () =>
      checkOp({
        shapes: [c.s, [B, Tk, c.D]],
        gpu: (s, v) => softmaxMatmul(s, v!, { variant }),
        ref: (s, v) => softmaxMatmulRef(s, v!, [B, Tq, Tk], c.D),
        // scores up to +-3: probabilities far from 0 and 1, so the gradient is not tiny
        data: (i, n) =>
          Float64Array.from({ length: n }, (_, j) => (i ? 1 : 3) * Math.sin(j * 1.7 + i)),
        // f32 sums of Tk products of values in [0, 1] x [-1, 1]
        atol: 1e-5,
        rtol: 1e-4,
      }));
  }
}

Deno.test("softmaxMatmul() takes leading batch and head dimensions", () =>
  checkOp({
    shapes: [[1, 2, 3, 8], [1, 2, 8, 4]],
    gpu: (s, v) => softmaxMatmul(s, v!),
    ref: (s, v) => softmaxMatmulRef(s, v!, [2, 3, 8], 4),
  }));

Deno.test("softmaxMatmul() backward makes no pass of softmax's own over the scores", async () => {
  const s = randn([4, 16, 32], { requiresGrad: true });
  const v = randn([4, 32, 8], { requiresGrad: true });
  const report = await profile(() =>
    scope(() => {
      const o = softmaxMatmul(s, v);
      backward(sum(mul(o, o)));
    })
  );
  const kernels = report.byKernel.map((r) => r.key).join(", ");
  equal(/softmax_grad/.test(kernels), false, kernels);
  equal(/neg_row_dot/.test(kernels), true, kernels);
  s.grad?.dispose();
  v.grad?.dispose();
});

Deno.test("softmaxMatmul() names shapes that do not chain", () => {
  throws(
    () =>
      softmaxMatmul(tensor(new Float32Array(6), [1, 2, 3]), tensor(new Float32Array(8), [1, 4, 2])),
    (e: Error) => e instanceof ShapeError && /\[1, 2, 3\] and \[1, 4, 2\]/.test(e.message),
  );
});
