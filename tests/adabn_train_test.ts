// AdaBN in the trainer: `adabn: "before"` estimates on the training images and freezes (the
// statistics in the step-1 checkpoint and the final file are the same, present, finite, not the
// base's, and reload bit-identically); `"during"` keeps adapting (its final statistics differ);
// a GroupNorm model fails with the clear error and writes nothing; `mod.ts sample --lora` loads
// the statistics into a batch-norm model and warns once on a GroupNorm one.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { getDevice } from "../mod.ts";
import { UNet2DConditionModel } from "../src/nn/mod.ts";
import { SafetensorsFile, writeSafetensors } from "../src/nn/safetensors_fs.ts";
import { AdaBN, type AdabnSnapshot, readAdabnStatistics } from "../src/adabn/mod.ts";
import { ADABN_METADATA_KEY, isAdabnKey } from "../src/adabn/file.ts";
import { train, type TrainOptions } from "../src/train/trainer_fs.ts";
import { ConfigError } from "../src/train/errors.ts";
import { adabnBandRanges, checkAdabnOptions, spreadTimesteps } from "../src/train/adabn_train.ts";
import { parseOptions, UsageError } from "../src/cli/_args.ts";
import { adabnTrainOptions, normalizeTrainArgs, TRAIN_OPTIONS } from "../src/cli/train_options.ts";
import { trainOptions } from "../src/cli/train.ts";
import { rejectsWith, throwsWith } from "./_train_helpers.ts";
import { runCli, writeTinyModel } from "./_cli_fixtures.ts";
import { TINY_UNET } from "./_sd_fixture.ts";

await getDevice();

async function fixture(batchNorm: boolean): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "adabn_train_" });
  const model = join(root, "model");
  await writeTinyModel(model, 3, batchNorm ? "batch" : "group");
  const dir = join(root, "train", "2_dog");
  await Deno.mkdir(dir, { recursive: true });
  for (const [i, name] of ["a", "b"].entries()) {
    // a bright, offset image: the latents' statistics are far from the base's 0 / 1
    const px = new Uint8Array(16 * 16 * 3).map((_, k) => 200 + ((k * (i + 3)) % 50));
    await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png()
      .toFile(join(dir, `${name}.png`));
    await Deno.writeTextFile(join(dir, `${name}.txt`), "a photo of dog");
  }
  return root;
}

function options(root: string, out: string, adabn: "before" | "during"): TrainOptions {
  return {
    pretrainedModelNameOrPath: join(root, "model"),
    trainDataDir: join(root, "train"),
    outputDir: join(root, out),
    outputName: "tiny",
    resolution: 16,
    maxTrainSteps: 2,
    saveEveryNSteps: 1,
    learningRate: 1e-2,
    cacheLatents: true,
    networkTrainUnetOnly: true,
    weightDType: "f32",
    adabn,
    adabnBands: [0, 500, 1000],
  };
}

async function readStats(path: string): Promise<[AdabnSnapshot, Record<string, unknown>]> {
  using f = await SafetensorsFile.open(path);
  const s = await readAdabnStatistics(f);
  ok(s, `${path} carries AdaBN statistics`);
  return [s, JSON.parse(f.metadata[ADABN_METADATA_KEY]!)];
}

const flat = (s: AdabnSnapshot): number[] =>
  s.layers.flatMap((l) => l.bands.flatMap((b) => [...b.mean, ...b.variance]));

async function run(root: string, out: string, adabn: "before" | "during"): Promise<void> {
  const r = await train(options(root, out, adabn));
  r.adabn?.dispose();
  r.network.dispose();
  [r.models.unet, r.models.vae, r.models.textEncoder].forEach((m) => m.dispose());
}

const root = await fixture(true);

Deno.test("train() with adabn before: the files carry frozen, estimated statistics that reload exactly", async () => {
  await run(root, "before", "before");
  const [final, meta] = await readStats(join(root, "before", "tiny.safetensors"));
  const [step1] = await readStats(join(root, "before", "tiny-step00000001.safetensors"));
  equal(meta.mode, "before");
  equal(meta.method, "exact");
  deepEqual(final.bands, [0, 500, 1000]);
  ok(final.layers.length > 0);
  // frozen: the statistics do not move between the step-1 checkpoint and the final file
  deepEqual(flat(step1), flat(final));
  const values = flat(final);
  ok(values.every(Number.isFinite), "every statistic is finite");
  // estimated: every band saw samples (4 timesteps x 2 images x 4x4 latents = 128 per channel
  // at the first layer) and the statistics are not the base's running mean 0 / variance 1
  for (const l of final.layers) for (const b of l.bands) ok(b.count > 0, `${l.path} count`);
  ok(values.some((v, i) => Math.abs(v - (i % 2 === 0 ? 0 : 1)) > 1e-3), "not the base's");
  // reload through AdaBN.load: the snapshot taken back is bit-identical
  const unet = new UNet2DConditionModel({ ...TINY_UNET, norm: "batch" });
  using adabn = AdaBN.attach(unet, { bands: final.bands });
  adabn.load(final);
  deepEqual(flat(await adabn.snapshot()), values);
  unet.dispose();
});

Deno.test("train() with adabn during: the statistics keep adapting and differ from before's", async () => {
  await run(root, "during", "during");
  const [final, meta] = await readStats(join(root, "during", "tiny.safetensors"));
  const [step1] = await readStats(join(root, "during", "tiny-step00000001.safetensors"));
  const [before] = await readStats(join(root, "before", "tiny.safetensors"));
  equal(meta.mode, "before-and-during");
  equal(meta.method, "exact+online");
  notDeepEqual(flat(step1), flat(final));
  notDeepEqual(flat(before), flat(final));
  ok(flat(final).every(Number.isFinite));
});

Deno.test("train() with adabn on a GroupNorm model fails with the clear error and writes nothing", async () => {
  const gn = await fixture(false);
  await rejectsWith(
    () => train(options(gn, "out", "before")),
    ConfigError,
    "--adabn needs a model with batch norm (U-Net norm: batch); SD's U-Net uses GroupNorm",
  );
  equal(await Deno.stat(join(gn, "out")).then(() => true, () => false), false);
});

Deno.test("mod.ts sample --lora with AdaBN statistics: loaded on a batch-norm model, warned on GroupNorm", async () => {
  const lora = join(root, "before", "tiny.safetensors");
  const args = ["--prompt", "a dog", "--steps", "2", "--width", "16", "--height", "16"];
  const bn = await runCli([
    "sample",
    "--model",
    join(root, "model"),
    "--lora",
    lora,
    ...args,
    "--out",
    join(root, "bn.png"),
  ]);
  equal(bn.code, 0, bn.stderr);
  ok(!bn.stderr.includes("AdaBN"), bn.stderr);
  // the same LoRA without its statistics draws another image: the statistics were used
  const stripped = join(root, "stripped.safetensors");
  {
    using f = await SafetensorsFile.open(lora);
    const keys = f.keys.filter((k) => !isAdabnKey(k));
    const tensors = Object.fromEntries(
      await Promise.all(
        keys.map(async (k) => [k, { data: await f.read(k), shape: [...f.info(k).shape] }]),
      ),
    );
    const { [ADABN_METADATA_KEY]: _stats, ...metadata } = f.metadata;
    await writeSafetensors(stripped, tensors, metadata);
  }
  const plain = await runCli([
    "sample",
    "--model",
    join(root, "model"),
    "--lora",
    stripped,
    ...args,
    "--out",
    join(root, "plain.png"),
  ]);
  equal(plain.code, 0, plain.stderr);
  notDeepEqual(
    await Deno.readFile(join(root, "bn.png")),
    await Deno.readFile(join(root, "plain.png")),
  );
  const gn = await fixture(false);
  const g = await runCli([
    "sample",
    "--model",
    join(gn, "model"),
    "--lora",
    lora,
    ...args,
    "--out",
    join(root, "gn.png"),
  ]);
  equal(g.code, 0, g.stderr);
  equal(g.stderr.split("AdaBN statistics").length - 1, 1, g.stderr);
});

Deno.test("--adabn / --adabn_mode and --adabn_bands become the trainer's options; bad values are named", () => {
  const args = normalizeTrainArgs(["--adabn_mode", "during", "--adabn_bands", "0,500,1000"]);
  deepEqual(args, ["--adabn", "during", "--adabn-bands", "0,500,1000"]);
  const v = parseOptions(args, TRAIN_OPTIONS, "train");
  deepEqual(adabnTrainOptions(v.adabn, v["adabn-bands"]), {
    adabn: "during",
    adabnBands: [0, 500, 1000],
  });
  // ...and the command line's options carry them to train()
  const full = parseOptions(
    normalizeTrainArgs([
      "--pretrained_model_name_or_path",
      "m",
      "--train_data_dir",
      "d",
      "--output_dir",
      "o",
      ...args,
    ]),
    TRAIN_OPTIONS,
    "train",
  );
  const o = trainOptions(full);
  deepEqual([o.adabn, o.adabnBands], ["during", [0, 500, 1000]]);
  throwsWith(
    () => adabnTrainOptions("after", undefined),
    UsageError,
    "--adabn is before or during",
  );
  throwsWith(() => adabnTrainOptions("before", "0,x"), UsageError, "--adabn_bands");
  throwsWith(() => checkAdabnOptions("before", [0, 1000, 500]), ConfigError, "--adabn_bands");
  throwsWith(() => checkAdabnOptions(undefined, [0, 1000]), ConfigError, "needs --adabn");
});

Deno.test("the estimate's timesteps: each noised copy of a batch spreads over the band, together evenly", () => {
  const copies = [0, 1, 2, 3].map((j) => spreadTimesteps(4, 4, j, 200, 600));
  // every copy mixes timesteps across the band, as a training batch does
  for (const t of copies) ok(Math.max(...t) - Math.min(...t) >= 300, `spread ${t}`);
  // together: 16 evenly spaced points of [200, 600), 25 apart from 212
  deepEqual(
    copies.flat().sort((a, b) => a - b),
    Array.from({ length: 16 }, (_, i) => 212 + 25 * i),
  );
  deepEqual(adabnBandRanges([0, 500, 1000], 100, 900), [[100, 500], [500, 900]]);
});
