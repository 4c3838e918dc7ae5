import { throws } from "node:assert/strict";
import {
  loraConv2d,
  loraConv2dRef,
  loraLinear,
  loraLinearRef,
  ShapeError,
  tensor,
} from "../mod.ts";
import { checkOp } from "./_helpers.ts";

Deno.test("loraLinear() matches the reference and finite differences with bias, batch 2", () =>
  checkOp({
    shapes: [[2, 5, 7], [6, 7], [3, 7], [6, 3], [6]],
    gpu: (x, w, d, u, b) => loraLinear(x, w!, b!, d!, u!, 0.75),
    ref: (x, w, d, u, b) => loraLinearRef(x, w!, b!, d!, u!, 0.75, 7, 6, 3),
  }));

Deno.test("loraLinear() with a frozen base weight gives it no gradient (batch 1, no bias)", () =>
  checkOp({
    shapes: [[1, 9], [4, 9], [2, 9], [4, 2]],
    gpu: (x, w, d, u) => loraLinear(x, w!, null, d!, u!, 2),
    ref: (x, w, d, u) => loraLinearRef(x, w!, null, d!, u!, 2, 9, 4, 2),
    grads: [true, false, true, true],
  }));

Deno.test("loraConv2d() matches the reference for a 3x3 stride 2 LoCon", () =>
  checkOp({
    shapes: [[2, 3, 7, 6], [4, 3, 3, 3], [2, 3, 3, 3], [4, 2, 1, 1], [4]],
    gpu: (x, w, d, u, b) => loraConv2d(x, w!, b!, d!, u!, 0.5, { stride: 2, padding: 1 }),
    ref: (x, w, d, u, b) =>
      loraConv2dRef(
        x,
        [2, 3, 7, 6],
        w!,
        [4, 3, 3, 3],
        b!,
        d!,
        [2, 3, 3, 3],
        u!,
        [4, 2, 1, 1],
        0.5,
        2,
        1,
      ),
  }));

Deno.test("loraLinear() names every shape when the rank does not match", () => {
  const z = (s: number[]) => tensor(new Float32Array(s.reduce((a, b) => a * b, 1)), s);
  throws(
    () => loraLinear(z([2, 8]), z([4, 8]), null, z([3, 8]), z([4, 2]), 1),
    (e: Error) =>
      e instanceof ShapeError && e.message.includes("[3, 8]") && e.message.includes("[4, 2]"),
  );
});
