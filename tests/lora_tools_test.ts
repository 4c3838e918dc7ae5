// LoRA tools on the CPU: SVD (reconstruction, orthogonality, known singular values), resize
// (full rank reproduces the delta, lower ranks keep the top singular values, kohya's dynamic
// rules), extract (SVD of weight differences) and the CLI handlers.
import assert from "node:assert/strict";
import { lowRankSvd, svd } from "../src/lora/svd.ts";
import { topSvd } from "../src/lora/svd_top.ts";
import { resizedRank, resizeEntries } from "../src/lora/svd_resize.ts";
import { extractEntries } from "../src/lora/svd_extract.ts";
import { entryDelta } from "../src/lora/formats/delta.ts";
import type { HostTensor, LoraEntry } from "../src/lora/file_types.ts";
import { SafetensorsReader, serializeSafetensors } from "../src/nn/safetensors.ts";
import { saveDiffusersFolder, saveSingleFile } from "../src/nn/loaders_fs.ts";
import { modelShapes } from "../src/lora/formats/model_shapes.ts";
import { fileModelShapes } from "../src/lora/formats/file_shapes.ts";
import { readLoraFile } from "../src/lora/formats/read_fs.ts";
import { writeLoraFile } from "../src/lora/formats/write_fs.ts";
import { kohyaTarget } from "../src/lora/svd_extract.ts";
import { unetKeyFromOriginal } from "../src/lora/svd_extract_keys.ts";
import { unetKeyToOriginal } from "../src/nn/checkpoint_keys.ts";
import { SD15_UNET_CONFIG } from "../src/nn/unet.ts";
import { convertCommand, extractCommand, resizeCommand } from "../src/cli/lora_tools.ts";
import { tinyModels } from "./_sd_fixture.ts";
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

Deno.test("topSvd() (Gram eigen-decomposition) agrees with Jacobi on matrices past its threshold", () => {
  // Known spectrum, both orientations, and a random full-rank matrix.
  const known = [9, 4, 2, 1, 0.5];
  for (const [m, n] of [[90, 60], [60, 90]] as const) {
    const a = withSingularValues(m, n, known, m + n);
    const t = topSvd(a, m, n, 5);
    // Tolerance: the Gram matrix squares the condition number; 1e-10 of s_max is still far below
    // anything a LoRA factor (f32) can hold.
    assertClose(t.s, known, 1e-10, 0, `${m}x${n} values`);
    const us = new Float64Array(m * 5);
    for (let i = 0; i < m; i++) {
      for (let r = 0; r < 5; r++) us[i * 5 + r] = t.u[i * 5 + r]! * t.s[r]!;
    }
    assertClose(matmul(us, t.vt, m, 5, n), a, 1e-10, 0, `${m}x${n} rank-5 reconstruction`);
  }
  // A matrix whose tridiagonal QL leaves the eigenvalues out of order (a near-degenerate
  // spectrum): the largest must still come first.
  const wave = Float64Array.from(
    { length: 64 * 64 },
    (_, i) => Math.sin(i * 0.7 + i * i * 1e-5) + Math.cos(i * 1.3),
  );
  assertClose(
    topSvd(wave, 64, 64, 4).s,
    svd(wave, 64, 64).s.slice(0, 4),
    1e-9,
    1e-9,
    "wave values",
  );
  const b = randomData(70 * 55, 21);
  const j = svd(b, 70, 55), t = topSvd(b, 70, 55, 6);
  assertClose(t.s, j.s.slice(0, 6), 1e-10, 0, "random values");
  for (let r = 0; r < 6; r++) {
    // Singular vectors are unique up to sign: compare |<u_jacobi, u_top>| with 1.
    let dot = 0;
    for (let i = 0; i < 70; i++) dot += j.u[i * j.k + r]! * t.u[i * 6 + r]!;
    assertClose([Math.abs(dot)], [1], 1e-8, 0, `vector ${r}`);
  }
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

// ---------------------------------------------------------------------------------------------
// The CLI handlers and real (tiny) models

async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const log = console.log, err = console.error;
  console.log = () => {};
  console.error = () => {};
  try {
    return await fn();
  } finally {
    console.log = log;
    console.error = err;
  }
}

Deno.test("LDM U-Net keys map back to diffusers keys for every SD 1.x module", () => {
  // Every key the forward map produces must come back: checked over SD 1.x's module names,
  // written from the config's block layout.
  const keys: string[] = ["conv_in.weight", "conv_out.weight", "time_embedding.linear_1.weight"];
  for (let b = 0; b < 4; b++) {
    for (let j = 0; j < 2; j++) {
      keys.push(
        `down_blocks.${b}.resnets.${j}.conv1.weight`,
        `down_blocks.${b}.resnets.${j}.time_emb_proj.weight`,
      );
      if (b < 3) keys.push(`down_blocks.${b}.attentions.${j}.proj_in.weight`);
    }
    if (b < 3) keys.push(`down_blocks.${b}.downsamplers.0.conv.weight`);
    for (let j = 0; j < 3; j++) {
      keys.push(
        `up_blocks.${b}.resnets.${j}.conv_shortcut.weight`,
        `up_blocks.${b}.resnets.${j}.norm2.weight`,
      );
      if (b > 0) keys.push(`up_blocks.${b}.attentions.${j}.transformer_blocks.0.attn2.to_k.weight`);
    }
    if (b < 3) keys.push(`up_blocks.${b}.upsamplers.0.conv.weight`);
  }
  keys.push("mid_block.resnets.1.conv2.weight", "mid_block.attentions.0.proj_out.weight");
  for (const k of keys) {
    const ldm = unetKeyToOriginal(k, SD15_UNET_CONFIG);
    assert.ok(ldm, k);
    assert.equal(unetKeyFromOriginal(ldm, SD15_UNET_CONFIG), k, ldm);
  }
});

Deno.test("a LoRA on the tiny model's kohya targets round-trips against the model's own module tree", async () => {
  const m = tinyModels(1);
  try {
    const shapes = modelShapes({ unet: m.unet, textEncoder: m.textEncoder });
    const targets = shapes.modules.filter((x) => kohyaTarget(x, true));
    assert.ok(targets.some((t) => t.path.endsWith("attn2.to_k")));
    assert.ok(targets.some((t) => t.component === "text_encoder" && t.path.endsWith("mlp.fc2")));
    let s = 50;
    const entries: LoraEntry[] = targets.map((t) => {
      const inner = t.weight.slice(1).reduce((a, b) => a * b, 1);
      const conv = t.weight.length === 4;
      return {
        component: t.component,
        path: t.path,
        kind: "lora",
        alpha: 1,
        tensors: {},
        down: f32(randomData(2 * inner, s++), conv ? [2, ...t.weight.slice(1)] : [2, inner]),
        up: f32(
          randomData(t.weight[0]! * 2, s++),
          conv ? [t.weight[0]!, 2, 1, 1] : [t.weight[0]!, 2],
        ),
      };
    });
    const dir = await Deno.makeTempDir();
    try {
      await writeLoraFile(`${dir}/a.safetensors`, entries);
      const back = await readLoraFile(`${dir}/a.safetensors`, shapes);
      assert.equal(back.entries.length, entries.length);
      // LDM-style names load too, against the real config.
      const e = entries.find((x) => x.path.endsWith("attentions.0.proj_in"))!;
      const ldm = unetKeyToOriginal(`${e.path}.weight`, m.unet.config)!.slice(0, -7).replaceAll(
        ".",
        "_",
      );
      await Deno.writeFile(
        `${dir}/ldm.safetensors`,
        serializeSafetensors({
          [`lora_unet_${ldm}.lora_down.weight`]: e.down!,
          [`lora_unet_${ldm}.lora_up.weight`]: e.up!,
        }),
      );
      const l = await readLoraFile(`${dir}/ldm.safetensors`, shapes);
      assert.equal(l.entries[0]!.path, e.path);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    m.unet.dispose();
    m.vae.dispose();
    m.textEncoder.dispose();
  }
});

Deno.test("lora resize and convert (CLI) write files that read back with the same delta", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const e = entry(
      f32(randomData(30, 11), [6, 5, 1, 1]),
      f32(randomData(180, 12), [5, 4, 3, 3]),
      2.5,
    );
    const q: LoraEntry = {
      ...entry(f32(randomData(24, 13), [8, 3]), f32(randomData(18, 14), [3, 6])),
      path: "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    };
    await writeLoraFile(`${dir}/in.safetensors`, [e, q], {
      metadata: { networkDim: 5, outputName: "x" },
    });
    assert.equal(
      await quietly(() =>
        resizeCommand([
          "--lora",
          `${dir}/in.safetensors`,
          "--rank",
          "8",
          "--conv-rank",
          "5",
          "--out",
          `${dir}/r.safetensors`,
        ])
      ),
      0,
    );
    const shapesOf = async (p: string) => {
      using r = await SafetensorsReader.fromBytes(await Deno.readFile(p), p);
      return fileModelShapes(r);
    };
    const r = await readLoraFile(`${dir}/r.safetensors`, await shapesOf(`${dir}/r.safetensors`));
    assert.equal(r.metadata["ss_network_dim"], "8");
    assert.match(
      r.metadata["ss_training_comment"]!,
      /^dimension is resized from 5 to 8 \(conv: 5\); /,
    );
    // Tolerance: f32 storage of the SVD factors of O(1) deltas.
    for (const want of [e, q]) {
      assertClose(
        entryDelta(r.entries.find((x) => x.path === want.path)!).weight!.data,
        entryDelta(want).weight!.data,
        1e-5,
        1e-5,
        want.path,
      );
    }
    await quietly(() =>
      resizeCommand([
        "--lora",
        `${dir}/in.safetensors`,
        "--dynamic",
        "sv_fro:0.5",
        "--out",
        `${dir}/d.safetensors`,
      ])
    );
    using d = await SafetensorsReader.fromBytes(await Deno.readFile(`${dir}/d.safetensors`));
    assert.equal(d.metadata["ss_network_dim"], "Dynamic");
    // kohya -> PEFT -> kohya keeps the delta; PEFT keys are diffusers paths.
    await quietly(() =>
      convertCommand([
        "--lora",
        `${dir}/in.safetensors`,
        "--to",
        "peft",
        "--out",
        `${dir}/p.safetensors`,
      ])
    );
    using p = await SafetensorsReader.fromBytes(await Deno.readFile(`${dir}/p.safetensors`));
    assert.ok(p.keys.includes(`unet.${q.path}.lora_A.weight`));
    await quietly(() =>
      convertCommand([
        "--lora",
        `${dir}/p.safetensors`,
        "--to",
        "kohya",
        "--save-precision",
        "fp16",
        "--out",
        `${dir}/k.safetensors`,
      ])
    );
    const k = await readLoraFile(`${dir}/k.safetensors`, await shapesOf(`${dir}/k.safetensors`));
    assert.ok(k.entries.some((x) => x.path === q.path));
    // Tolerance: one F16 rounding of each factor (2^-11 relative), summed over rank 3.
    assertClose(
      entryDelta(k.entries.find((x) => x.path === q.path)!).weight!.data,
      entryDelta(q).weight!.data,
      5e-3,
      5e-3,
      "via PEFT",
    );
    // Bad input: a negative rank and an output in a missing folder; nothing is written.
    await assert.rejects(
      resizeCommand([
        "--lora",
        `${dir}/in.safetensors`,
        "--rank=-2",
        "--out",
        `${dir}/x.safetensors`,
      ]),
      /--rank must be a whole number from 1/,
    );
    await assert.rejects(
      resizeCommand([
        "--lora",
        `${dir}/in.safetensors`,
        "--rank",
        "2",
        "--out",
        `${dir}/no/x.safetensors`,
      ]),
      /create the folder/,
    );
    const names: string[] = [];
    for await (const f of Deno.readDir(dir)) names.push(f.name);
    assert.deepEqual(names.sort(), [
      "d.safetensors",
      "in.safetensors",
      "k.safetensors",
      "p.safetensors",
      "r.safetensors",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lora extract (CLI) gives the same LoRA from diffusers folders and single files", async () => {
  const a = tinyModels(1), b = tinyModels(2);
  const dir = await Deno.makeTempDir();
  try {
    await saveDiffusersFolder(`${dir}/a`, a);
    await saveDiffusersFolder(`${dir}/b`, b);
    await saveSingleFile(`${dir}/a.safetensors`, a);
    await saveSingleFile(`${dir}/b.safetensors`, b);
    const run = (base: string, tuned: string, out: string) =>
      quietly(() =>
        extractCommand([
          "--base",
          base,
          "--tuned",
          tuned,
          "--rank",
          "2",
          "--conv-rank",
          "1",
          "--out",
          out,
        ])
      );
    assert.equal(await run(`${dir}/a`, `${dir}/b`, `${dir}/folder.safetensors`), 0);
    assert.equal(
      await run(`${dir}/a.safetensors`, `${dir}/b.safetensors`, `${dir}/single.safetensors`),
      0,
    );
    const shapes = modelShapes({ unet: a.unet, textEncoder: a.textEncoder });
    const f = await readLoraFile(`${dir}/folder.safetensors`, shapes);
    const s = await readLoraFile(`${dir}/single.safetensors`, shapes);
    const targets = shapes.modules.filter((x) => kohyaTarget(x, true));
    assert.equal(f.entries.length, targets.length);
    assert.deepEqual(f.entries.map((e) => e.path).sort(), s.entries.map((e) => e.path).sort());
    for (const e of f.entries) {
      const t = s.entries.find((x) => x.path === e.path && x.component === e.component)!;
      assertClose(t.down!.data, e.down!.data, 0, 0, e.path);
    }
    const conv = f.entries.find((e) => e.path.endsWith("resnets.0.conv1"))!;
    assert.deepEqual(conv.down!.shape.slice(0, 1), [1]);
    assert.equal(f.metadata["ss_network_dim"], "2");
  } finally {
    await Deno.remove(dir, { recursive: true });
    for (const m of [a, b]) {
      m.unet.dispose();
      m.vae.dispose();
      m.textEncoder.dispose();
    }
  }
});
