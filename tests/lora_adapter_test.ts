// LoRA / LoCon / norm adapters attached to tiny models: identity at init, rank-0 blocks, merge and
// unmerge, gradients, finite differences, dropouts, stacked composition.
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  backward,
  Conv2d,
  dispatchCount,
  Generator,
  getDevice,
  GroupNorm,
  groupNormRef,
  LayerNorm,
  layerNormRef,
  Linear,
  loraConv2dRef,
  randn,
  scope,
  sum,
  type Tensor,
  tensor,
  UNet2DConditionModel,
} from "../mod.ts";
import {
  applyLoras,
  type LoraEntry,
  LoraModule,
  LoraNetwork,
  makePlan,
  mergeLoras,
  NormAdapter,
  unmergeLoras,
} from "../src/lora/mod.ts";
import { assertClose, checkOp, maxAbs, randomData } from "./_helpers.ts";
import { writeLoraFile } from "../src/lora/formats/write_fs.ts";
import { readLoraFile } from "../src/lora/formats/read_fs.ts";
import { modelShapes } from "../src/lora/formats/model_shapes.ts";
import { TINY_UNET } from "./_sd_fixture.ts";

await getDevice();

function tinyUnet(seed = 1): UNet2DConditionModel {
  return new UNet2DConditionModel(TINY_UNET, { generator: new Generator(seed) });
}

/** Fills every lora_up with seeded values, so adapters change outputs. */
function randomizeUps(net: LoraNetwork, seed: number, amp = 0.2): void {
  net.adapters.forEach(({ adapter }, i) => {
    for (const name of ["lora_up", "w_norm", "b_norm"]) {
      if (!adapter.namedParameters().some(([n]) => n === name)) continue;
      const p = adapter.param(name);
      p.assign(randn(p.shape, { generator: new Generator(seed + i), std: amp }));
    }
  });
}

async function unetOut(unet: UNet2DConditionModel): Promise<Float32Array> {
  return await scope(async () => {
    const g = new Generator(5);
    const x = randn([1, 4, 8, 8], { generator: g });
    const ctx = randn([1, 3, 32], { generator: g });
    return await unet.forward(x, 321, ctx).toArray();
  });
}

Deno.test("a fresh LoRA network leaves the U-Net output bit-identical (up starts at zero)", async () => {
  using unet = tinyUnet();
  const before = await unetOut(unet);
  using net = LoraNetwork.fromPlan(
    { unet },
    makePlan(unet.config, null, { convRank: 2, norms: true }),
  );
  ok(net.adapters.length > 0);
  deepEqual(await unetOut(unet), before);
});

Deno.test("rank-0 blocks leave their outputs bit-identical to the base", async () => {
  using unet = tinyUnet();
  type Block = { forward(x: Tensor, temb: Tensor, ctx: Tensor): { h: Tensor } };
  // Both tiny down blocks take 32 channels in (down_blocks.1 widens 32 -> 64).
  const blockOut = (path: "down_blocks.0" | "down_blocks.1") =>
    scope(async () => {
      const g = new Generator(9);
      const temb = unet.timeEmbedding(100, 1);
      const ctx = randn([1, 3, 32], { generator: g });
      const x = randn([1, 32, 8, 8], { generator: g });
      return await (unet.getChild(path) as unknown as Block).forward(x, temb, ctx).h.toArray();
    });
  const base0 = await blockOut("down_blocks.0"), base1 = await blockOut("down_blocks.1");
  const plan = makePlan(unet.config, null, { convRank: 2, norms: true, blockRanks: { in1: 0 } });
  ok(plan.entries.every((e) => e.block !== "in1"));
  ok(plan.entries.some((e) => e.block === "in0"));
  using net = LoraNetwork.fromPlan({ unet }, plan);
  randomizeUps(net, 40);
  deepEqual(await blockOut("down_blocks.1"), base1, "in1 has rank 0");
  const changed = await blockOut("down_blocks.0");
  ok(maxAbs(changed.map((v, i) => v - base0[i]!)) > 1e-3, "in0 has adapters that act");
});

Deno.test("merged and unmerged outputs agree, and unmerge restores the base weights", async () => {
  using unet = tinyUnet();
  const plan = makePlan(unet.config, null, {
    rank: 3,
    alpha: 2,
    convRank: 2,
    convAlpha: 1,
    norms: true,
  });
  const net = LoraNetwork.fromPlan({ unet }, plan);
  randomizeUps(net, 7);
  const unmerged = await unetOut(unet);
  const entries = await net.entries();
  net.dispose();
  const base = new Map<string, Float32Array>();
  for (const [k, t] of unet.stateDict()) base.set(k, await t.toArray());
  const deltas = await mergeLoras({ unet }, [{ entries, multiplier: 1 }]);
  const merged = await unetOut(unet);
  // Merged: one f32 rounding of W + dW per weight; unmerged: two f32 products summed. Each output
  // of a K-term dot product differs by about sqrt(K) * 2^-24 * |x||W| (K <= 576 here), carried
  // through ~20 layers with norms that keep activations O(1): 1e-4 of the output scale bounds it
  // with a wide margin while any wrong scale or transposed delta (O(0.1) changes) fails.
  assertClose(merged, unmerged, 1e-4 * maxAbs(unmerged), 0, "merged vs unmerged");
  await unmergeLoras({ unet }, deltas);
  for (const [k, t] of unet.stateDict()) {
    const w0 = base.get(k)!, w = await t.toArray();
    // (W + d) - d in f32: two roundings, each at most 2^-24 of |W + d| <= |W| + |d|.
    const d = deltas.find((x) => k === `${x.path}.weight`)?.weight?.data ??
      deltas.find((x) => k === `${x.path}.bias`)?.bias?.data;
    const tol = Array.from(w0, (v, i) => 2 * 2 ** -24 * (Math.abs(v) + Math.abs(d?.[i] ?? 0)));
    for (let i = 0; i < w.length; i++) {
      if (Math.abs(w[i]! - w0[i]!) > tol[i]!) {
        throw new Error(`${k}[${i}] is ${w[i]} after unmerge, was ${w0[i]}`);
      }
    }
  }
});

Deno.test("gradients reach the adapter weights only", async () => {
  using unet = tinyUnet();
  using net = LoraNetwork.fromPlan(
    { unet },
    makePlan(unet.config, null, { convRank: 2, norms: true }),
  );
  randomizeUps(net, 3);
  scope(() => {
    const g = new Generator(2);
    const y = unet.forward(
      randn([1, 4, 8, 8], { generator: g }),
      50,
      randn([1, 3, 32], { generator: g }),
    );
    backward(sum(y));
  });
  for (const [k, p] of unet.namedParameters()) {
    equal(p.grad, null, `base parameter ${k} got a gradient`);
  }
  const names = net.namedParameters();
  equal(names.length, net.trainableParameters().length);
  for (const [k, p] of names) {
    ok(p.grad, `adapter parameter ${k} got no gradient`);
    ok(maxAbs(await p.grad.toArray()) > 0, `adapter parameter ${k} got a zero gradient`);
  }
  for (const p of net.parameters()) p.zeroGrad();
});

Deno.test("a stride-2 3x3 LoCon adapter matches the reference and finite differences", () => {
  const shape = { x: [2, 3, 7, 6], w: [4, 3, 3, 3], d: [2, 3, 3, 3], u: [4, 2, 1, 1], b: [4] };
  return checkOp({
    shapes: [shape.x, shape.w, shape.d, shape.u, shape.b],
    gpu: (x, w, d, u, b) => {
      const conv = new Conv2d(3, 4, 3, { stride: 2, padding: 1 }).freeze();
      const lora = new LoraModule(conv, 2, 3, { multiplier: 0.5 }).attach();
      conv.param("weight").assign(w!);
      conv.param("bias").assign(b!);
      lora.param("lora_down").assign(d!);
      lora.param("lora_up").assign(u!);
      return conv.forward(x!);
    },
    ref: (x, w, d, u, b) =>
      loraConv2dRef(x, shape.x, w!, shape.w, b!, d!, shape.d, u!, shape.u, 0.5 * 3 / 2, 2, 1),
    grads: [true, false, true, true, false],
  });
});

Deno.test("a GroupNorm adapter matches the reference and finite differences", () => {
  const xs = [2, 4, 3, 5];
  return checkOp({
    shapes: [xs, [4], [4], [4], [4]],
    gpu: (x, w, b, dw, db) => {
      const gn = new GroupNorm(2, 4).freeze();
      const a = new NormAdapter(gn, { multiplier: 0.7 }).attach();
      gn.param("weight").assign(w!);
      gn.param("bias").assign(b!);
      a.param("w_norm").assign(dw!);
      a.param("b_norm").assign(db!);
      return gn.forward(x!);
    },
    ref: (x, w, b, dw, db) =>
      groupNormRef(
        x,
        xs,
        2,
        w!.map((v, i) => v + 0.7 * dw![i]!),
        b!.map((v, i) => v + 0.7 * db![i]!),
        1e-5,
      ),
    grads: [true, false, false, true, true],
  });
});

Deno.test("a LayerNorm adapter matches the reference and finite differences", () =>
  checkOp({
    shapes: [[3, 5, 6], [6], [6], [6], [6]],
    gpu: (x, w, b, dw, db) => {
      const ln = new LayerNorm(6).freeze();
      const a = new NormAdapter(ln).attach();
      ln.param("weight").assign(w!);
      ln.param("bias").assign(b!);
      a.param("w_norm").assign(dw!);
      a.param("b_norm").assign(db!);
      return ln.forward(x!);
    },
    ref: (x, w, b, dw, db) =>
      layerNormRef(x, 6, w!.map((v, i) => v + dw![i]!), b!.map((v, i) => v + db![i]!), 1e-5),
    grads: [true, false, false, true, true],
  }));

Deno.test("a Linear LoRA adapter starts kaiming-uniform down and zero up, with scale alpha / rank", async () => {
  using fc = new Linear(64, 8).freeze();
  using lora = new LoraModule(fc, 4, 2, { generator: new Generator(3) });
  equal(lora.scale, 0.5);
  const down = await lora.param("lora_down").value.toArray();
  const bound = 1 / Math.sqrt(64); // kaiming_uniform(a = sqrt 5): sqrt(6 / ((1 + 5) fan_in))
  ok(maxAbs(down) <= bound && maxAbs(down) > 0.8 * bound);
  deepEqual([...(await lora.param("lora_up").value.toArray())], new Array(32).fill(0));
  deepEqual(lora.param("lora_down").shape, [4, 64]);
  ok(lora.param("lora_down").trainable && !fc.param("weight").trainable);
});

Deno.test("dropouts act in training only, seeded; module dropout skips the adapter", async () => {
  using fc = new Linear(6, 5).freeze();
  const x = randn([3, 4, 6], { generator: new Generator(1) });
  const run = async (
    opts: { dropout?: number; rankDropout?: number; moduleDropout?: number },
    train: boolean,
  ) => {
    using lora = new LoraModule(fc, 4, 4, { ...opts, generator: new Generator(11) }).attach();
    lora.param("lora_up").assign(randn([5, 4], { generator: new Generator(2) }));
    lora.train(train);
    const y = await fc.forward(x).toArray();
    lora.detach();
    return y;
  };
  const plain = await run({}, true);
  const base = await fc.forward(x).toArray();
  ok(maxAbs(plain.map((v, i) => v - base[i]!)) > 1e-3);
  deepEqual(await run({ dropout: 0.5, rankDropout: 0.5 }, false), plain, "eval ignores dropout");
  const d1 = await run({ dropout: 0.5 }, true), d2 = await run({ dropout: 0.5 }, true);
  deepEqual(d1, d2, "same seed, same mask");
  ok(maxAbs(d1.map((v, i) => v - plain[i]!)) > 1e-3, "dropout changes the output");
  const r = await run({ rankDropout: 0.5 }, true);
  ok(maxAbs(r.map((v, i) => v - plain[i]!)) > 1e-3, "rank dropout changes the output");
  deepEqual(await run({ moduleDropout: 0.999999 }, true), base, "module dropout skips");
  x.dispose();
});

Deno.test("rank dropout masks whole rank channels per sample, scaled by 1 / (1 - p)", async () => {
  // With up = identity-like [5, 4] and a known down, each sample's delta must equal the delta with
  // a subset of rank channels kept and scaled by 2 (p = 0.5).
  using fc = new Linear(4, 4, { bias: false }).freeze();
  fc.param("weight").assign(randn([4, 4], { std: 0 }));
  using lora = new LoraModule(fc, 4, 4, { rankDropout: 0.5, generator: new Generator(4) }).attach();
  const eye = new Float32Array(16).map((_, i) => (i % 5 === 0 ? 1 : 0));
  lora.param("lora_down").assign(tensor(eye, [4, 4]));
  lora.param("lora_up").assign(tensor(eye, [4, 4]));
  const xData = new Float32Array(2 * 3 * 4).fill(1);
  const x = tensor(xData, [2, 3, 4]);
  const y = await fc.forward(x).toArray();
  x.dispose();
  for (let b = 0; b < 2; b++) {
    for (let c = 0; c < 4; c++) {
      const v = y[b * 12 + c]!;
      ok(v === 0 || v === 2, `sample ${b} channel ${c} is ${v}, not 0 or 2`);
      for (let t = 1; t < 3; t++) {
        equal(y[b * 12 + t * 4 + c], v, "one mask per sample, all tokens");
      }
    }
  }
});

function entry(path: string, down: number[], up: number[], r: number, alpha?: number): LoraEntry {
  const n = down.length / r, out = up.length / r;
  const e: LoraEntry = {
    component: "unet",
    path,
    kind: "lora",
    tensors: {},
    down: { shape: [r, n], data: Float32Array.from(randomData(r * n, down[0]!)) },
    up: { shape: [out, r], data: Float32Array.from(randomData(out * r, up[0]!)) },
  };
  if (alpha !== undefined) e.alpha = alpha;
  return e;
}

Deno.test("applyLoras stacks several LoRAs unmerged, equal to merging them, and leaves the base untouched", async () => {
  using unet = tinyUnet();
  const before = await unetOut(unet);
  const q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
  const a = [entry(q, new Array(2 * 32).fill(1), new Array(32 * 2).fill(2), 2, 1)];
  const b = [entry(q, new Array(3 * 32).fill(3), new Array(32 * 3).fill(4), 3)];
  const sources = [{ entries: a, multiplier: 0.8 }, { entries: b, multiplier: -0.5 }];
  const lora = await applyLoras({ unet }, sources);
  const unmerged = await unetOut(unet);
  lora.dispose();
  deepEqual(await unetOut(unet), before, "dispose restores the plain model");
  ok(maxAbs(unmerged.map((v, i) => v - before[i]!)) > 1e-3);
  const copies = await applyLoras({ unet }, sources, { mode: "copy" });
  const copied = await unetOut(unet);
  copies.dispose();
  const deltas = await mergeLoras({ unet }, sources);
  const merged = await unetOut(unet);
  await unmergeLoras({ unet }, deltas);
  // A weight copy is the merged weight, computed by the same f32 sum: identical outputs.
  deepEqual(copied, merged, "weight-copy mode equals the merged model");
  // Same reasoning as the merge test above: f32 rounding of two routes through the network.
  assertClose(merged, unmerged, 1e-4 * maxAbs(unmerged), 0, "stacked vs merged");
});

Deno.test("fromEntries checks every entry before attaching and names the problem", () => {
  using unet = tinyUnet();
  const q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
  const bad = entry(q, new Array(2 * 32).fill(1), new Array(32 * 2).fill(2), 2, 1);
  bad.up!.data[5] = NaN;
  throws(() => LoraNetwork.fromEntries({ unet }, [bad]), /lora_up holds NaN at index 5/);
  equal((unet.getChild(q) as Linear).adapter, null);
  const wrong = entry(q, new Array(2 * 16).fill(1), new Array(32 * 2).fill(2), 2, 1);
  throws(
    () => LoraNetwork.fromEntries({ unet }, [wrong]),
    /lora_down is \[2, 16\] but this module needs \[2, 32\]/,
  );
  const missing = entry("down_blocks.9.nothing", [1, 1], [1, 1], 1);
  throws(
    () => LoraNetwork.fromEntries({ unet }, [missing]),
    /no Linear, Conv2d or norm at "down_blocks.9.nothing"/,
  );
});

Deno.test("a network exports its adapters as entries (and a kohya file) that load back to the same output", async () => {
  using unet = tinyUnet();
  const net = LoraNetwork.fromPlan(
    { unet },
    makePlan(unet.config, null, { convRank: 2, norms: true }),
  );
  randomizeUps(net, 21);
  const y1 = await unetOut(unet);
  const entries = await net.entries();
  net.dispose();
  ok(entries.some((e) => e.kind === "norm") && entries.some((e) => e.down?.shape.length === 4));
  {
    using _again = LoraNetwork.fromEntries({ unet }, entries);
    deepEqual(await unetOut(unet), y1);
  }
  // through a kohya file (B's writer and reader): f32 tensors round-trip exactly
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await writeLoraFile(path, entries);
    const read = await readLoraFile(path, modelShapes({ unet }));
    equal(read.entries.length, entries.length);
    using _fromFile = LoraNetwork.fromEntries({ unet }, read.entries);
    deepEqual(await unetOut(unet), y1);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("a LoCon adapter splits input channels like its conv when the unfolded input is too big", async () => {
  using conv = new Conv2d(6, 4, 3, { padding: 1, stride: 2, generator: new Generator(1) })
    .freeze();
  using lora = new LoraModule(conv, 2, 1, { generator: new Generator(2) }).attach();
  lora.param("lora_up").assign(randn([4, 2, 1, 1], { generator: new Generator(3) }));
  const xs = [2, 6, 5, 7];
  const xd = Float32Array.from(randomData(2 * 6 * 5 * 7, 4));
  const x = tensor(xd, xs);
  let d0 = dispatchCount();
  const whole = await conv.forward(x).toArray();
  const wholeDispatches = dispatchCount() - d0;
  // one input channel unfolds to B k k Ho Wo = 2 * 9 * 3 * 4 f32 = 864 bytes: chunks of 2 channels
  conv.maxUnfoldBytes = 864 * 2;
  d0 = dispatchCount();
  const split = await conv.forward(x).toArray();
  ok(dispatchCount() - d0 > wholeDispatches + 4, "the split path ran (3 chunks each way)");
  x.dispose();
  const p = async (name: string) =>
    Float64Array.from(
      await (name === "w" ? conv.param("weight") : conv.param("bias")).value.toArray(),
    );
  const want = loraConv2dRef(
    xd,
    xs,
    await p("w"),
    [4, 6, 3, 3],
    await p("b"),
    Float64Array.from(await lora.param("lora_down").value.toArray()),
    [2, 6, 3, 3],
    Float64Array.from(await lora.param("lora_up").value.toArray()),
    [4, 2, 1, 1],
    0.5,
    2,
    1,
  );
  // f32 sums of at most 54 + 2 products, in another order when split: rounding of ~1e-6.
  assertClose(whole, want, 1e-5, 1e-4, "whole");
  assertClose(split, want, 1e-5, 1e-4, "split into channel chunks");
});
