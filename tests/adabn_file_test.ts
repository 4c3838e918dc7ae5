// AdaBN statistics in a LoRA file: they reload bit for bit, the kohya part of the file is
// unchanged when they are added, and a model with adapted statistics differs from its base only
// in those statistics.
import assert from "node:assert/strict";
import {
  AdaBN,
  type AdabnSnapshot,
  fileWithAdabnStatistics,
  manualSeed,
  noGrad,
  randn,
  readAdabnStatistics,
  SafetensorsFile,
  type Tensor,
  UNet2DConditionModel,
  writeSafetensors,
} from "../mod.ts";
import { writeLoraFile } from "../src/lora/formats/write_fs.ts";
import { readLora } from "../src/lora/formats/read.ts";
import { modelShapes } from "../src/lora/formats/model_shapes.ts";
import { SafetensorsReader } from "../src/nn/safetensors.ts";
import "./_helpers.ts";

const CONFIG = {
  blockOutChannels: [8, 16],
  layersPerBlock: 1,
  attentionHeads: 2,
  crossAttentionDim: 8,
  normNumGroups: 4,
  norm: "batch" as const,
};
const BANDS = [0, 500, 1000];

// Target batches: the U-Net's forward at per-sample timesteps (it sets AdaBN's band itself). The
// inputs are drawn once, so the exact estimate's two passes see the same data.
function targetBatches(unet: UNet2DConditionModel, seed: number): (() => Tensor)[] {
  manualSeed(seed);
  return [[100, 900], [600, 200]].map((t) => {
    const x = randn([2, 4, 8, 8]), ctx = randn([2, 3, 8]);
    return () => unet.forward(x, t, ctx);
  });
}

// Every state-dict entry's bytes (all readbacks in flight at once).
async function hostState(unet: UNet2DConditionModel): Promise<Map<string, Uint8Array>> {
  const entries = [...unet.stateDict()];
  const data = await Promise.all(entries.map(([, t]) => t.toArray()));
  return new Map(entries.map(([k], i) => [k, new Uint8Array(data[i]!.buffer)]));
}

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function assertSameSnapshot(got: AdabnSnapshot, want: AdabnSnapshot): void {
  assert.deepEqual(got.bands, want.bands);
  assert.deepEqual(got.layers.map((l) => l.path), want.layers.map((l) => l.path));
  for (const [i, layer] of want.layers.entries()) {
    for (const [b, s] of layer.bands.entries()) {
      const g = got.layers[i]!.bands[b]!;
      assert.equal(g.count, s.count, `${layer.path} band ${b} count`);
      assert.deepEqual(bytes(g.mean), bytes(s.mean), `${layer.path} band ${b} mean`);
      assert.deepEqual(bytes(g.variance), bytes(s.variance), `${layer.path} band ${b} variance`);
    }
  }
}

Deno.test("AdaBN statistics saved in a LoRA file reload bit for bit and leave the kohya part unchanged", async () => {
  const dir = await Deno.makeTempDir();
  const unet = (manualSeed(1), new UNet2DConditionModel(CONFIG));
  using adabn = AdaBN.attach(unet, { bands: BANDS });
  adabn.estimate(targetBatches(unet, 5));
  const snap = await adabn.snapshot();
  assert.equal(snap.mode, "before");
  assert.ok(snap.layers.length >= 5, "the tiny U-Net has several batch norms");
  assert.ok(snap.layers.every((l) => l.bands.every((s) => s.count > 0)), "a band saw no data");

  const loraPath = `${dir}/lora.safetensors`, outPath = `${dir}/lora_adabn.safetensors`;
  const name = "mid_block.attentions.0.proj_in";
  await writeLoraFile(loraPath, [{
    component: "unet",
    path: name,
    kind: "lora",
    alpha: 1,
    tensors: {},
    down: { shape: [2, 16], data: Float32Array.from({ length: 32 }, (_, i) => i / 7) },
    up: { shape: [16, 2], data: Float32Array.from({ length: 32 }, (_, i) => -i / 3) },
  }], { dtype: "F16", metadata: { networkDim: 2, networkAlpha: 1 } });
  {
    using lora = await SafetensorsFile.open(loraPath);
    const parts = await fileWithAdabnStatistics(lora, snap);
    await writeSafetensors(outPath, parts.tensors, parts.metadata);
  }
  using before = await SafetensorsFile.open(loraPath);
  using after = await SafetensorsFile.open(outPath);
  const kohya = (k: string) => k.startsWith("lora_unet_") || k.startsWith("lora_te_");
  assert.ok(before.keys.length > 0 && before.keys.every(kohya));
  assert.deepEqual(after.keys.filter(kohya).sort(), [...before.keys].sort());
  for (const k of before.keys) {
    assert.deepEqual(after.info(k), before.info(k), k);
    assert.deepEqual(await after.readRaw(k), await before.readRaw(k), k);
  }
  for (const [k, v] of Object.entries(before.metadata)) assert.equal(after.metadata[k], v, k);
  const extra = after.keys.filter((k) => !kohya(k));
  assert.ok(extra.length > 0 && extra.every((k) => /^adabn_band[01]\./.test(k)), extra[0]);
  assert.equal(JSON.parse(after.metadata["denoise_adabn"]!).variance, "population");
  // our own LoRA reader takes the file strictly (the statistics are not adapter keys): the same
  // entries as without them
  const entries = async (path: string) => {
    using r = await SafetensorsReader.fromBytes(await Deno.readFile(path));
    return (await readLora(r, modelShapes({ unet }))).entries.map((e) => e.path);
  };
  assert.deepEqual(await entries(outPath), await entries(loraPath));

  // Reload into a fresh AdaBN on a copy of the model: identical statistics and outputs.
  const loaded = await readAdabnStatistics(after);
  assert.ok(loaded);
  assertSameSnapshot(loaded, snap);
  assert.equal(await readAdabnStatistics(before), null);
  const copy = (manualSeed(2), new UNet2DConditionModel(CONFIG));
  copy.loadStateDict(unet.stateDict());
  using again = AdaBN.attach(copy, { bands: BANDS });
  again.load(loaded);
  assertSameSnapshot(await again.snapshot(), snap);
  const x = randn([2, 4, 8, 8]), ctx = randn([2, 3, 8]);
  unet.eval();
  copy.eval();
  const y1 = await noGrad(() => unet.forward(x, [50, 700], ctx)).toArray();
  const y2 = await noGrad(() => copy.forward(x, [50, 700], ctx)).toArray();
  assert.deepEqual(bytes(y2), bytes(y1));
  assert.throws(() => AdaBN.attach(copy), /already has a forward hook/);
  unet.dispose();
  copy.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("A model with adapted statistics differs from its base only in those statistics", async () => {
  const unet = (manualSeed(3), new UNet2DConditionModel(CONFIG));
  const base = await hostState(unet);
  // Attached with bands: the statistics live in AdaBN; the model's state stays bit-identical.
  {
    using banded = AdaBN.attach(unet, { bands: BANDS });
    banded.estimate(targetBatches(unet, 7));
    assert.deepEqual(await hostState(unet), base);
  }
  // One band, committed into the running buffers: only running_mean / running_var change.
  using adabn = AdaBN.attach(unet);
  adabn.estimate(targetBatches(unet, 7));
  adabn.commit();
  adabn.detach();
  const after = await hostState(unet);
  assert.deepEqual([...after.keys()], [...base.keys()]);
  const stats = new Set(
    adabn.layers.flatMap((p) => [`${p}.running_mean`, `${p}.running_var`]),
  );
  for (const [k, v] of after) {
    if (!stats.has(k)) assert.deepEqual(v, base.get(k), `${k} changed`);
  }
  for (const path of adabn.layers) {
    const s = adabn.statistics(path);
    const mean = after.get(`${path}.running_mean`)!, variance = after.get(`${path}.running_var`)!;
    assert.notDeepEqual(mean, base.get(`${path}.running_mean`), `${path} mean not adapted`);
    assert.deepEqual(mean, bytes(await s.mean.toArray()));
    assert.deepEqual(variance, bytes(await s.variance.toArray()));
  }
  unet.dispose();
});
