import { throws } from "node:assert/strict";
import { geglu, gegluRef, ShapeError, tensor } from "../mod.ts";
import { checkOp } from "./_helpers.ts";

// halves of whole vec4s ([2, 3, 16], [3, 8]) run the 16-byte kernels, the others the scalar ones;
// halves of whole 256 bytes ([3, 5, 128]) are read from texture copies
for (const shape of [[1, 7, 10], [3, 5, 6], [4, 2], [2, 3, 16], [3, 8], [3, 5, 128]]) {
  Deno.test(`geglu() matches the reference and finite differences for ${shape}`, () =>
    checkOp({
      shapes: [shape],
      gpu: (x) => geglu(x),
      ref: (x) => gegluRef(x, shape.at(-1)!),
      data: (_i, n) => Float64Array.from({ length: n }, (_, j) => 2.5 * Math.sin(j * 0.61 + 0.3)),
      atol: 2e-6,
      rtol: 2e-5,
    }));
}

Deno.test("geglu() refuses an odd last dimension and names the shape", () => {
  throws(
    () => geglu(tensor(new Float32Array(6), [2, 3])),
    (e: Error) => e instanceof ShapeError && e.message.includes("[2, 3]"),
  );
});
