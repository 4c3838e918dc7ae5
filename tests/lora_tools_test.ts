// LoRA tools on the CPU: SVD (reconstruction, orthogonality, known singular values), resize
// (full rank reproduces the delta, lower ranks keep the top singular values, kohya's dynamic
// rules), extract (SVD of weight differences) and the CLI handlers.
import assert from "node:assert/strict";
import { lowRankSvd, svd } from "../src/lora/svd.ts";
import { resizedRank, resizeEntries } from "../src/lora/svd_resize.ts";
import { extractEntries } from "../src/lora/svd_extract.ts";
import { entryDelta } from "../src/lora/formats/delta.ts";
import type { HostTensor, LoraEntry } from "../src/lora/file_types.ts";
import { assertClose, randomData } from "./_helpers.ts";

function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      for (let j = 0; j < n; j++) c[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
    }
  }
  return c;
}
function transpose(a: ArrayLike<number>, m: number, n: number) {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}
// Householder reflection I - 2 v v^T / |v|^2: an exact orthogonal matrix.
function householder(n: number, seed: number) {
  const v = randomData(n, seed), q = new Float64Array(n * n);
  const vv = v.reduce((a, x) => a + x * x, 0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) q[i * n + j] = (i === j ? 1 : 0) - 2 * v[i]! * v[j]! / vv;
  }
  return q;
}
// A = Q1[:, :k] diag(s) Q2[:, :k]^T with known singular values s.
function withSingularValues(m: number, n: number, s: number[], seed: number) {
  const q1 = householder(m, seed), q2 = householder(n, seed + 1);
  const a = new Float64Array(m * n);
  s.forEach((sv, t) => {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) a[i * n + j]! += q1[i * m + t]! * sv * q2[j * n + t]!;
    }
  });
  return a;
}

Deno.test("svd() reconstructs tall and wide matrices with orthonormal factors", () => {
  for (const [m, n] of [[7, 5], [4, 9], [6, 6]] as const) {
    const a = randomData(m * n, m * 10 + n);
    const f = svd(a, m, n);
    const us = new Float64Array(m * f.k);
    for (let i = 0; i < m; i++) {
      for (let t = 0; t < f.k; t++) us[i * f.k + t] = f.u[i * f.k + t]! * f.s[t]!;
    }
    // Tolerance: float64 Jacobi, entries O(1): a few hundred ulps.
    assertClose(matmul(us, f.vt, m, f.k, n), a, 1e-12, 0, `${m}x${n} reconstruction`);
    const eye = Float64Array.from({ length: f.k * f.k }, (_, i) => (i % (f.k + 1) === 0 ? 1 : 0));
    assertClose(matmul(transpose(f.u, m, f.k), f.u, f.k, m, f.k), eye, 1e-12, 0, "U^T U");
    assertClose(matmul(f.vt, transpose(f.vt, f.k, n), f.k, n, f.k), eye, 1e-12, 0, "Vt V");
    for (let t = 1; t < f.k; t++) assert.ok(f.s[t - 1]! >= f.s[t]!, "descending");
  }
});

Deno.test("svd() and lowRankSvd() find known singular values", () => {
  const s = [5, 3, 1, 0.25];
  const a = withSingularValues(8, 6, s, 3);
  assertClose(svd(a, 8, 6).s, [...s, 0, 0], 1e-12, 0, "svd");
  // up [8, 4] @ down [4, 6] with the same product: up = A's first 4 columns of U S, down = Vt.
  const f = svd(a, 8, 6);
  const up = new Float64Array(8 * 4), down = f.vt.slice(0, 4 * 6);
  for (let i = 0; i < 8; i++) for (let t = 0; t < 4; t++) up[i * 4 + t] = f.u[i * 6 + t]! * f.s[t]!;
  // Scramble the factors by an invertible 4x4 so lowRankSvd must do real work.
  const g = householder(4, 9), gi = transpose(g, 4, 4);
  const low = lowRankSvd(matmul(up, g, 8, 4, 4), matmul(gi, down, 4, 4, 6), 8, 4, 6);
  assertClose(low.s, s, 1e-12, 0, "lowRankSvd");
});

const entry = (up: HostTensor, down: HostTensor, alpha?: number): LoraEntry => ({
  component: "unet",
  path: "down_blocks.0.resnets.0.conv1",
  kind: "lora",
  up,
  down,
  tensors: {},
  ...(alpha === undefined ? {} : { alpha }),
});
const f32 = (d: ArrayLike<number>, shape: number[]): HostTensor => ({
  shape,
  data: Float32Array.from(d),
});

Deno.test("resize to full rank reproduces the delta; lower ranks keep the top singular values", () => {
  // A 3x3 LoCon of rank 5: up [6, 5, 1, 1], down [5, 4, 3, 3], alpha 2.5.
  const e = entry(f32(randomData(30, 1), [6, 5, 1, 1]), f32(randomData(180, 2), [5, 4, 3, 3]), 2.5);
  const want = entryDelta(e).weight!;
  const full = resizeEntries([e], { rank: 5 }).entries[0]!;
  assert.deepEqual(full.down!.shape, [5, 4, 3, 3]);
  assert.deepEqual(full.up!.shape, [6, 5, 1, 1]);
  assert.equal(full.alpha, 2.5); // scale * new rank, scale 0.5
  // Tolerance: f32 storage of the new factors; relative 1e-5 of the O(1) delta.
  assertClose(entryDelta(full).weight!.data, want.data, 1e-5, 1e-5, "full rank");
  const sv = svd(want.data, 6, 36).s;
  for (const r of [1, 3]) {
    const small = resizeEntries([e], { rank: r, convRank: r }).entries[0]!;
    assert.equal(small.down!.shape[0], r);
    const got = svd(entryDelta(small).weight!.data, 6, 36).s;
    assertClose(got.slice(0, r), sv.slice(0, r), 1e-5, 1e-5, `rank ${r} keeps the top values`);
    assertClose(
      got.slice(r),
      new Float64Array(got.length - r),
      1e-5,
      0,
      `rank ${r} drops the rest`,
    );
  }
  // Linear modules take --rank, k x k convs --conv-rank; other kinds pass through unchanged.
  const norm: LoraEntry = {
    component: "unet",
    path: "n",
    kind: "norm",
    tensors: {},
    wNorm: f32([1], [1]),
  };
  const res = resizeEntries([e, norm], { rank: 4, convRank: 2 });
  assert.equal(res.entries[0]!.down!.shape[0], 2);
  assert.deepEqual(res.unchanged, ["n"]);
  assert.throws(
    () => resizeEntries([e], { rank: -1 }),
    /rank must be a whole number of at least 1; got -1/,
  );
});

Deno.test("dynamic resize follows kohya's index rules", () => {
  // Hand-worked for S = [10, 1, 0.1, 0.01] (kohya adds one to each index):
  // sv_fro 0.9: cumulative S^2 share starts at 0.9899 >= 0.81 -> index 0 -> 1 -> rank 2.
  // sv_cumulative 0.9: cumulative S share 10/11.11 = 0.90009 >= 0.9 -> rank 2.
  // sv_ratio 20: S > 10/20 for 2 values -> rank 3. A cap of 2 wins over all of them.
  const s = [10, 1, 0.1, 0.01];
  assert.equal(resizedRank(s, 8, { rank: 8, dynamic: { method: "sv_fro", param: 0.9 } }), 2);
  assert.equal(resizedRank(s, 8, { rank: 8, dynamic: { method: "sv_cumulative", param: 0.9 } }), 2);
  assert.equal(resizedRank(s, 8, { rank: 8, dynamic: { method: "sv_ratio", param: 20 } }), 3);
  assert.equal(resizedRank(s, 2, { rank: 2, dynamic: { method: "sv_ratio", param: 20 } }), 2);
  assert.equal(resizedRank([0, 0], 8, { rank: 8 }), 1); // a zero delta keeps rank 1
  // Through resizeEntries: a linear LoRA with exactly those singular values.
  const a = withSingularValues(6, 5, s, 4);
  const f = svd(a, 6, 5);
  const up = new Float64Array(6 * 4);
  for (let i = 0; i < 6; i++) for (let t = 0; t < 4; t++) up[i * 4 + t] = f.u[i * 5 + t]! * f.s[t]!;
  const e = entry(f32(up, [6, 4]), f32(f.vt.slice(0, 20), [4, 5]));
  const out = resizeEntries([e], { rank: 8, dynamic: { method: "sv_ratio", param: 20 } });
  assert.equal(out.report[0]!.newRank, 3);
  assert.equal(out.entries[0]!.alpha, 3); // no alpha in: scale 1
});

Deno.test("extract recovers a low-rank weight difference and follows kohya's module rules", () => {
  const base = f32(randomData(8 * 6, 5), [8, 6]);
  const diff = withSingularValues(8, 6, [2, 0.5], 6);
  const tuned = f32(base.data.map((v, i) => v + diff[i]!), [8, 6]);
  const conv = f32(randomData(4 * 3 * 9, 7), [4, 3, 3, 3]);
  const convTuned = f32(conv.data.map((v, i) => v + (i % 5) * 0.01), [4, 3, 3, 3]);
  const te = f32(randomData(16, 8), [4, 4]);
  const pairs = [
    { component: "unet" as const, path: "u.to_q", base, tuned },
    { component: "unet" as const, path: "u.conv1", base: conv, tuned: convTuned },
    {
      component: "text_encoder" as const,
      path: "t.q_proj",
      base: te,
      tuned: f32(te.data.map((v) => v + 0.001), [4, 4]),
    },
  ];
  const two = extractEntries(pairs, { rank: 2, clampQuantile: 1 });
  assert.equal(two.textEncoderSkipped, true); // 0.001 <= min_diff 0.01
  assert.deepEqual(two.entries.map((e) => e.path), ["u.to_q"]); // no conv rank: no 3x3
  // Expected, written out: up = U[:, :r] S[:r], down = Vt[:r], both clamped to [-h, h] with h
  // the quantile-1 value (the largest) of all their values, as kohya does.
  const expected = (r: number) => {
    const f = svd(tuned.data.map((v, i) => v - base.data[i]!), 8, 6);
    const up = new Float64Array(8 * r), down = f.vt.slice(0, r * 6);
    for (let i = 0; i < 8; i++) {
      for (let t = 0; t < r; t++) up[i * r + t] = f.u[i * 6 + t]! * f.s[t]!;
    }
    const h = Math.max(...up, ...down);
    const c = (v: number) => Math.min(h, Math.max(-h, v));
    return matmul(up.map(c), down.map(c), 8, r, 6);
  };
  // Tolerance: f32 storage of O(1) factors.
  assertClose(entryDelta(two.entries[0]!).weight!.data, expected(2), 1e-5, 1e-5, "rank 2");
  const one = extractEntries(pairs, { rank: 1, convRank: 2, clampQuantile: 1, minDiff: 0.0001 });
  assert.deepEqual(one.entries.map((e) => e.path), ["u.to_q", "u.conv1", "t.q_proj"]);
  assert.deepEqual(one.entries[1]!.down!.shape, [2, 3, 3, 3]);
  assert.deepEqual(one.entries[1]!.up!.shape, [4, 2, 1, 1]);
  assertClose(entryDelta(one.entries[0]!).weight!.data, expected(1), 1e-5, 1e-5, "rank 1");
  // The clamp: no factor value exceeds the quantile of all of them.
  const clamped = extractEntries(pairs, { rank: 2, clampQuantile: 0.5 }).entries[0]!;
  const all = [...clamped.up!.data, ...clamped.down!.data];
  const hi = Math.max(...all);
  assert.ok(all.filter((v) => v === hi).length >= 2, "values were clamped to the median");
});
