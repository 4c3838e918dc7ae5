import { throws } from "node:assert/strict";
import {
  loraConv2d,
  loraConv2dRef,
  loraLinear,
  loraLinearRef,
  ShapeError,
  tensor,
} from "../mod.ts";
import { assertClose, checkOp, randomData } from "./_helpers.ts";

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

Deno.test("loraConv2d() without gradients (the sampling path) matches the reference, 1x1 and stride 2", async () => {
  for (
    const [xs, ws, ds, stride, padding] of [
      [[2, 5, 4, 3], [6, 5, 1, 1], [3, 5, 1, 1], 1, 0],
      [[1, 3, 7, 6], [4, 3, 3, 3], [2, 3, 3, 3], 2, 1],
    ] as const
  ) {
    const n = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
    const us = [ws[0], ds[0], 1, 1];
    const data = [xs, ws, ds, us, [ws[0]]].map((s, i) =>
      Float32Array.from(randomData(n(s), 5 + i))
    );
    const [x, w, d, u, b] = data.map((v, i) => tensor(v, [xs, ws, ds, us, [ws[0]]][i]!));
    const y = await loraConv2d(x!, w!, b!, d!, u!, 0.75, { stride, padding }).toArray();
    const want = loraConv2dRef(
      data[0]!,
      xs,
      data[1]!,
      ws,
      data[4]!,
      data[2]!,
      ds,
      data[3]!,
      us,
      0.75,
      stride,
      padding,
    );
    // f32 sums of at most 45 products of values in [-1, 1): a few 1e-7 of rounding.
    assertClose(y, want, 1e-5, 1e-4, `loraConv2d ${xs} stride ${stride}`);
    for (const t of [x, w, d, u, b]) t!.dispose();
  }
});
