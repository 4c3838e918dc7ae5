// The trainer's kohya options on the tiny model: the text encoder's own rate (0 freezes its
// adapters), a block weight (mid_lr_weight 0 leaves the mid block without adapters), network dropouts handed to
// the adapters, and clip skip (the hidden state N layers from the end, final LayerNorm applied).
import { equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { CLIPTextModel, getDevice, memoryStats } from "../mod.ts";
import { LoraModule } from "../src/lora/lora_module.ts";
import { train, type TrainOptions, type TrainResult } from "../src/train/trainer_fs.ts";
import { ConfigError } from "../src/train/errors.ts";
import { TINY_CLIP } from "./_sd_fixture.ts";
import { assertClose } from "./_helpers.ts";
import { writeTinyModel } from "./_cli_fixtures.ts";

await getDevice();

Deno.test("clipSkip N conditions on the hidden state N layers from the end", async () => {
  const two = new CLIPTextModel(TINY_CLIP);
  const one = new CLIPTextModel({ ...TINY_CLIP, layers: 1 });
  one.loadStateDict(two.stateDict(), { strict: false }); // layer 0, embeddings, final norm
  const ids = [0, 2, 3, 1, 1, 1, 1, 1];
  const skipped = await two.forward(ids, [1, 8], { clipSkip: 2 }).toArray();
  const short = await one.forward(ids, [1, 8]).toArray();
  assertClose(skipped, short, 0, 0, "clip skip 2 vs the first layer alone"); // same kernels
  const full = await two.forward(ids, [1, 8]).toArray();
  ok(full.some((v, i) => v !== skipped[i]), "clip skip 1 uses every layer");
  for (const m of [one, two]) m.dispose();
});

async function fixture(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "train_opts_" });
  await writeTinyModel(join(root, "model"), 11);
  const dir = join(root, "train", "2_cat");
  await Deno.mkdir(dir, { recursive: true });
  for (const i of [0, 1]) {
    const px = new Uint8Array(16 * 16 * 3).map((_, k) => (k * 29 + i * 77) % 256);
    await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(
      join(dir, `${i}.png`),
    );
    await Deno.writeTextFile(join(dir, `${i}.caption`), i ? "a cat" : "a photo of cat");
  }
  return root;
}

/** Whether any lora_up weight moved from its zero start, per group of adapters. */
async function moved(r: TrainResult, pick: (component: string, path: string) => boolean) {
  let any = false;
  for (const a of r.network.adapters) {
    if (!(a.adapter instanceof LoraModule) || !pick(a.component, a.path)) continue;
    const up = await a.adapter.param("lora_up").value.toArray();
    any ||= up.some((v) => v !== 0);
  }
  return any;
}

function dispose(r: TrainResult): void {
  r.network.dispose();
  for (const m of [r.models.unet, r.models.vae, r.models.textEncoder]) m.dispose();
}

Deno.test("train(): text-encoder rate, mid_lr_weight, dropouts, clip skip, f16 base reach the run", async () => {
  const root = await fixture();
  const base: TrainOptions = {
    pretrainedModelNameOrPath: join(root, "model"),
    trainDataDir: join(root, "train"),
    outputDir: join(root, "out"),
    resolution: 16,
    networkDim: 4,
    learningRate: 1e-2,
    maxTrainSteps: 2,
    cacheLatents: true,
    weightDType: "f32",
  };
  const textEncoder = (c: string) => c === "text_encoder";
  const layer = (n: number) => (c: string, p: string) =>
    c === "text_encoder" && p.includes(`layers.${n}.`);
  const mid = (c: string, p: string) => c === "unet" && p.startsWith("mid_block.");
  const upBlocks = (c: string, p: string) => c === "unet" && p.startsWith("up_blocks.");
  try {
    const frozenTE = await train({ ...base, outputName: "te0", textEncoderLr: 0 });
    ok(
      !(await moved(frozenTE, textEncoder)),
      "text_encoder_lr 0 keeps the text encoder's adapters",
    );
    ok(await moved(frozenTE, mid), "the mid block trains at the default rate");
    dispose(frozenTE);

    const r = await train({
      ...base,
      outputName: "opts",
      midLrWeight: 0,
      networkDropout: 0.1,
      rankDropout: 0.05,
      clipSkip: 2,
      weightDType: "auto", // f16 base weights where the adapter has shader-f16
    });
    ok(await moved(r, layer(0)), "the text encoder trains at the default rate");
    ok(!(await moved(r, layer(1))), "clip skip 2 leaves the last CLIP layer out of the graph");
    ok(
      !r.network.adapters.some((a) => mid(a.component, a.path)),
      "mid_lr_weight 0 creates no adapter in the mid block (as kohya)",
    );
    ok(await moved(r, upBlocks), "the up blocks still train");
    const lora = r.network.adapters.map((a) => a.adapter).filter((a) => a instanceof LoraModule);
    ok(lora.length > 0 && lora.every((a) => a.dropout === 0.1 && a.rankDropout === 0.05));
    equal(r.steps, 2);
    const f16 = (await getDevice()).f16;
    const proj = r.models.unet.namedParameters().filter(([n]) => n.endsWith("proj_in.weight"));
    ok(proj.length > 0, "the U-Net has proj_in weights");
    for (const [n, p] of proj) {
      equal(p.value.dtype, f16 ? "f16" : "f32", `${n}: f16 where possible`);
    }
    ok(r.network.trainableParameters().every((p) => p.value.dtype === "f32"), "adapters stay f32");
    dispose(r);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train(): a run that fails after loading frees the models and adapters", async () => {
  const root = await fixture();
  const base: TrainOptions = {
    pretrainedModelNameOrPath: join(root, "model"),
    trainDataDir: join(root, "train"),
    outputDir: join(root, "out"),
    resolution: 16,
    maxTrainSteps: 1,
    weightDType: "f32",
  };
  try {
    const before = memoryStats().liveBytes;
    // fails right after the load (resolution), and after the adapters exist (missing state)
    await rejects(() => train({ ...base, resolution: 30 }), ConfigError);
    // small caches come and go (KBs); the tiny model is MBs and rank-32 adapters about 800 KB
    const bound = 256 << 10;
    ok(memoryStats().liveBytes - before < bound, `${memoryStats().liveBytes - before} bytes left`);
    await rejects(
      () => train({ ...base, networkDim: 32, resume: join(root, "no-state") }),
      ConfigError,
    );
    ok(memoryStats().liveBytes - before < bound, `${memoryStats().liveBytes - before} bytes left`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
