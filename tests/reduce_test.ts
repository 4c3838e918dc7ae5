import { deepEqual } from "node:assert/strict";
import { band, mean, sum, sumRef } from "../src/ops/reduce.ts";
import { checkOp } from "./_helpers.ts";

// Each case names the kernel variant it reaches: banded [A, n, S] per output (scalar or vec4),
// per workgroup (S >= 64, scalar or vec4), or the general strided kernel (kept axes not a band).
const CASES: [string, number[], number[]][] = [
  ["band thread vec4 (leading axis, n % 4 == 0)", [37, 12], [0]],
  ["band thread scalar (odd n, inner S)", [3, 5, 7], [0, 2]],
  ["band workgroup vec4 (bias gradient)", [2, 3, 8, 12], [0, 2, 3]],
  ["band workgroup scalar (odd last axis)", [4, 131], [1]],
  ["general strided (kept axes 0 and 2)", [3, 4, 5, 2], [1, 3]],
  ["general strided, many to one", [6, 70, 3], [0, 1]],
];

for (const [what, shape, axes] of CASES) {
  Deno.test(`sum() and mean() match the reference and finite differences: ${what}`, async () => {
    // sums of up to ~300 values of |x| < 1 in f32: absolute error well under 1e-4
    await checkOp({
      shapes: [shape],
      gpu: (x) => sum(x, axes),
      ref: (x) => sumRef(x, shape, axes),
      atol: 1e-4,
    });
    await checkOp({
      shapes: [shape],
      gpu: (x) => mean(x, axes, { keepDims: true }),
      ref: (x) => sumRef(x, shape, axes, true),
    });
  });
}

Deno.test("band() finds the [A, n, S] view only when the kept axes are contiguous", () => {
  deepEqual(band([2, 3, 4, 5], [0, 2, 3]), [2, 3, 20]);
  deepEqual(band([2, 3, 4], [0]), [2, 12, 1]);
  deepEqual(band([2, 3, 4], [2]), [1, 6, 4]);
  deepEqual(band([1, 3, 1, 4], [0, 1]), [3, 4, 1]); // size-1 axes fit either side
  deepEqual(band([3, 4, 5, 2], [1, 3]), null);
});
