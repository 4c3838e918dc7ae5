// LoRA files: every family read against a model and turned into the same weight delta; the
// writers round-trip; bad input gets a clear error and nothing is written.
import assert from "node:assert/strict";
import { SafetensorsReader, serializeSafetensors } from "../src/nn/safetensors.ts";
import { unetConfig } from "../src/nn/unet.ts";
import type { HostTensor, LoraEntry } from "../src/lora/file_types.ts";
import { kohyaName } from "../src/lora/formats/names.ts";
import { readLora } from "../src/lora/formats/read.ts";
import { readLoraFile } from "../src/lora/formats/read_fs.ts";
import { entryDelta } from "../src/lora/formats/delta.ts";
import { writeLoraFile } from "../src/lora/formats/write_fs.ts";
import { LoraFileError } from "../src/lora/formats/errors.ts";
import type { LoraModelShapes, LoraModuleShape } from "../src/lora/formats/model_shapes.ts";
import { assertClose, seeded } from "./_helpers.ts";

// A hand-written module tree (shapes only) with a tiny two-level U-Net config for LDM names.
const Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
const K2 = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k";
const OUT = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0";
const PROJ = "down_blocks.0.attentions.0.proj_in";
const CONV = "down_blocks.0.resnets.0.conv1";
const CONV2 = "down_blocks.0.resnets.0.conv2";
const DOWN = "down_blocks.0.downsamplers.0.conv";
const NORM = "down_blocks.0.resnets.0.norm1";
const TEQ = "text_model.encoder.layers.0.self_attn.q_proj";
const mod = (
  component: "unet" | "text_encoder",
  path: string,
  kind: LoraModuleShape["kind"],
  weight: number[],
): LoraModuleShape => ({ component, path, kind, weight, hasBias: true });
const MODEL: LoraModelShapes = {
  modules: [
    mod("unet", Q, "linear", [8, 6]),
    mod("unet", K2, "linear", [8, 12]),
    mod("unet", OUT, "linear", [8, 8]),
    mod("unet", PROJ, "conv", [8, 8, 1, 1]),
    mod("unet", CONV, "conv", [4, 6, 3, 3]),
    mod("unet", CONV2, "conv", [4, 6, 3, 3]),
    mod("unet", DOWN, "conv", [6, 6, 3, 3]),
    mod("unet", NORM, "norm", [6]),
    mod("text_encoder", TEQ, "linear", [6, 6]),
  ],
  unetConfig: unetConfig({ blockOutChannels: [32, 64], layersPerBlock: 1 }),
};

let seed = 100;
function rand(shape: number[], f16 = false): HostTensor {
  const r = seeded(seed++);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, r);
  return { shape, data: f16 ? Float32Array.from(new Float16Array(data)) : data };
}

// Independent reference: delta[o, c] = scale * sum_r up[o, r] down[r, c].
function refLora(up: HostTensor, down: HostTensor, scale: number): Float64Array {
  const out = up.shape[0]!, r = down.shape[0]!, inner = down.data.length / r;
  const d = new Float64Array(out * inner);
  for (let o = 0; o < out; o++) {
    for (let c = 0; c < inner; c++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += up.data[o * r + k]! * down.data[k * inner + c]!;
      d[o * inner + c] = s * scale;
    }
  }
  return d;
}

// safetensors bytes with any dtype (the writer only makes F32/F16; files in the wild have more).
type Raw = { dtype: string; shape: number[]; bytes: Uint8Array };
function rawFile(tensors: Record<string, Raw>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let at = 0;
  for (const [k, t] of Object.entries(tensors)) {
    header[k] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.byteLength] };
    at += t.bytes.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.byteLength % 8)) % 8;
  json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + json.byteLength + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let p = 8 + json.byteLength;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, p);
    p += t.bytes.byteLength;
  }
  return out;
}
const f32 = (t: HostTensor): Raw => ({
  dtype: "F32",
  shape: t.shape,
  bytes: new Uint8Array(t.data.slice().buffer),
});
const f16 = (t: HostTensor): Raw => ({
  dtype: "F16",
  shape: t.shape,
  bytes: new Uint8Array(new Float16Array(t.data).buffer),
});
const bf16Scalar = (v: number): Raw => {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16;
  return { dtype: "BF16", shape: [], bytes: new Uint8Array(new Uint16Array([u]).buffer) };
};
const i64Scalar = (v: number): Raw => ({
  dtype: "I64",
  shape: [],
  bytes: new Uint8Array(new BigInt64Array([BigInt(v)]).buffer),
});

const read = async (bytes: Uint8Array, opts = {}) =>
  await readLora(await SafetensorsReader.fromBytes(bytes, "test.safetensors"), MODEL, opts);
const byPath = (entries: LoraEntry[], path: string): LoraEntry => {
  const e = entries.find((x) => x.path === path);
  assert.ok(e, `entry ${path} missing`);
  return e;
};

// The reference LoRA used across families: rank 2 to_q (alpha 1), rank 3 3x3 LoCon (alpha 1.5).
const qDown = rand([2, 6]), qUp = rand([8, 2]);
const cDown = rand([3, 6, 3, 3]), cUp = rand([4, 3, 1, 1]);
const qScale = 1 / 2, cScale = 1.5 / 3;

Deno.test("kohyaName() gives kohya's module names", () => {
  assert.equal(
    kohyaName("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
  );
  assert.equal(
    kohyaName("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj"),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
  );
});

Deno.test("a hand-written kohya file (alphas of several dtypes, 3x3 LoCon, missing alpha, F16) reproduces its delta", async () => {
  const pDown = rand([2, 8, 1, 1], true), pUp = rand([8, 2, 1, 1], true);
  const tDown = rand([1, 6], true), tUp = rand([6, 1], true);
  const n = (p: string, c: "unet" | "text_encoder" = "unet") => kohyaName(c, p);
  const bytes = rawFile({
    [`${n(Q)}.lora_down.weight`]: f32(qDown),
    [`${n(Q)}.lora_up.weight`]: f32(qUp),
    [`${n(Q)}.alpha`]: bf16Scalar(1),
    [`${n(CONV)}.lora_down.weight`]: f32(cDown),
    [`${n(CONV)}.lora_up.weight`]: f32(cUp),
    [`${n(CONV)}.alpha`]: f16({ shape: [], data: new Float32Array([1.5]) }),
    // No alpha: scale 1 (kohya "old LoRA without alpha", A1111, ComfyUI, PEFT agree).
    [`${n(PROJ)}.lora_down.weight`]: f16(pDown),
    [`${n(PROJ)}.lora_up.weight`]: f16(pUp),
    [`${n(TEQ, "text_encoder")}.lora_down.weight`]: f16(tDown),
    [`${n(TEQ, "text_encoder")}.lora_up.weight`]: f16(tUp),
    // extract_lora_from_models writes an int64 alpha equal to the rank.
    [`${n(TEQ, "text_encoder")}.alpha`]: i64Scalar(1),
  }, { ss_network_dim: "2" });
  const lora = await read(bytes);
  assert.equal(lora.family, "kohya");
  assert.equal(lora.metadata["ss_network_dim"], "2");
  assert.equal(lora.entries.length, 4);
  // Tolerance: f64 reference vs f32 output of f32/f16-exact inputs, a few ulps of f32.
  const check = (path: string, up: HostTensor, down: HostTensor, scale: number) => {
    const d = entryDelta(byPath(lora.entries, path)).weight!;
    assertClose(d.data, refLora(up, down, scale), 1e-6, 1e-6, path);
    return d;
  };
  assert.deepEqual(check(Q, qUp, qDown, qScale).shape, [8, 6]);
  assert.deepEqual(check(CONV, cUp, cDown, cScale).shape, [4, 6, 3, 3]);
  assert.equal(byPath(lora.entries, PROJ).alpha, undefined);
  check(PROJ, pUp, pDown, 1);
  check(TEQ, tUp, tDown, 1);
  assert.equal(byPath(lora.entries, TEQ).component, "text_encoder");
});

// The same delta in other families: merged weights must agree with the kohya form.
async function mergedQAndConv(bytes: Uint8Array): Promise<[Float32Array, Float32Array]> {
  const lora = await read(bytes);
  return [
    entryDelta(byPath(lora.entries, Q)).weight!.data,
    entryDelta(byPath(lora.entries, CONV)).weight!.data,
  ];
}
const kohyaBytes = () =>
  serializeSafetensors({
    [`${kohyaName("unet", Q)}.lora_down.weight`]: qDown,
    [`${kohyaName("unet", Q)}.lora_up.weight`]: qUp,
    [`${kohyaName("unet", Q)}.alpha`]: { shape: [], data: new Float32Array([1]) },
    [`${kohyaName("unet", CONV)}.lora_down.weight`]: cDown,
    [`${kohyaName("unet", CONV)}.lora_up.weight`]: cUp,
    [`${kohyaName("unet", CONV)}.alpha`]: { shape: [], data: new Float32Array([1.5]) },
  });
const ones = (shape: number[]): HostTensor => ({
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1),
});

Deno.test("LDM names, PEFT names (both generations), LoHa and LoKr give the kohya form's merged weights", async () => {
  const [wantQ, wantC] = await mergedQAndConv(kohyaBytes());
  // Tolerance: the same f32 inputs through different (f64-accumulated) paths; f32 rounding only.
  const same = async (what: string, bytes: Uint8Array) => {
    const [q, c] = await mergedQAndConv(bytes);
    assertClose(q, wantQ, 1e-6, 1e-6, `${what} to_q`);
    assertClose(c, wantC, 1e-6, 1e-6, `${what} conv1`);
  };
  // LDM style: down_blocks.0.attentions.0 -> input_blocks.1.1, resnets.0.conv1 -> input_blocks.1.0.in_layers.2.
  const ldmQ = "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q";
  const ldmC = "lora_unet_input_blocks_1_0_in_layers_2";
  await same(
    "LDM",
    serializeSafetensors({
      [`${ldmQ}.lora_down.weight`]: qDown,
      [`${ldmQ}.lora_up.weight`]: qUp,
      [`${ldmQ}.alpha`]: { shape: [], data: new Float32Array([1]) },
      [`${ldmC}.lora_down.weight`]: cDown,
      [`${ldmC}.lora_up.weight`]: cUp,
      [`${ldmC}.alpha`]: { shape: [], data: new Float32Array([1.5]) },
    }),
  );
  // PEFT: lora_A / lora_B, alphas in lora_adapter_metadata (conv1 through alpha_pattern).
  const meta = {
    lora_adapter_metadata: JSON.stringify({
      "unet.r": 2,
      "unet.lora_alpha": 1,
      "unet.alpha_pattern": { [CONV]: 1.5 },
      "unet.rank_pattern": { [CONV]: 3 },
    }),
  };
  await same(
    "PEFT",
    serializeSafetensors({
      [`unet.${Q}.lora_A.weight`]: qDown,
      [`unet.${Q}.lora_B.weight`]: qUp,
      [`unet.${CONV}.lora_A.weight`]: cDown,
      [`unet.${CONV}.lora_B.weight`]: cUp,
    }, meta),
  );
  // Old diffusers: attention processors (to_q_lora) and LoRACompatibleConv (.lora.down), with
  // the scale folded into up since those files carry no alpha.
  const fold = (t: HostTensor, s: number): HostTensor => ({
    shape: t.shape,
    data: t.data.map((v) => v * s),
  });
  await same(
    "old diffusers",
    serializeSafetensors({
      "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight":
        qDown,
      "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight":
        fold(qUp, qScale),
      [`unet.${CONV}.lora.down.weight`]: cDown,
      [`unet.${CONV}.lora.up.weight`]: fold(cUp, cScale),
    }),
  );
  // The processor form names to_out as to_out_lora; the module is to_out.0.
  const outLora = await read(serializeSafetensors({
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight":
      rand([1, 8]),
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight":
      rand([8, 1]),
  }));
  assert.deepEqual(outLora.entries.map((e) => e.path), [OUT]);
  // LoHa: (w1a @ w1b) * (w2a @ w2b) with a rank-1 all-ones second factor equals w1a @ w1b.
  await same(
    "LoHa",
    serializeSafetensors({
      [`${kohyaName("unet", Q)}.hada_w1_a`]: qUp,
      [`${kohyaName("unet", Q)}.hada_w1_b`]: qDown,
      [`${kohyaName("unet", Q)}.hada_w2_a`]: ones([8, 1]),
      [`${kohyaName("unet", Q)}.hada_w2_b`]: ones([1, 6]),
      [`${kohyaName("unet", Q)}.alpha`]: { shape: [], data: new Float32Array([1]) },
      [`${kohyaName("unet", CONV)}.hada_w1_a`]: { shape: [4, 3], data: cUp.data },
      [`${kohyaName("unet", CONV)}.hada_w1_b`]: { shape: [3, 54], data: cDown.data },
      [`${kohyaName("unet", CONV)}.hada_w2_a`]: ones([4, 1]),
      [`${kohyaName("unet", CONV)}.hada_w2_b`]: ones([1, 54]),
      [`${kohyaName("unet", CONV)}.alpha`]: { shape: [], data: new Float32Array([1.5]) },
    }),
  );
  // LoKr: kron([[1]], w2a @ w2b) = w2a @ w2b, scale alpha / rank of w2.
  await same(
    "LoKr",
    serializeSafetensors({
      [`${kohyaName("unet", Q)}.lokr_w1`]: ones([1, 1]),
      [`${kohyaName("unet", Q)}.lokr_w2_a`]: qUp,
      [`${kohyaName("unet", Q)}.lokr_w2_b`]: qDown,
      [`${kohyaName("unet", Q)}.alpha`]: { shape: [], data: new Float32Array([1]) },
      [`${kohyaName("unet", CONV)}.lokr_w1`]: ones([1, 1]),
      [`${kohyaName("unet", CONV)}.lokr_w2_a`]: { shape: [4, 3], data: cUp.data },
      [`${kohyaName("unet", CONV)}.lokr_w2_b`]: { shape: [3, 54], data: cDown.data },
      [`${kohyaName("unet", CONV)}.alpha`]: { shape: [], data: new Float32Array([1.5]) },
    }),
  );
});

Deno.test("LoKr Kronecker, Tucker LoCon, LoHa Tucker, full, norm and DoRA deltas match independent formulas", async () => {
  const q = kohyaName("unet", Q), c = kohyaName("unet", CONV), d = kohyaName("unet", DOWN);
  const w1 = rand([2, 3]), w2 = rand([4, 2]); // kron -> [8, 6]
  const mid = rand([2, 2, 3, 3]), tDown = rand([2, 6, 1, 1]), tUp = rand([4, 2, 1, 1]);
  const t1 = rand([2, 2, 3, 3]), h1a = rand([2, 6]), h1b = rand([2, 6]);
  const t2 = rand([2, 2, 3, 3]), h2a = rand([2, 6]), h2b = rand([2, 6]);
  const diff = rand([8, 8, 1, 1]), diffB = rand([8]);
  const wN = rand([6]), bN = rand([6]);
  // LoKr with a decomposed w1 and a Tucker w2 on a 3x3 conv: [2, 3] (x) [2, 2, 3, 3].
  const k1a = rand([2, 2]), k1b = rand([2, 3]), kt2 = rand([2, 2, 3, 3]), k2a = rand([2, 2]);
  const k2b = rand([2, 2]);
  const c2 = kohyaName("unet", CONV2);
  const lora = await read(serializeSafetensors({
    [`${q}.lokr_w1`]: w1,
    [`${q}.lokr_w2`]: w2,
    [`${q}.alpha`]: { shape: [], data: new Float32Array([7]) }, // both factors full: scale 1
    [`${c}.lora_down.weight`]: tDown,
    [`${c}.lora_mid.weight`]: mid,
    [`${c}.lora_up.weight`]: tUp,
    [`${c}.alpha`]: { shape: [], data: new Float32Array([1]) },
    [`${d}.hada_t1`]: t1,
    [`${d}.hada_w1_a`]: h1a,
    [`${d}.hada_w1_b`]: h1b,
    [`${d}.hada_t2`]: t2,
    [`${d}.hada_w2_a`]: h2a,
    [`${d}.hada_w2_b`]: h2b,
    [`${kohyaName("unet", PROJ)}.diff`]: diff,
    [`${kohyaName("unet", PROJ)}.diff_b`]: diffB,
    [`${kohyaName("unet", NORM)}.w_norm`]: wN,
    [`${kohyaName("unet", NORM)}.b_norm`]: bN,
    [`${c2}.lokr_w1_a`]: k1a,
    [`${c2}.lokr_w1_b`]: k1b,
    [`${c2}.lokr_t2`]: kt2,
    [`${c2}.lokr_w2_a`]: k2a,
    [`${c2}.lokr_w2_b`]: k2b,
    [`${c2}.alpha`]: { shape: [], data: new Float32Array([3]) },
  }));
  assert.equal(lora.family, "lycoris");
  // Tolerance: f64 references vs f32 results, sums of <= 36 products of values in [-1, 1).
  const tol = 1e-5;
  const kron = new Float64Array(48);
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 4; j++) {
      for (let a = 0; a < 3; a++) {
        for (let b = 0; b < 2; b++) {
          kron[(i * 4 + j) * 6 + a * 2 + b] = w1.data[i * 3 + a]! * w2.data[j * 2 + b]!;
        }
      }
    }
  }
  assertClose(entryDelta(byPath(lora.entries, Q)).weight!.data, kron, tol, tol, "LoKr");
  // Tucker: delta[o, n, s] = scale * sum_ij up[o, i] mid[i, j, s] down[j, n].
  const tucker = (
    t: HostTensor,
    a: (p: number, i: number) => number,
    b: (j: number, q: number) => number,
    P: number,
    N: number,
  ) => {
    const out = new Float64Array(P * N * 9);
    for (let p = 0; p < P; p++) {
      for (let n = 0; n < N; n++) {
        for (let s = 0; s < 9; s++) {
          let v = 0;
          for (let i = 0; i < 2; i++) {
            for (let j = 0; j < 2; j++) v += a(p, i) * t.data[(i * 2 + j) * 9 + s]! * b(j, n);
          }
          out[(p * N + n) * 9 + s] = v;
        }
      }
    }
    return out;
  };
  const tk = tucker(mid, (p, i) => tUp.data[p * 2 + i]!, (j, n) => tDown.data[j * 6 + n]!, 4, 6)
    .map((v) => v * 0.5);
  assertClose(entryDelta(byPath(lora.entries, CONV)).weight!.data, tk, tol, tol, "Tucker LoCon");
  const r1 = tucker(t1, (p, i) => h1a.data[i * 6 + p]!, (j, n) => h1b.data[j * 6 + n]!, 6, 6);
  const r2 = tucker(t2, (p, i) => h2a.data[i * 6 + p]!, (j, n) => h2b.data[j * 6 + n]!, 6, 6);
  assertClose(
    entryDelta(byPath(lora.entries, DOWN)).weight!.data,
    r1.map((v, i) => v * r2[i]!),
    tol,
    tol,
    "LoHa Tucker",
  );
  // W1 = w1_a @ w1_b; W2[j, q, s] = sum_ik t2[i, k, s] w2_a[i, j] w2_b[k, q];
  // delta[i*2 + j, (c*2 + q)*9 + s] = W1[i, c] W2[j, q, s] * alpha / rank (3 / 2).
  const lk = new Float64Array(4 * 6 * 9);
  for (let i = 0; i < 2; i++) {
    for (let c = 0; c < 3; c++) {
      const w1 = k1a.data[i * 2]! * k1b.data[c]! + k1a.data[i * 2 + 1]! * k1b.data[3 + c]!;
      for (let j = 0; j < 2; j++) {
        for (let q = 0; q < 2; q++) {
          for (let s = 0; s < 9; s++) {
            let w2 = 0;
            for (let a = 0; a < 2; a++) {
              for (let b = 0; b < 2; b++) {
                w2 += kt2.data[(a * 2 + b) * 9 + s]! * k2a.data[a * 2 + j]! * k2b.data[b * 2 + q]!;
              }
            }
            lk[(i * 2 + j) * 54 + (c * 2 + q) * 9 + s] = w1 * w2 * 1.5;
          }
        }
      }
    }
  }
  assertClose(entryDelta(byPath(lora.entries, CONV2)).weight!.data, lk, tol, tol, "LoKr Tucker");
  const full = entryDelta(byPath(lora.entries, PROJ), { multiplier: 0.5 });
  assertClose(full.weight!.data, diff.data.map((v) => v * 0.5), 0, 0, "diff");
  assertClose(full.bias!.data, diffB.data.map((v) => v * 0.5), 0, 0, "diff_b");
  const norm = entryDelta(byPath(lora.entries, NORM));
  assertClose(norm.weight!.data, wN.data, 0, 0, "w_norm");
  assertClose(norm.bias!.data, bN.data, 0, 0, "b_norm");

  // DoRA on either axis: merged = (W + d) * m / |W + d| along the axis the dora_scale names.
  const base = rand([8, 6]);
  const delta = refLora(qUp, qDown, qScale);
  for (const axis of ["out", "in"] as const) {
    const n = axis === "out" ? 8 : 6;
    const mag = rand([n]).data.map((v) => 1 + Math.abs(v));
    const doraFile = await read(serializeSafetensors({
      [`${q}.lora_down.weight`]: qDown,
      [`${q}.lora_up.weight`]: qUp,
      [`${q}.alpha`]: { shape: [], data: new Float32Array([1]) },
      [`${q}.dora_scale`]: { shape: axis === "out" ? [8, 1] : [1, 6], data: mag },
    }));
    const norms = new Float64Array(n);
    for (let o = 0; o < 8; o++) {
      for (let i = 0; i < 6; i++) {
        const v = base.data[o * 6 + i]! + delta[o * 6 + i]!;
        norms[axis === "out" ? o : i]! += v * v;
      }
    }
    const want = new Float64Array(48);
    for (let o = 0; o < 8; o++) {
      for (let i = 0; i < 6; i++) {
        const c2 = axis === "out" ? o : i;
        const w = base.data[o * 6 + i]! + delta[o * 6 + i]!;
        want[o * 6 + i] = 0.7 * (w * mag[c2]! / Math.sqrt(norms[c2]!) - base.data[o * 6 + i]!);
      }
    }
    const got = entryDelta(byPath(doraFile.entries, Q), { base, multiplier: 0.7 }).weight!.data;
    assertClose(got, want, tol, tol, `DoRA ${axis}`);
    assert.throws(() => entryDelta(byPath(doraFile.entries, Q)), /needs the module's base weight/);
  }
});

// ---------------------------------------------------------------------------------------------
// Writers and round trips

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "lora_format_test_" });
}
const entriesOf = (): LoraEntry[] => [
  { component: "unet", path: Q, kind: "lora", alpha: 1, down: qDown, up: qUp, tensors: {} },
  { component: "unet", path: CONV, kind: "lora", alpha: 1.5, down: cDown, up: cUp, tensors: {} },
  {
    component: "text_encoder",
    path: TEQ,
    kind: "lora",
    down: rand([1, 6]),
    up: rand([6, 1]),
    tensors: {},
  },
  { component: "unet", path: NORM, kind: "norm", wNorm: rand([6]), tensors: {} },
];

function dataSectionSha(bytes: Uint8Array): Promise<ArrayBuffer> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return crypto.subtle.digest("SHA-256", bytes.slice(8 + n));
}
const hex = (b: ArrayBuffer) =>
  [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("the kohya writer round-trips entries (F32 and F16) with kohya's names, metadata and hash", async () => {
  const dir = await tempDir();
  try {
    for (const dtype of ["F32", "F16"] as const) {
      const path = `${dir}/out_${dtype}.safetensors`;
      const entries = entriesOf();
      await writeLoraFile(path, entries, {
        dtype,
        metadata: {
          networkDim: 2,
          networkAlpha: 1,
          outputName: "cat",
          steps: 10,
          networkArgs: { conv_dim: "3" },
          date: new Date(0),
        },
      });
      const bytes = await Deno.readFile(path);
      using r = await SafetensorsReader.fromBytes(bytes, path);
      const q = kohyaName("unet", Q);
      assert.deepEqual(r.info(`${q}.lora_down.weight`), { dtype, shape: [2, 6] });
      assert.deepEqual(r.info(`${q}.alpha`), { dtype, shape: [] });
      // A missing alpha is written as the rank (scale stays 1); w_norm always has its b_norm.
      assert.deepEqual(
        await r.read(`${kohyaName("text_encoder", TEQ)}.alpha`),
        new Float32Array([1]),
      );
      assert.deepEqual(await r.read(`${kohyaName("unet", NORM)}.b_norm`), new Float32Array(6));
      const m = r.metadata;
      assert.equal(m["ss_network_dim"], "2");
      assert.equal(m["ss_network_alpha"], "1.0");
      assert.equal(m["ss_network_module"], "lycoris.kohya"); // norm deltas need LyCORIS' loader
      assert.equal(m["ss_network_args"], '{"conv_dim": "3"}');
      assert.equal(m["ss_base_model_version"], "sd_v1");
      assert.equal(m["ss_resolution"], "(512, 512)");
      assert.equal(m["ss_seed"], "None");
      assert.equal(m["modelspec.architecture"], "stable-diffusion-v1/lora");
      assert.equal(m["modelspec.title"], "cat");
      assert.equal(m["sshs_model_hash"], hex(await dataSectionSha(bytes)));
      assert.match(m["sshs_legacy_hash"]!, /^[0-9a-f]{8}$/);
      const back = await readLora(r, MODEL);
      // Tolerance: F32 is exact; F16 storage rounds each factor by 2^-11 relative.
      const tol = dtype === "F32" ? 1e-6 : 4e-3;
      for (const e of entries) {
        const got = entryDelta(byPath(back.entries, e.path)).weight!.data;
        assertClose(
          got,
          entryDelta(e, { multiplier: 1 }).weight!.data,
          tol,
          tol,
          `${dtype} ${e.path}`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the PEFT writer and the diffusers-safe export keep the delta and list what they drop", async () => {
  const dir = await tempDir();
  try {
    const loraOnly = entriesOf().filter((e) => e.kind === "lora");
    await writeLoraFile(`${dir}/peft.safetensors`, loraOnly, { format: "peft" });
    const peft = await readLoraFile(`${dir}/peft.safetensors`, MODEL);
    assert.equal(peft.family, "peft");
    assert.ok(peft.metadata["lora_adapter_metadata"]);
    for (const e of loraOnly) {
      // Tolerance: same f32 factors, the scale rebuilt from metadata; f32 rounding only.
      assertClose(
        entryDelta(byPath(peft.entries, e.path)).weight!.data,
        entryDelta(e).weight!.data,
        1e-6,
        1e-6,
        e.path,
      );
    }
    const { dropped } = await writeLoraFile(`${dir}/safe.safetensors`, entriesOf(), {
      format: "diffusers-safe",
    });
    assert.deepEqual(dropped, [`unet:${NORM} (a norm delta (w_norm / b_norm))`]);
    using safe = await SafetensorsReader.fromBytes(await Deno.readFile(`${dir}/safe.safetensors`));
    assert.ok(safe.keys.every((k) => !k.includes("norm")));
    assert.equal(safe.metadata["ss_network_module"], "networks.lora");
    await assert.rejects(
      writeLoraFile(`${dir}/bad.safetensors`, entriesOf(), { format: "peft" }),
      /norm delta.*PEFT form cannot hold/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Bad input

const qKeys = (down: HostTensor, up: HostTensor, name = kohyaName("unet", Q)) => ({
  [`${name}.lora_down.weight`]: down,
  [`${name}.lora_up.weight`]: up,
});

Deno.test("bad LoRA files get errors that name the key", async () => {
  const fail = async (bytes: Uint8Array, re: RegExp) => {
    await assert.rejects(read(bytes), (e: Error) => {
      assert.ok(e instanceof LoraFileError, `${e.name}: ${e.message}`);
      assert.match(e.message, re);
      assert.doesNotMatch(e.message, /\.$/);
      return true;
    });
  };
  // Unknown and unmatched keys are listed; lenient turns them into a warning that lists them.
  const stray = serializeSafetensors({
    ...qKeys(qDown, qUp),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.weird": rand([1]),
    "lora_unet_not_a_module.lora_down.weight": rand([1, 2]),
  });
  await fail(
    stray,
    /2 key\(s\).*"lora_unet_down_blocks_0.*\.weird", "lora_unet_not_a_module\.lora_down\.weight"/,
  );
  const warnings: string[] = [];
  const lenient = await read(stray, { lenient: true, onWarning: (m: string) => warnings.push(m) });
  assert.equal(lenient.entries.length, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /Skipped 2 key\(s\).*not_a_module/);
  // Shape that does not match its module.
  await fail(
    serializeSafetensors(qKeys(rand([2, 5]), qUp)),
    /"lora_unet_.*to_q\.lora_down\.weight" has shape \[2, 5\].*needs \[2, 6\]/,
  );
  // Down/up rank mismatch.
  await fail(
    serializeSafetensors(qKeys(qDown, rand([8, 3]))),
    /Rank mismatch.*lora_down\.weight" has rank 2.*lora_up\.weight" has rank 3/,
  );
  // NaN in a weight.
  const nan = { shape: [2, 6], data: qDown.data.map((v, i) => i === 4 ? NaN : v) };
  await fail(
    serializeSafetensors(qKeys(nan, qUp)),
    /to_q\.lora_down\.weight".*non-finite value \(NaN\) at element 4/,
  );
  // Other architectures.
  await fail(
    serializeSafetensors({
      ...qKeys(qDown, qUp),
      "lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha": rand([1]),
    }),
    /for SDXL/,
  );
  await fail(
    serializeSafetensors(qKeys(rand([2, 1024]), rand([8, 2]), kohyaName("unet", K2))),
    /Stable Diffusion 2\.x \(1024-wide/,
  );
  await fail(
    serializeSafetensors(qKeys(qDown, qUp), { ss_base_model_version: "sd_v2" }),
    /Stable Diffusion 2\.x/,
  );
  // Half a module, and tensors of two kinds in one module.
  await fail(
    serializeSafetensors({ [`${kohyaName("unet", Q)}.lora_down.weight`]: qDown }),
    /lacks ".*to_q\.lora_up\.weight"/,
  );
  await fail(
    serializeSafetensors({ ...qKeys(qDown, qUp), [`${kohyaName("unet", Q)}.hada_w1_a`]: qUp }),
    /several kinds/,
  );
});

Deno.test("a truncated file and an output folder that does not exist fail with nothing written", async () => {
  const dir = await tempDir();
  try {
    const good = `${dir}/good.safetensors`;
    await writeLoraFile(good, entriesOf());
    const bytes = await Deno.readFile(good);
    await Deno.writeFile(`${dir}/cut.safetensors`, bytes.slice(0, bytes.byteLength - 10));
    await assert.rejects(readLoraFile(`${dir}/cut.safetensors`, MODEL), /cut\.safetensors/);
    await assert.rejects(
      writeLoraFile(`${dir}/missing/out.safetensors`, entriesOf()),
      (e: Error) =>
        e instanceof LoraFileError && /folder ".*missing" does not exist/.test(e.message),
    );
    // A bad entry fails before anything is written, and the existing file is untouched.
    const broken: LoraEntry = {
      ...entriesOf()[0]!,
      down: { shape: [2, 6], data: new Float32Array(3) },
    };
    await assert.rejects(writeLoraFile(good, [broken]), LoraFileError);
    assert.deepEqual(await Deno.readFile(good), bytes);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["cut.safetensors", "good.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
