import { equal, throws } from "node:assert/strict";
import {
  add,
  backward,
  dispatchCount,
  linear,
  linearRef,
  type MatmulVariant,
  randn,
  scope,
  ShapeError,
  sum,
  tensor,
} from "../mod.ts";
import { checkOp } from "./_helpers.ts";

type Case = { x: number[]; n: number; bias: boolean; residual: boolean; what: string };
const cases: Case[] = [
  { x: [5, 7], n: 3, bias: true, residual: false, what: "2-D with a bias" },
  { x: [2, 9, 6], n: 11, bias: true, residual: true, what: "a batch with a bias and a residual" },
  { x: [3, 5], n: 4, bias: false, residual: true, what: "a residual without a bias" },
  { x: [7], n: 5, bias: true, residual: true, what: "a 1-D input" },
  // N % 4 == 0: the texture kernel stores whole vec4s, the bias read per column
  { x: [3, 8], n: 8, bias: true, residual: true, what: "vec4 output rows" },
  // rows of 64 floats: the texture variant copies x instead of packing it; N past one workgroup
  { x: [2, 16, 64], n: 130, bias: true, residual: true, what: "copied rows, 130 outputs" },
  // 64 outputs (rows of 256 bytes): the texture kernel reads the residual from a texture copy
  { x: [2, 5, 8], n: 64, bias: true, residual: true, what: "64 outputs, residual as a texture" },
];

for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of cases) {
    Deno.test(`linear() ${variant} matches the reference and finite differences for ${c.what}`, () => {
      const K = c.x.at(-1)!;
      const out = [...c.x.slice(0, -1), c.n];
      const shapes = [c.x, [c.n, K]];
      if (c.bias) shapes.push([c.n]);
      if (c.residual) shapes.push(out);
      return checkOp({
        shapes,
        gpu: (x, w, ...rest) =>
          linear(x, w!, {
            bias: c.bias ? rest[0]! : null,
            residual: c.residual ? rest.at(-1)! : null,
            variant,
          }),
        ref: (x, w, ...rest) =>
          linearRef(x, w!, c.n, c.bias ? rest[0]! : null, c.residual ? rest.at(-1)! : null),
        // f32 sums of up to 64 products of values in [-1, 1): rounding stays below 1e-5
        atol: 1e-5,
        rtol: 1e-4,
      });
    });
  }
}

Deno.test("linear() names the mismatched operand", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  const w = tensor(new Float32Array(12), [4, 3]);
  throws(() => linear(x, tensor(new Float32Array(8), [4, 2])), ShapeError);
  throws(
    () => linear(x, w, { bias: tensor(new Float32Array(3), [3]) }),
    /bias \[3\] must be \[4\]/,
  );
  throws(
    () => linear(x, w, { residual: tensor(new Float32Array(6), [2, 3]) }),
    /residual \[2, 3\] f32 must match the output \[2, 4\] f32/,
  );
});

// x feeds two products (attention's q, k and v share an input): the second one's dx product
// accumulates onto the first one's gradient instead of a separate add pass
for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  Deno.test(`linear() ${variant} adds x's gradient from another use into dx`, () =>
    checkOp({
      shapes: [[2, 6, 5], [4, 5], [4, 5]],
      gpu: (x, w1, w2) => add(linear(x, w1!, { variant }), linear(x, w2!, { variant })),
      ref: (x, w1, w2) => linearRef(x, w1!, 4).map((v, i) => v + linearRef(x, w2!, 4)[i]!),
      // f32 sums of 5 products of values in [-1, 1), twice
      atol: 1e-5,
      rtol: 1e-4,
    }));
}

Deno.test("linear() backward of x used twice costs no more dispatches than two inputs", () => {
  const count = (shared: boolean): number =>
    scope(() => {
      const x = randn([2, 6, 5], { requiresGrad: true });
      const x2 = shared ? x : randn([2, 6, 5], { requiresGrad: true });
      const loss = sum(add(linear(x, randn([4, 5])), linear(x2, randn([4, 5]))));
      const before = dispatchCount();
      backward(loss);
      return dispatchCount() - before;
    });
  equal(count(true), count(false));
});
