import { deepEqual, equal, throws } from "node:assert/strict";
import { matmul, matmulInto, matmulRef, type MatmulVariant, ShapeError, tensor } from "../mod.ts";
import { checkOp } from "./_helpers.ts";

type Case = { a: number[]; b: number[]; tA?: boolean; tB?: boolean; what: string };
const cases: Case[] = [
  { a: [5, 7], b: [7, 3], what: "2-D odd sizes" },
  { a: [1, 17, 9], b: [1, 9, 130], what: "batch 1 wider than one tile" },
  { a: [3, 6, 5], b: [3, 5, 4], what: "batch 3" },
  { a: [2, 5, 6], b: [2, 4, 5], tA: true, tB: true, what: "both transposed" },
  { a: [4, 3], b: [6, 4], tA: true, tB: true, what: "2-D both transposed" },
  { a: [2, 3, 5, 4], b: [4, 6], what: "a 4-D batch times a 2-D weight" },
  { a: [2, 7, 5], b: [3, 5], tB: true, what: "a batch times a transposed weight (Linear)" },
  { a: [6, 5], b: [3, 6, 2], tA: true, what: "a transposed 2-D operand shared by a batch" },
  { a: [2, 4, 3], b: [5, 4], tA: true, tB: true, what: "transposed batch times transposed weight" },
  // rows of 64 floats (256 bytes): the texture variant copies these operands instead of packing
  { a: [2, 16, 64], b: [2, 64, 64], what: "copied operands, a batch of two" },
  { a: [3, 16, 64], b: [64, 64], tB: true, what: "copied operands, Linear" },
  { a: [64, 64], b: [64, 32], tA: true, what: "copied operands, transposed a" },
  // a 2-D left operand shared by a batch: packed (or copied) once, read by every batch
  { a: [5, 7], b: [3, 7, 4], what: "a 2-D operand shared by a batch" },
  { a: [16, 64], b: [3, 64, 64], what: "a copied 2-D operand shared by a batch" },
  // contiguous rows narrower than 256 bytes (attention's heads): the texture variant copies them
  // with 64 / cols rows side by side in a texture row, forward and backward (both loops)
  { a: [3, 8, 16], b: [3, 16, 16], what: "16-wide rows, 4 to a texture row" },
  { a: [2, 6, 32], b: [2, 32, 32], what: "32-wide rows, 2 to a texture row" },
  { a: [2, 8, 8], b: [2, 8, 8], what: "8-wide rows, 8 to a texture row" },
  { a: [2, 16, 4], b: [2, 4, 4], what: "4-wide rows, 16 to a texture row" },
];

function to3(s: number[]): [number, number, number] {
  const lead = s.slice(0, -2).reduce((x, y) => x * y, 1);
  return [lead, s.at(-2)!, s.at(-1)!];
}

for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  for (const c of cases) {
    Deno.test(`matmul() ${variant} matches the reference and finite differences for ${c.what}`, () => {
      const fold = c.a.length > 2 && c.b.length === 2 && !c.tA;
      return checkOp({
        shapes: [c.a, c.b],
        gpu: (a, b) => matmul(a, b!, { transA: c.tA ?? false, transB: c.tB ?? false, variant }),
        ref: (a, b) => {
          const sa = to3(c.a);
          // a 2-D operand next to a batched one is shared (batch 1 in the reference)
          const aS: [number, number, number] = fold ? [1, sa[0] * sa[1], sa[2]] : sa;
          return matmulRef(a, aS, b!, to3(c.b), c.tA, c.tB);
        },
        atol: 1e-5,
        rtol: 1e-4,
      });
    });
  }
}

Deno.test("matmul() texture and tiled agree on a 130 x 70 x 129 product", async () => {
  const n = 130 * 70, m = 70 * 129;
  const a = tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), [130, 70]);
  const b = tensor(Float32Array.from({ length: m }, (_, i) => Math.cos(i)), [70, 129]);
  const x = await matmul(a, b, { variant: "texture" }).toArray();
  const y = await matmul(a, b, { variant: "tiled" }).toArray();
  const ref = matmulRef(await a.toArray(), [1, 130, 70], await b.toArray(), [1, 70, 129]);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    worst = Math.max(worst, Math.abs(x[i]! - ref[i]!), Math.abs(y[i]! - ref[i]!));
  }
  equal(worst < 1e-4, true, `max error ${worst}`);
});

Deno.test("matmul() texture copies a later batch chunk from its offset (batches past a texture)", async () => {
  // 3 x 6000 rows of a k-major operand exceed a 16384-row texture: chunks of 2 and 1 batches,
  // the second copied from byte offset 2 * 6000 * 64 * 4
  const a = tensor(Float32Array.from({ length: 3 * 6000 * 64 }, (_, i) => Math.sin(i)), [
    3,
    6000,
    64,
  ]);
  const b = tensor(Float32Array.from({ length: 3 * 64 * 64 }, (_, i) => Math.cos(i)), [3, 64, 64]);
  const x = await matmul(a, b, { variant: "texture" }).toArray();
  const y = await matmul(a, b, { variant: "tiled" }).toArray();
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  // sums of 64 products of values in [-1, 1]: f32 rounding of the two summation orders
  equal(worst < 1e-4, true, `max difference ${worst}`);
});

Deno.test("matmul() texture: K % 4 > 0 never reads the next batch's rows (an infinity there)", async () => {
  // op(A) k-major (its padding past K = 7 is zero), op(B) one k per texture row: the last step
  // of batch 0 must not multiply that zero padding by batch 1's first row, which holds +inf
  const a = tensor(Float32Array.from({ length: 2 * 5 * 7 }, (_, i) => Math.sin(i)), [2, 5, 7]);
  const bv = Float32Array.from({ length: 2 * 7 * 3 }, (_, i) => Math.cos(i));
  bv.fill(Infinity, 21, 24);
  const y = await matmul(a, tensor(bv, [2, 7, 3]), { variant: "texture" }).toArray();
  const ref = matmulRef(await a.toArray(), [2, 5, 7], bv, [2, 7, 3]);
  for (let i = 0; i < 15; i++) {
    equal(Math.abs(y[i]! - ref[i]!) < 1e-5, true, `batch 0 element ${i}`);
  }
});

Deno.test("matmul() names both shapes when inner dimensions differ", () => {
  throws(
    () => matmul(tensor(new Float32Array(6), [2, 3]), tensor(new Float32Array(8), [4, 2])),
    (e: Error) =>
      e instanceof ShapeError && e.message.includes("[2, 3]") && e.message.includes("[4, 2]"),
  );
});

for (const variant of ["texture", "tiled"] as MatmulVariant[]) {
  Deno.test(`matmulInto() ${variant} computes alpha * a b + beta * c in place`, async () => {
    const h = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const up = tensor([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [4, 3]);
    const c = tensor(new Float32Array(8).fill(10), [2, 4]);
    matmulInto(c, h, up, { transB: true, alpha: 2, beta: 1, variant });
    deepEqual([...await c.toArray()], [12, 14, 16, 22, 18, 20, 22, 40]);
  });
}
