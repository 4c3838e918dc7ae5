import { equal, ok, throws } from "node:assert/strict";
import {
  ArgumentError,
  backward,
  cast,
  castRef,
  concat,
  concatRef,
  deviceInfo,
  DTypeError,
  embedding,
  embeddingRef,
  permute,
  permuteRef,
  scope,
  ShapeError,
  slice,
  sliceRef,
  sum,
  tensor,
  upsampleNearest2x,
  upsampleNearest2xRef,
} from "../mod.ts";
import { assertClose, checkOp, randomData } from "./_helpers.ts";

const noF16 = !deviceInfo().f16;
if (noF16) {
  console.log(
    "f16 tests are skipped: this adapter has no shader-f16 (use Vulkan lavapipe or a GPU)",
  );
}
const f16Note = noF16 ? " (skipped: adapter has no shader-f16)" : "";

// ---------------------------------------------------------------- permute

const permCases: [number[], number[]][] = [
  [[3, 5], [1, 0]],
  [[1, 3, 5, 7], [0, 2, 3, 1]],
  [[2, 3, 5, 7], [0, 2, 3, 1]],
  [[2, 3, 5, 7], [0, 3, 1, 2]],
  [[2, 3, 4, 5], [3, 2, 1, 0]],
  [[2, 1, 3, 2, 3, 2], [5, 3, 1, 4, 0, 2]],
  [[2, 3, 5], [0, 1, 2]],
  [[3, 1, 5], [-1, 0, 1]],
  // a contiguous last axis of whole vec4s (attention's head split): the 16-byte kernel
  [[2, 5, 3, 8], [0, 2, 1, 3]],
  [[3, 4, 2, 4], [1, 0, 2, 3]],
  // 1024 output rows or more: one invocation per row (16-byte and scalar kernels)
  [[4, 64, 4, 8], [0, 2, 1, 3]],
  [[128, 10, 9], [0, 2, 1]],
];
for (const [shape, perm] of permCases) {
  Deno.test(`permute() matches the reference and finite differences for ${shape} by (${perm})`, () =>
    checkOp({
      shapes: [shape],
      gpu: (x) => permute(x, perm),
      ref: (x) => permuteRef(x, shape, perm.map((a) => (a < 0 ? a + shape.length : a))),
      atol: 0,
      rtol: 0,
    }));
}

Deno.test("permute() gives the permuted shape and its inverse restores the input", async () => {
  await scope(async () => {
    const data = randomData(2 * 3 * 4 * 5, 3);
    const x = tensor(data, [2, 3, 4, 5]);
    const y = permute(x, [0, 2, 3, 1]);
    equal(y.shape.join(), "2,4,5,3");
    const back = permute(y, [0, 3, 1, 2]);
    assertClose(await back.toArray(), Float32Array.from(data), 0, 0, "round trip");
  });
});

Deno.test("permute() rejects a perm of the wrong length or with repeated axes", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  throws(
    () => permute(x, [0, 1, 2]),
    (e: Error) => e instanceof ShapeError && /\(0, 1, 2\).*\[2, 3\]/.test(e.message),
  );
  throws(() => permute(x, [1, 1]), ArgumentError);
  throws(() => permute(x, [0, 2]), ArgumentError);
  const big = tensor(new Float32Array(1), [1, 1, 1, 1, 1, 1, 1]);
  throws(() => permute(big, [0, 1, 2, 3, 4, 5, 6]), ShapeError);
});

// ---------------------------------------------------------------- concat / slice

const concatCases: [number[][], number][] = [
  [[[3, 5], [2, 5]], 0],
  [[[3, 2], [3, 5], [3, 1]], 1],
  [[[1, 3, 5, 7], [1, 2, 5, 7]], 1],
  [[[2, 3, 5, 7], [2, 4, 5, 7]], 1],
  [[[2, 3, 5, 3], [2, 3, 5, 4]], -1],
];
for (const [shapes, axis] of concatCases) {
  Deno.test(
    `concat() matches the reference and finite differences for ${
      shapes.map((s) => `[${s}]`).join(" + ")
    } on axis ${axis}`,
    () =>
      checkOp({
        shapes,
        gpu: (...xs) => concat(xs, axis),
        ref: (...xs) => concatRef(xs, shapes, axis),
        atol: 0,
        rtol: 0,
      }),
  );
}

Deno.test("concat() only gives gradients to inputs that require them", async () => {
  await scope(async () => {
    const a = tensor([1, 2], [1, 2], { requiresGrad: true });
    const b = tensor([3, 4, 5], [1, 3]);
    backward(sum(concat([a, b], 1)));
    assertClose(await a.grad!.toArray(), [1, 1], 0, 0, "a.grad");
    equal(b.grad, null);
    a.grad!.dispose();
  });
});

Deno.test("concat() names the shapes that do not fit and refuses mixed dtypes", () => {
  const a = tensor(new Float32Array(6), [2, 3]);
  const b = tensor(new Float32Array(8), [4, 2]);
  throws(
    () => concat([a, b], 1),
    (e: Error) => e instanceof ShapeError && /\[2, 3\], \[4, 2\]/.test(e.message),
  );
  throws(() => concat([a, tensor(new Float32Array(3), [3])], 0), ShapeError);
  throws(() => concat([], 0), ArgumentError);
  throws(() => concat([a], 2), ArgumentError);
  if (!noF16) {
    throws(() => concat([a, tensor(new Float32Array(6), [2, 3], { dtype: "f16" })], 0), DTypeError);
  }
});

const sliceCases: [number[], number, number, number][] = [
  [[7, 5], 0, 2, 6],
  [[1, 3, 5, 7], 2, 1, 4],
  [[2, 3, 5, 7], 3, 3, 7],
  [[2, 3, 5, 7], 1, 0, 1],
  [[3, 9], -1, -5, -1],
];
for (const [shape, axis, start, end] of sliceCases) {
  Deno.test(
    `slice() matches the reference and finite differences for ${shape} axis ${axis} ${start}..${end}`,
    () => {
      const L = shape.at(axis)!;
      const s = start < 0 ? start + L : start, e = end < 0 ? end + L : end;
      return checkOp({
        shapes: [shape],
        gpu: (x) => slice(x, axis, start, end),
        ref: (x) => sliceRef(x, shape, axis, s, e),
        atol: 0,
        rtol: 0,
      });
    },
  );
}

Deno.test("slice() of a concat gives back each part", async () => {
  await scope(async () => {
    const a = randomData(2 * 3 * 4, 5), b = randomData(2 * 2 * 4, 6);
    const y = concat([tensor(a, [2, 3, 4]), tensor(b, [2, 2, 4])], 1);
    assertClose(await slice(y, 1, 0, 3).toArray(), Float32Array.from(a), 0, 0, "first part");
    assertClose(await slice(y, 1, 3).toArray(), Float32Array.from(b), 0, 0, "second part");
    equal(slice(y, 1, 2, 2).size, 0);
  });
});

Deno.test("slice() rejects a range outside the axis and a bad axis", () => {
  const x = tensor(new Float32Array(12), [3, 4]);
  throws(
    () => slice(x, 1, 2, 5),
    (e: Error) => e instanceof ArgumentError && /\[3, 4\]/.test(e.message),
  );
  throws(() => slice(x, 1, 3, 2), ArgumentError);
  throws(() => slice(x, 2, 0, 1), ArgumentError);
});

// ---------------------------------------------------------------- upsample

for (const shape of [[1, 1, 3, 5], [2, 3, 5, 4], [3, 2, 1, 7]]) {
  Deno.test(`upsampleNearest2x() matches the reference and finite differences for ${shape}`, () =>
    checkOp({
      shapes: [shape],
      gpu: (x) => upsampleNearest2x(x),
      ref: (x) => upsampleNearest2xRef(x, shape),
      atol: 0,
      rtol: 0,
      gradTol: 1e-4,
    }));
}

Deno.test("upsampleNearest2x() names the shape when the input is not 4-D", () => {
  throws(
    () => upsampleNearest2x(tensor(new Float32Array(12), [3, 4])),
    (e: Error) => e instanceof ShapeError && /\[3, 4\]/.test(e.message),
  );
});

// ---------------------------------------------------------------- embedding

const embedCases: [number, number, number[], number[]][] = [
  [7, 5, [2, 0, 6, 2, 2, 3], [2, 3]], // repeated ids, batch 2
  [11, 3, [4, 10, 4, 0, 9], [1, 5]], // batch 1, odd sizes
  [5, 9, [1], [1]],
];
for (const [V, D, ids, idsShape] of embedCases) {
  Deno.test(
    `embedding() matches the reference and scatter-adds gradients for ${V}x${D} ids ${idsShape}`,
    async () => {
      await checkOp({
        shapes: [[V, D]],
        gpu: (w) => {
          const y = embedding(w, Uint32Array.from(ids), idsShape);
          equal(y.shape.join(), [...idsShape, D].join());
          return y;
        },
        ref: (w) => embeddingRef(w, [V, D], ids),
        atol: 0,
        rtol: 0,
      });
    },
  );
}

Deno.test("embedding() gradient is the same on every run (deterministic)", async () => {
  await scope(async () => {
    const V = 13, D = 7;
    const ids = Array.from({ length: 40 }, (_, i) => (i * 7) % 5);
    const dy = randomData(40 * D, 8);
    const runs: Float32Array[] = [];
    for (let r = 0; r < 3; r++) {
      const w = tensor(new Float32Array(V * D), [V, D], { requiresGrad: true });
      const y = embedding(w, ids, [4, 10]);
      backward(y, tensor(dy, y.shape));
      runs.push(await w.grad!.toArray());
      w.grad!.dispose();
    }
    ok(runs.every((g) => g.join() === runs[0]!.join()));
  });
});

Deno.test("embedding() rejects ids out of range, a bad weight and a wrong ids shape", () => {
  const w = tensor(new Float32Array(12), [4, 3]);
  throws(
    () => embedding(w, [0, 4]),
    (e: Error) => e instanceof ArgumentError && /id 4 .*4 rows/.test(e.message),
  );
  throws(() => embedding(w, [0, -1]), ArgumentError);
  throws(() => embedding(w, [0, 1, 2], [2, 2]), ShapeError);
  throws(
    () => embedding(tensor(new Float32Array(12), [12]), [0]),
    (e: Error) => e instanceof ShapeError && /\[12\]/.test(e.message),
  );
});

// ---------------------------------------------------------------- cast (f16)

// 110 elements: one per invocation back to f32; 112: four per invocation (unpack2x16float)
for (const extra of [0, 2]) {
  Deno.test({
    name: `cast() to f16 rounds like Float16Array and back to f32 exactly, ${
      110 + extra
    } elements${f16Note}`,
    ignore: noF16,
    fn: async () => {
      await scope(async () => {
        const data = Array.from(
          randomData(3 * 5 * 7 + extra, 4),
          (v, i) => v * 10 ** ((i % 9) - 4),
        );
        data.push(65504, -65519, 6e-8, 0, 1 / 3);
        const x = tensor(data, [data.length]);
        const h = cast(x, "f16");
        equal(h.dtype, "f16");
        assertClose(await h.toArray(), castRef(data, "f16"), 0, 0, "f16 values");
        const back = cast(h, "f32");
        equal(back.dtype, "f32");
        assertClose(await back.toArray(), castRef(data, "f16"), 0, 0, "f32 values");
      });
    },
  });
}

Deno.test({
  name: `cast() round trip through f16 passes gradients back as f32${f16Note}`,
  ignore: noF16,
  fn: () =>
    checkOp({
      shapes: [[3, 7, 5]],
      gpu: (x) => cast(cast(x, "f16"), "f32"),
      ref: (x) => Float64Array.from(x),
      atol: 5e-4,
      rtol: 1e-3,
      gradTol: 1e-3,
    }),
});

Deno.test({
  name: "cast() to f16 says the adapter lacks shader-f16 (runs only on such adapters)",
  ignore: !noF16,
  fn: () => {
    throws(() => cast(tensor([1], [1]), "f16"), DTypeError);
  },
});

Deno.test("cast() to the same dtype is a view that keeps the graph", async () => {
  await scope(async () => {
    const x = tensor([1, 2, 3], [3], { requiresGrad: true });
    const y = cast(x, "f32");
    equal(y.dtype, "f32");
    backward(sum(y));
    assertClose(await x.grad!.toArray(), [1, 1, 1], 0, 0, "x.grad");
    x.grad!.dispose();
  });
});

Deno.test({
  name: `permute(), concat(), slice(), upsample and embedding work on f16 storage${f16Note}`,
  ignore: noF16,
  fn: async () => {
    const shape = [2, 3, 5, 3];
    const tol = { atol: 2e-3, rtol: 2e-3, gradTol: 3e-3 };
    // the references stay unrounded: finite differences of a rounded reference are steps
    await checkOp({
      shapes: [shape],
      gpu: (x) => cast(permute(cast(x, "f16"), [0, 2, 3, 1]), "f32"),
      ref: (x) => permuteRef(x, shape, [0, 2, 3, 1]),
      ...tol,
    });
    await checkOp({
      shapes: [shape, [2, 1, 5, 3]],
      gpu: (a, b) => cast(concat([cast(a, "f16"), cast(b!, "f16")], 1), "f32"),
      ref: (a, b) => concatRef([a, b!], [shape, [2, 1, 5, 3]], 1),
      ...tol,
    });
    await checkOp({
      shapes: [shape],
      gpu: (x) => cast(slice(cast(x, "f16"), 2, 1, 4), "f32"),
      ref: (x) => sliceRef(x, shape, 2, 1, 4),
      ...tol,
    });
    await checkOp({
      shapes: [shape],
      gpu: (x) => cast(upsampleNearest2x(cast(x, "f16")), "f32"),
      ref: (x) => upsampleNearest2xRef(x, shape),
      ...tol,
    });
    await checkOp({
      shapes: [[6, 5]],
      gpu: (w) => cast(embedding(cast(w, "f16"), [5, 1, 5], [1, 3]), "f32"),
      ref: (w) => embeddingRef(w, [6, 5], [5, 1, 5]),
      ...tol,
    });
  },
});
