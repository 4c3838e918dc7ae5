import { ok, throws as assertThrows } from "node:assert/strict";
import { ArgumentError, softmax, softmaxRef, tensor } from "../mod.ts";
import { assertClose, checkOp } from "./_helpers.ts";

const cases: [number[], number][] = [
  [[3, 7], -1],
  [[1, 130], -1], // a row longer than the workgroup
  [[2, 5, 3], 1], // strided rows
  [[4, 3, 2], 0],
  [[2, 1, 9], -1],
  [[3, 1], -1], // one element per row: y = 1, dx = 0
  [[2, 9001], -1], // long rows take the 256-wide workgroup
  [[5, 12], -1], // contiguous rows of whole vec4s: the thread variant loads 16 bytes at a time
  [[3, 2, 256], -1],
  [[2, 264], -1], // 66 vec4s: past the registers, the two-read online kernel
];
// both kernel variants on every machine: one workgroup per row, one invocation per row
for (const variant of ["workgroup", "thread"] as const) {
  for (const [shape, axis] of cases) {
    Deno.test(`softmax() ${variant} variant matches the reference and finite differences for ${shape} on axis ${axis}`, () =>
      checkOp({
        shapes: [shape],
        gpu: (x) => softmax(x, axis, { variant }),
        ref: (x) => softmaxRef(x, shape, axis),
        data: (_i, n) => Float64Array.from({ length: n }, (_, j) => 3 * Math.sin(j * 1.3 + 0.2)),
        atol: 1e-6,
        rtol: 1e-4,
      }));
  }
}

Deno.test("softmax() stays finite and exact for large logits", async () => {
  const x = Float64Array.from(
    { length: 2 * 67 },
    (_, j) => 80 * Math.cos(j * 0.7) + 1000 * (j % 2),
  );
  const y = await softmax(tensor(x, [2, 67])).toArray();
  ok(y.every(Number.isFinite));
  assertClose(y, softmaxRef(Float64Array.from(x, Math.fround), [2, 67]), 1e-6, 1e-4);
});

Deno.test("softmax() rejects an axis outside the shape", () => {
  assertThrows(
    () => softmax(tensor([1, 2, 3, 4], [2, 2]), 2),
    (e: Error) => e instanceof ArgumentError && /\[2, 2\]/.test(e.message),
  );
});
