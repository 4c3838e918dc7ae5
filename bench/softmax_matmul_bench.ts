// softmax(s) v forward + backward at the small U-Net's self-attention size ([64, 256, 256]
// scores, 16-wide heads), as one op (softmax's backward inside the dO v^T product's epilogue)
// and as softmax then matmul (a separate pass over the score gradient). FLOPs: the three
// [Tq, Tk, D] products (o, dP or ds, dv).
import {
  backward,
  matmul,
  randn,
  scope,
  softmax,
  softmaxMatmul,
  sum,
  type Tensor,
} from "../mod.ts";
import { benchOp } from "./_bench.ts";

const [BH, T, D] = [64, 256, 16];
const paths: [string, (s: Tensor, v: Tensor) => Tensor][] = [
  ["softmax then matmul", (s, v) => matmul(softmax(s), v)],
  ["softmaxMatmul", (s, v) => softmaxMatmul(s, v)],
];
for (const [name, f] of paths) {
  benchOp({
    group: "softmax matmul",
    name: `${name} forward+backward f32 [${BH}, ${T}, ${T}] x [${BH}, ${T}, ${D}]`,
    work: { flops: 3 * 2 * BH * T * T * D },
    baseline: name === "softmax then matmul",
    n: 5,
    setup: () => {
      const s = randn([BH, T, T], { requiresGrad: true });
      const v = randn([BH, T, D], { requiresGrad: true });
      return Promise.resolve(() =>
        scope(() => {
          backward(sum(f(s, v)));
          for (const t of [s, v]) {
            t.grad?.dispose();
            t.grad = null;
          }
        })
      );
    },
  });
}
