// Plans and block weights: kohya's SD 1.5 key names and shapes against a golden list written from
// kohya's naming rules, the module tree against real models, 25-lists, presets, bad input, and
// composition of two LoRAs as the sum of their weighted deltas.
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  CLIPTextModel,
  Conv2d,
  Generator,
  getDevice,
  GroupNorm,
  LayerNorm,
  Linear,
  SD15_CLIP_CONFIG,
  SD15_UNET_CONFIG,
  UNet2DConditionModel,
  type UNetConfig,
  unetConfig,
} from "../mod.ts";
import {
  composeDeltas,
  configShapes,
  type LoraEntry,
  makePlan,
  mergeLoras,
  parseBlockWeights,
  PlanError,
  textEncoderTree,
  unetTree,
} from "../src/lora/mod.ts";
import { modelShapes } from "../src/lora/formats/model_shapes.ts";
import { kohyaName } from "../src/lora/formats/names.ts";
import { assertClose, randomData } from "./_helpers.ts";
import { TINY_CLIP, TINY_UNET } from "./_sd_fixture.ts";

await getDevice();

// ---- golden SD 1.5 names, from kohya's rules (networks/lora.py) and SD 1.5's channel plan ----
const C = [320, 640, 1280, 1280];
type Golden = Map<string, { down: number[]; up: number[] }>;

function lin(g: Golden, name: string, out: number, inp: number, r: number): void {
  g.set(name, { down: [r, inp], up: [out, r] });
}
function conv(g: Golden, name: string, out: number, inp: number, k: number, r: number): void {
  g.set(name, { down: [r, inp, k, k], up: [out, r, 1, 1] });
}
function transformer(g: Golden, p: string, c: number, r: number): void {
  conv(g, `${p}_proj_in`, c, c, 1, r);
  conv(g, `${p}_proj_out`, c, c, 1, r);
  const b = `${p}_transformer_blocks_0`;
  for (const a of ["attn1", "attn2"]) {
    const ctx = a === "attn1" ? c : 768;
    lin(g, `${b}_${a}_to_q`, c, c, r);
    lin(g, `${b}_${a}_to_k`, c, ctx, r);
    lin(g, `${b}_${a}_to_v`, c, ctx, r);
    lin(g, `${b}_${a}_to_out_0`, c, c, r);
  }
  lin(g, `${b}_ff_net_0_proj`, 8 * c, c, r);
  lin(g, `${b}_ff_net_2`, c, 4 * c, r);
}
function resnet(g: Golden, p: string, cin: number, cout: number, r: number, cr: number): void {
  conv(g, `${p}_conv1`, cout, cin, 3, cr);
  conv(g, `${p}_conv2`, cout, cout, 3, cr);
  lin(g, `${p}_time_emb_proj`, cout, 1280, r);
  if (cin !== cout) conv(g, `${p}_conv_shortcut`, cout, cin, 1, r);
}
function goldenSd15(r: number, cr: number | null): Golden {
  const g: Golden = new Map();
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 2; j++) {
      transformer(g, `lora_unet_down_blocks_${i}_attentions_${j}`, C[i]!, r);
    }
  }
  transformer(g, "lora_unet_mid_block_attentions_0", 1280, r);
  const rev = [...C].reverse();
  for (let i = 1; i < 4; i++) {
    for (let j = 0; j < 3; j++) {
      transformer(g, `lora_unet_up_blocks_${i}_attentions_${j}`, rev[i]!, r);
    }
  }
  if (cr !== null) {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 2; j++) {
        const cin = j === 0 ? (i === 0 ? 320 : C[i - 1]!) : C[i]!;
        resnet(g, `lora_unet_down_blocks_${i}_resnets_${j}`, cin, C[i]!, r, cr);
      }
      if (i < 3) conv(g, `lora_unet_down_blocks_${i}_downsamplers_0_conv`, C[i]!, C[i]!, 3, cr);
    }
    resnet(g, "lora_unet_mid_block_resnets_0", 1280, 1280, r, cr);
    resnet(g, "lora_unet_mid_block_resnets_1", 1280, 1280, r, cr);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 3; j++) {
        const prev = i === 0 ? 1280 : rev[i - 1]!;
        const skip = j === 2 ? rev[Math.min(i + 1, 3)]! : rev[i]!;
        resnet(
          g,
          `lora_unet_up_blocks_${i}_resnets_${j}`,
          (j === 0 ? prev : rev[i]!) + skip,
          rev[i]!,
          r,
          cr,
        );
      }
      if (i < 3) conv(g, `lora_unet_up_blocks_${i}_upsamplers_0_conv`, rev[i]!, rev[i]!, 3, cr);
    }
  }
  for (let l = 0; l < 12; l++) {
    const p = `lora_te_text_model_encoder_layers_${l}`;
    for (const q of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      lin(g, `${p}_self_attn_${q}`, 768, 768, r);
    }
    lin(g, `${p}_mlp_fc1`, 3072, 768, r);
    lin(g, `${p}_mlp_fc2`, 768, 3072, r);
  }
  return g;
}

function planKeys(plan: ReturnType<typeof makePlan>): Golden {
  const g: Golden = new Map();
  for (const e of plan.entries) {
    const [out, inp, k] = [e.shape[0]!, e.shape[1]!, e.shape[2]];
    g.set(kohyaName(e.component, e.path), {
      down: k === undefined ? [e.rank, inp] : [e.rank, inp, k, k],
      up: k === undefined ? [out, e.rank] : [out, e.rank, 1, 1],
    });
  }
  return g;
}

function sorted(g: Golden): [string, { down: number[]; up: number[] }][] {
  return [...g].sort(([a], [b]) => a < b ? -1 : 1);
}

Deno.test("the SD 1.5 default plan gives kohya's 192 U-Net + 72 text-encoder keys and shapes", () => {
  const plan = makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { rank: 8, alpha: 4 });
  const golden = goldenSd15(8, null);
  equal([...golden.keys()].filter((k) => k.startsWith("lora_unet_")).length, 192);
  equal([...golden.keys()].filter((k) => k.startsWith("lora_te_")).length, 72);
  deepEqual(sorted(planKeys(plan)), sorted(golden));
  ok(plan.entries.every((e) => e.alpha === 4));
});

Deno.test("with a conv rank the SD 1.5 plan gives kohya's 278 U-Net keys and shapes", () => {
  const plan = makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { rank: 8, convRank: 4, convAlpha: 2 });
  const golden = goldenSd15(8, 4);
  equal([...golden.keys()].filter((k) => k.startsWith("lora_unet_")).length, 278);
  deepEqual(sorted(planKeys(plan)), sorted(golden));
  for (const e of plan.entries) {
    const k3 = e.shape.length === 4 && e.shape[2] === 3;
    equal(e.adapter, k3 ? "locon" : "lora", e.path);
    equal(e.alpha, k3 ? 2 : 1, e.path);
  }
  const down = plan.entries.find((e) => e.path === "down_blocks.1.downsamplers.0.conv")!;
  deepEqual([down.stride, down.padding], [2, 1]);
});

function layersOf(model: UNet2DConditionModel | CLIPTextModel): [string, string, number[]][] {
  const out: [string, string, number[]][] = [];
  for (const [path, m] of model.namedModules()) {
    const kind = m instanceof Linear
      ? "linear"
      : m instanceof Conv2d
      ? "conv"
      : m instanceof GroupNorm
      ? "group_norm"
      : m instanceof LayerNorm
      ? "layer_norm"
      : null;
    if (kind) out.push([path, kind, [...m.param("weight").shape]]);
  }
  return out;
}

Deno.test("the module tree computed from a config equals the layers of the built models", () => {
  const configs: Partial<UNetConfig>[] = [
    TINY_UNET,
    {
      ...TINY_UNET,
      blockOutChannels: [16, 32, 32],
      layersPerBlock: 2,
      transformerLayersPerBlock: 2,
    },
    { ...TINY_UNET, norm: "batch" },
  ];
  for (const c of configs) {
    using unet = new UNet2DConditionModel(c, { generator: new Generator(1) });
    const tree = unetTree(unet.config).map((m) => [m.path, m.kind, m.shape]);
    deepEqual(tree, layersOf(unet));
  }
  using te = new CLIPTextModel(TINY_CLIP, { generator: new Generator(1) });
  deepEqual(textEncoderTree(te.config).map((m) => [m.path, m.kind, m.shape]), layersOf(te));
  using unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
  const byPath = <T extends { path: string }>(xs: T[]) =>
    [...xs].sort((a, b) => a.path < b.path ? -1 : 1);
  deepEqual(
    byPath(configShapes(unet.config, te.config).modules),
    byPath(modelShapes({ unet, textEncoder: te }).modules),
    "the readers see the same modules (kinds, shapes, biases) from a config as from models",
  );
});

Deno.test("kohya's 25-entry lists map to block indices 1 + 3i + j, 12 and 13 + 3i + j", () => {
  const dims = new Array<number>(25).fill(4);
  dims[8] = 0; // down_blocks.2 layer 1
  dims[15] = 0; // up_blocks.0 layer 2 and its upsampler
  const alphas = Array.from({ length: 25 }, (_, i) => i);
  const plan = makePlan(SD15_UNET_CONFIG, null, {
    blockDims: dims,
    blockAlphas: alphas,
    convBlockDims: dims.map((d) => d / 2),
  });
  const paths = new Set(plan.entries.map((e) => e.path));
  ok(!paths.has("down_blocks.2.attentions.1.proj_in"));
  ok(!paths.has("down_blocks.2.resnets.1.conv1"));
  ok(
    paths.has("down_blocks.2.attentions.0.proj_in") &&
      paths.has("down_blocks.2.downsamplers.0.conv"),
  );
  ok(!paths.has("up_blocks.0.resnets.2.conv1") && !paths.has("up_blocks.0.upsamplers.0.conv"));
  ok(paths.has("up_blocks.0.resnets.1.conv1"));
  const at = (p: string) => plan.entries.find((e) => e.path === p)!;
  equal(at("down_blocks.0.attentions.1.proj_in").alpha, 2);
  equal(at("down_blocks.1.downsamplers.0.conv").alpha, 1); // conv alphas default to 1
  equal(at("down_blocks.1.downsamplers.0.conv").rank, 2);
  equal(at("mid_block.attentions.0.proj_out").alpha, 12);
  equal(at("up_blocks.3.attentions.2.proj_out").alpha, 24);
  equal(at("up_blocks.1.resnets.2.time_emb_proj").alpha, 18);
  ok(plan.entries.every((e) => e.rank > 0));
});

Deno.test("presets pick the paper's blocks, attention only, conv blocks only, or LyCORIS full", () => {
  const blocks = (preset: Parameters<typeof makePlan>[2]) =>
    new Set(
      makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, preset).entries.map((e) =>
        e.component === "unet" ? e.block : "te"
      ),
    );
  deepEqual(blocks({ preset: "upper" }), new Set(["in0", "out3", "te"]));
  deepEqual(blocks({ preset: "middle" }), new Set(["in1", "out2", "te"]));
  deepEqual(blocks({ preset: "lower" }), new Set(["in2", "out1", "te"]));
  const attn = makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { preset: "attn-only" }).entries;
  equal(attn.length, 16 * 8 + 12 * 4);
  ok(attn.every((e) => /(attn[12]\.to_|self_attn)/.test(e.path)));
  const convOnly = makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { preset: "conv-only" }).entries;
  equal(convOnly.length, 86);
  ok(convOnly.every((e) => e.holder === "resnet" || e.holder === "sampler"));
  const full = makePlan(SD15_UNET_CONFIG, SD15_CLIP_CONFIG, { preset: "full", rank: 8, alpha: 4 });
  const fp = full.entries.map((e) => e.path);
  for (const p of ["conv_in", "conv_out", "time_embedding.linear_1", "time_embedding.linear_2"]) {
    ok(fp.includes(p), p);
  }
  equal(full.entries.length, 278 + 4 + 72);
  equal(full.entries.find((e) => e.path === "conv_in")!.rank, 8); // conv rank defaults to rank
  const norms = makePlan(SD15_UNET_CONFIG, null, { norms: true }).entries.filter((e) =>
    e.adapter === "norm"
  );
  equal(norms.length, 16 * 4); // Transformer2D norm + norm1..3, resnets not targeted
  const some = makePlan(SD15_UNET_CONFIG, null, { blockRanks: { in0: 0, mid: 16 } }).entries;
  ok(!some.some((e) => e.block === "in0"));
  ok(some.filter((e) => e.block === "mid").every((e) => e.rank === 16));
});

Deno.test("plans on a tiny U-Net take their indices from its config", () => {
  const c = unetConfig(TINY_UNET);
  const plan = makePlan(c, null, { convRank: 2, blockDims: new Array<number>(25).fill(3) });
  const idx = new Map(plan.entries.map((e) => [e.path, e.kohyaIndex]));
  equal(idx.get("down_blocks.0.attentions.0.proj_in"), 1);
  equal(idx.get("down_blocks.0.downsamplers.0.conv"), 3);
  equal(idx.get("down_blocks.1.resnets.0.conv1"), 4);
  equal(idx.get("up_blocks.0.resnets.1.conv1"), 14);
  equal(idx.get("up_blocks.0.upsamplers.0.conv"), 15);
  equal(idx.get("up_blocks.1.attentions.1.proj_out"), 17);
  deepEqual(
    makePlan(c, null, { preset: "upper" }).entries.map((e) => e.block).filter((b, i, a) =>
      a.indexOf(b) === i
    ),
    ["in0", "out1"],
  );
});

Deno.test("bad plan options are errors that say what is wrong", () => {
  const c = unetConfig(TINY_UNET);
  throws(
    () => makePlan(c, null, { blockDims: new Array<number>(24).fill(4) }),
    (e: Error) =>
      e instanceof PlanError &&
      /blockDims has 24 entries; kohya's block lists have 25/.test(e.message),
  );
  throws(() => makePlan(c, null, { rank: -1 }), /The rank must be a whole number >= 0, got -1/);
  throws(
    () => makePlan(c, null, { convRank: 2.5 }),
    /conv rank must be a whole number >= 0, got 2.5/,
  );
  throws(
    () => makePlan(c, null, { blockRanks: { in7: 4 } }),
    /Unknown block "in7"; this U-Net has in0, in1, mid, out0, out1/,
  );
  throws(() => makePlan(c, null, { alpha: NaN }), /alpha must be a finite number >= 0, got NaN/);
  throws(
    () => makePlan(c, null, { preset: "lower" }),
    /"lower" preset needs in2 and out-1, but this U-Net has only 2 levels|"lower" preset needs in2/,
  );
  const wide = unetConfig({ ...TINY_UNET, blockOutChannels: [8, 8, 8, 8, 8] });
  throws(
    () => makePlan(wide, null, { convBlockDims: new Array<number>(25).fill(1) }),
    /this model has 5 levels of 1/,
  );
  throws(() => makePlan(c, null, { preset: "everything" as "all" }), /Unknown preset "everything"/);
});

Deno.test("block weights: A1111 presets, 17 and 26 lists, our block names, and bad specs", () => {
  const outd = parseBlockWeights("OUTD").lbw26;
  const on = (names: string[]) =>
    [
      "BASE",
      ...Array.from({ length: 12 }, (_, i) => `IN${String(i).padStart(2, "0")}`),
      "M00",
      ...Array.from({ length: 12 }, (_, i) => `OUT${String(i).padStart(2, "0")}`),
    ]
      .map((n) => names.includes(n) ? 1 : 0);
  deepEqual(outd, on(["BASE", "OUT03", "OUT04", "OUT05", "OUT06"]));
  deepEqual(parseBlockWeights("INS").lbw26, on(["BASE", "IN01", "IN02", "IN04"]));
  deepEqual(parseBlockWeights("all0.5").lbw26.filter((v) => v === 0.5).length, 17);
  const l26 = Array.from({ length: 26 }, (_, i) => i / 10);
  deepEqual(parseBlockWeights(l26.join(",")).lbw26, l26);
  const w = parseBlockWeights("te=0,OUT05=0.5,in1=2");
  equal(w.lbw26[0], 0);
  equal(w.lbw26[19], 0.5);
  deepEqual(w.paper, { in1: 2 });
  throws(() => parseBlockWeights("1,0,1"), /have 3 values; give 17 or 26 numbers/);
  throws(() => parseBlockWeights("foo=1"), /Unknown block "foo"/);
  throws(
    () => parseBlockWeights(new Array(17).fill("x").join(",")),
    /value 1 is "x", not a finite number/,
  );
});

function loraEntry(
  path: string,
  out: number,
  inp: number,
  r: number,
  seed: number,
  alpha?: number,
): LoraEntry {
  const e: LoraEntry = {
    component: "unet",
    path,
    kind: "lora",
    tensors: {},
    down: { shape: [r, inp], data: Float32Array.from(randomData(r * inp, seed)) },
    up: { shape: [out, r], data: Float32Array.from(randomData(out * r, seed + 1)) },
  };
  if (alpha !== undefined) e.alpha = alpha;
  return e;
}

function delta(e: LoraEntry): Float64Array {
  const [r, n] = e.down!.shape as [number, number], out = e.up!.shape[0]!;
  const s = e.alpha === undefined ? 1 : e.alpha / r;
  const d = new Float64Array(out * n);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < n; i++) {
      for (let q = 0; q < r; q++) {
        d[o * n + i]! += s * e.up!.data[o * r + q]! * e.down!.data[q * n + i]!;
      }
    }
  }
  return d;
}

Deno.test("composing two LoRAs gives the sum of their deltas with multipliers and block weights", async () => {
  using unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
  const q0 = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"; // in0, kohya 1
  const q1 = "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k"; // out1, kohya 17 = OUT04
  const a = [loraEntry(q0, 32, 32, 2, 10, 1), loraEntry(q1, 32, 32, 2, 20, 4)];
  const b = [loraEntry(q0, 32, 32, 3, 30), loraEntry(q1, 32, 32, 1, 40, 0.5)];
  const sources = [
    { entries: a, multiplier: 0.8, blockWeights: parseBlockWeights("in0=0.5") },
    { entries: b, unetMultiplier: -1.5, blockWeights: parseBlockWeights("OUT04=0.25") },
  ];
  const want = new Map([
    [q0, delta(a[0]!).map((v, i) => 0.8 * 0.5 * v - 1.5 * 1 * delta(b[0]!)[i]!)],
    [q1, delta(a[1]!).map((v, i) => 0.8 * 1 * v - 1.5 * 0.25 * delta(b[1]!)[i]!)],
  ]);
  const got = await composeDeltas({ unet }, sources);
  equal(got.length, 2);
  // f32 products of rank <= 3: a few roundings of O(1) terms.
  for (const d of got) assertClose(d.weight!.data, want.get(d.path)!, 1e-6, 1e-5, d.path);
  const before = await (unet.getChild(q1) as Linear).param("weight").value.toArray();
  await mergeLoras({ unet }, sources);
  const after = await (unet.getChild(q1) as Linear).param("weight").value.toArray();
  // W + dW rounded to f32 once: |W| <= 1 here, so 2^-24-scale errors sit well inside 1e-6.
  assertClose(after.map((v, i) => v - before[i]!), want.get(q1)!, 1e-6, 1e-5, "merged weight");
  const nan = loraEntry(q1, 32, 32, 1, 60);
  nan.down!.data[3] = NaN;
  await rejects(composeDeltas({ unet }, [{ entries: [nan] }]), /down holds NaN at index 3/);
  const stray = loraEntry("up_blocks.7.attentions.0.proj_in", 32, 32, 1, 70);
  await rejects(
    composeDeltas({ unet }, [{ entries: [stray] }]),
    /1 LoRA modules are not in the given models \(unet:up_blocks\.7/,
  );
  const wrong = [loraEntry(q1, 64, 32, 1, 50)];
  await rejects(
    composeDeltas({ unet }, [{ entries: wrong }]),
    /\[64, 32\] does not fit .* \[32, 32\]/,
  );
});
