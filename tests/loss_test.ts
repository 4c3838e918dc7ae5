import { equal, throws } from "node:assert/strict";
import {
  backward,
  cast,
  deviceInfo,
  DTypeError,
  mseLoss,
  type MseLossOptions,
  mseLossRef,
  scope,
  ShapeError,
  tensor,
} from "../mod.ts";
import { assertClose, checkOp } from "./_helpers.ts";

const shapes = [[1, 3, 5, 7], [3, 2, 5, 3], [5]];
for (const reduction of ["mean", "sum", "none"] as const) {
  for (const shape of shapes) {
    Deno.test(
      `mseLoss() matches the reference and finite differences for ${shape} with ${reduction}`,
      () =>
        checkOp({
          shapes: [shape, shape],
          gpu: (p, t) => mseLoss(p, t!, { reduction }),
          ref: (p, t) => mseLossRef(p, t!, shape, { reduction }),
          atol: 1e-6,
          rtol: 1e-5,
        }),
    );
    Deno.test(
      `mseLoss() with per-batch weights matches the reference and finite differences for ${shape} with ${reduction}`,
      () =>
        checkOp({
          shapes: [shape, shape, [shape[0]!]],
          gpu: (p, t, w) => mseLoss(p, t!, { reduction, weight: w! }),
          ref: (p, t, w) => mseLossRef(p, t!, shape, { reduction, weight: w! }),
          // weights in (0.25, 1.75) like min-SNR weights
          data: (i, n) =>
            Float64Array.from({ length: n }, (_, j) =>
              i === 2 ? 1 + 0.75 * Math.sin(j * 1.3 + 0.4) : Math.cos(j * 0.71 + i * 2)),
          atol: 1e-6,
          rtol: 1e-5,
        }),
    );
  }
}

Deno.test({
  name: `mseLoss() works on f16 storage${
    deviceInfo().f16 ? "" : " (skipped: adapter has no shader-f16)"
  }`,
  ignore: !deviceInfo().f16,
  fn: () =>
    checkOp({
      shapes: [[2, 3, 5], [2, 3, 5], [2]],
      gpu: (p, t, w) =>
        cast(mseLoss(cast(p, "f16"), cast(t!, "f16"), { weight: cast(w!, "f16") }), "f32"),
      ref: (p, t, w) => mseLossRef(p, t!, [2, 3, 5], { weight: w! }),
      atol: 2e-3,
      rtol: 2e-3,
      gradTol: 5e-3,
    }),
});

Deno.test("mseLoss() with a constant target gives a gradient only to pred", async () => {
  await scope(async () => {
    const p = tensor([1, 2, 3, 4], [2, 2], { requiresGrad: true });
    const t = tensor([0, 2, 3, 2], [2, 2]);
    const w = tensor([1, 0.5], [2]);
    const loss = mseLoss(p, t, { weight: w });
    equal(loss.shape.length, 0);
    assertClose([await loss.item()], [0.75], 1e-7, 0, "loss");
    backward(loss);
    // d/dp = 2 * w * (p - t) / 4
    assertClose(await p.grad!.toArray(), [0.5, 0, 0, 0.5], 1e-7, 0, "p.grad");
    equal(t.grad, null);
    p.grad!.dispose();
  });
});

Deno.test("mseLoss() names the shapes when pred, target or weight do not fit", () => {
  const p = tensor(new Float32Array(6), [2, 3]);
  throws(
    () => mseLoss(p, tensor(new Float32Array(6), [3, 2])),
    (e: Error) => e instanceof ShapeError && /\[2, 3\].*\[3, 2\]/.test(e.message),
  );
  const bad: MseLossOptions = { weight: tensor([1, 1, 1], [3]) };
  throws(
    () => mseLoss(p, p, bad),
    (e: Error) => e instanceof ShapeError && /\[3\].*\[2, 3\]/.test(e.message),
  );
  throws(() => mseLoss(p, p, { weight: tensor([1, 1], [2, 1]) }), ShapeError);
  if (deviceInfo().f16) {
    throws(
      () => mseLoss(p, tensor(new Float32Array(6), [2, 3], { dtype: "f16" })),
      DTypeError,
    );
  }
});
