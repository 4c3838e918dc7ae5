import { ok, throws as assertThrows } from "node:assert/strict";
import {
  attention,
  attentionRef,
  memoryStats,
  noGrad,
  randn,
  resetPeakBytes,
  scope,
  ShapeError,
  sync,
  zeros,
} from "../mod.ts";
import { checkOp, randomData } from "./_helpers.ts";

interface Case {
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
  causal: boolean;
  scale?: number;
  sharp?: boolean;
}

const cases: Case[] = [
  { B: 1, H: 1, Tq: 7, Tk: 7, D: 5, causal: false },
  { B: 2, H: 3, Tq: 13, Tk: 7, D: 40, causal: false },
  { B: 1, H: 2, Tq: 7, Tk: 13, D: 8, causal: true },
  { B: 2, H: 1, Tq: 13, Tk: 7, D: 5, causal: true }, // first rows see no key
  { B: 1, H: 1, Tq: 70, Tk: 75, D: 16, causal: true, sharp: true }, // crosses row tiles
  { B: 2, H: 1, Tq: 67, Tk: 37, D: 40, causal: false, scale: 0.5 },
  { B: 1, H: 1, Tq: 5, Tk: 9, D: 80, causal: false },
  { B: 1, H: 1, Tq: 3, Tk: 11, D: 160, causal: true },
  // long loops: software adapters cap a shader at 65535 loop iterations per invocation
  { B: 1, H: 1, Tq: 3, Tk: 2100, D: 40, causal: false },
  { B: 1, H: 1, Tq: 2100, Tk: 5, D: 8, causal: true },
];
for (const c of cases) {
  const { B, H, Tq, Tk, D } = c;
  const opts = { causal: c.causal, ...(c.scale === undefined ? {} : { scale: c.scale }) };
  Deno.test(
    `attention() matches the reference and finite differences for B ${B} H ${H} Tq ${Tq} Tk ${Tk} D ${D}` +
      `${c.causal ? " causal" : ""}${c.scale === undefined ? "" : ` scale ${c.scale}`}`,
    () =>
      checkOp({
        shapes: [[B, H, Tq, D], [B, H, Tk, D], [B, H, Tk, D]],
        gpu: (q, k, v) => attention(q, k!, v!, opts),
        ref: (q, k, v) => attentionRef(q, k!, v!, [B, H, Tq, D], Tk, opts),
        // "sharp" scales q up so the softmax is peaked and the running max moves a lot
        data: (i, n) =>
          Float64Array.from(randomData(n, 3 + 11 * i), (v) => (c.sharp && i === 0 ? 4 * v : v)),
        atol: 2e-5,
        rtol: 2e-4,
        gradTol: 2e-3,
      }),
  );
}

Deno.test("attention() gives gradients only to the inputs that require them", () =>
  checkOp({
    shapes: [[1, 2, 9, 6], [1, 2, 11, 6], [1, 2, 11, 6]],
    grads: [false, false, true],
    gpu: (q, k, v) => attention(q, k!, v!),
    ref: (q, k, v) => attentionRef(q, k!, v!, [1, 2, 9, 6], 11),
    atol: 2e-5,
    rtol: 2e-4,
  }));

Deno.test("attention() never materializes the score matrix (peak memory stays linear in T)", async () => {
  const [H, T, D] = [2, 1024, 8];
  await scope(async () => {
    const q = randn([1, H, T, D]), k = randn([1, H, T, D]), v = randn([1, H, T, D]);
    await sync();
    const before = memoryStats().liveBytes;
    resetPeakBytes();
    const y = noGrad(() => attention(q, k, v, { causal: true }));
    await sync();
    const extra = memoryStats().peakBytes - before;
    const scores = T * T * H * 4;
    ok(extra < scores / 16, `attention used ${extra} extra bytes; the scores alone are ${scores}`);
    ok((await y.toArray()).every(Number.isFinite));
  });
});

Deno.test("attention() names the shapes when q, k and v do not fit together", () => {
  assertThrows(
    () => attention(zeros([1, 2, 5, 8]), zeros([1, 2, 7, 4]), zeros([1, 2, 7, 4])),
    (e: Error) => e instanceof ShapeError && /\[1, 2, 5, 8\].*\[1, 2, 7, 4\]/.test(e.message),
  );
  assertThrows(
    () => attention(zeros([1, 2, 5, 8]), zeros([1, 2, 7, 8]), zeros([1, 2, 6, 8])),
    (e: Error) => e instanceof ShapeError && /\[1, 2, 6, 8\]/.test(e.message),
  );
  assertThrows(() => attention(zeros([2, 5, 8]), zeros([2, 5, 8]), zeros([2, 5, 8])), ShapeError);
  assertThrows(
    () => attention(zeros([1, 1, 2, 300]), zeros([1, 1, 2, 300]), zeros([1, 1, 2, 300])),
    (e: Error) => e instanceof ShapeError && /300/.test(e.message),
  );
});
