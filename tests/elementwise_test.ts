import { throws as assertThrows } from "node:assert/strict";
import {
  add,
  binaryRef,
  div,
  DTypeError,
  mul,
  ShapeError,
  sub,
  tensor,
  unary,
  type UnaryOp,
  unaryRef,
} from "../mod.ts";
import { checkOp } from "./_helpers.ts";

// same shapes (vec4 or scalar), one operand broadcast over a leading and a trailing block (the
// band kernel: scalar, vec4 when the trailing block is a multiple of 4, small operand on either
// side), and broadcasts on both sides (the general strided kernel)
const cases: [number[], number[]][] = [
  [[3, 5], [3, 5]],
  [[2, 3, 5], [5]],
  [[2, 1, 7], [3, 1]],
  [[1], [4, 3]],
  [[2, 3, 4, 4], [2, 3, 1, 1]],
  [[3, 1, 1], [2, 3, 8, 4]],
  [[2, 3, 5, 3], [1, 3, 1, 1]],
];
for (const op of ["add", "sub", "mul", "div"] as const) {
  const f = { add, sub, mul, div }[op];
  for (const [sa, sb] of cases) {
    Deno.test(`${op}() matches the reference and finite differences for ${sa} with ${sb}`, () =>
      checkOp({
        shapes: [sa, sb],
        gpu: f,
        ref: (a, b) => binaryRef(op, a, sa, b!, sb),
        // keep divisors away from zero: |b| in [0.5, 1.5)
        data: op === "div"
          ? (i, n) =>
            Float64Array.from(
              { length: n },
              (_, j) =>
                i === 1 ? (j % 2 ? -1 : 1) * (1 + 0.5 * Math.sin(j + 1)) : Math.cos(j * 1.7),
            )
          : undefined,
      }));
  }
}

const unaryOps: UnaryOp[] = [
  "exp",
  "log",
  "sqrt",
  "square",
  "affine",
  "relu",
  "sigmoid",
  "silu",
  "gelu",
  "quickGelu",
];
// an odd shape runs the scalar kernels, 64K elements (a multiple of 4) the vec4 ones
for (const op of unaryOps) {
  for (const shape of [[3, 7, 5], [16, 4096]]) {
    const positive = op === "log" || op === "sqrt";
    Deno.test(`${op}() matches the reference and finite differences on ${shape}`, () =>
      checkOp({
        shapes: [shape],
        gpu: (x) => unary(op, x, 1.5, -0.25),
        ref: (x) => unaryRef(op, x, 1.5, -0.25),
        // relu's kink at 0 is avoided by the data (no exact zeros); log/sqrt need x > 0
        data: (_i, n) =>
          Float64Array.from(
            { length: n },
            (_, j) => positive ? 0.2 + (j % 11) / 5 : 3 * Math.sin(j * 0.37 + 0.1),
          ),
        atol: 2e-6,
        rtol: 2e-5,
      }));
  }
}

Deno.test("add() names both shapes when they cannot broadcast", () => {
  assertThrows(
    () => add(tensor([1, 2, 3], [3]), tensor([1, 2], [2])),
    (e: Error) => e instanceof ShapeError && /\[3\].*\[2\]/.test(e.message),
  );
});

Deno.test("tensor() rejects a value count that does not fit the shape", () => {
  assertThrows(() => tensor([1, 2, 3], [2, 2]), ShapeError);
});

Deno.test("mixed dtypes are refused with a clear error", { ignore: false }, async () => {
  const { deviceInfo } = await import("../mod.ts");
  if (!deviceInfo().f16) {
    assertThrows(() => tensor([1], [1], { dtype: "f16" }), DTypeError);
    return;
  }
  assertThrows(() => add(tensor([1], [1]), tensor([1], [1], { dtype: "f16" })), DTypeError);
});
