// train() end to end on the tiny model: a kohya folder of PNG, JPEG and WebP images of mixed
// aspect with captions, a class-token-only image and a reg folder; the loss falls over 50 steps,
// the LoRA file loads back through the reader with every key used, and the log folder holds the
// losses, the curve and a report with the samples. Bad input fails before anything is written.
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { getDevice } from "../mod.ts";
import { readLoraFile } from "../src/lora/formats/read_fs.ts";
import { modelShapes } from "../src/lora/formats/model_shapes.ts";
import { train } from "../src/train/trainer_fs.ts";
import { ConfigError } from "../src/train/errors.ts";
import { rejectsWith } from "./_train_helpers.ts";
import { writeTinyModel } from "./_cli_fixtures.ts";

await getDevice();

async function image(path: string, w: number, h: number, seed: number): Promise<void> {
  const px = new Uint8Array(w * h * 3).map((_, i) => {
    const p = Math.floor(i / 3), x = p % w, y = Math.floor(p / w);
    return 128 + Math.round(100 * Math.sin((x + seed) / 3 + (i % 3)) * Math.cos((y - seed) / 4));
  });
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  if (path.endsWith(".jpg")) await img.jpeg({ quality: 95 }).toFile(path);
  else if (path.endsWith(".webp")) await img.webp({ lossless: true }).toFile(path);
  else await img.png().toFile(path);
}

async function fixture(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "train_e2e_" });
  await writeTinyModel(join(root, "model"), 3);
  const dog = join(root, "train", "5_sks dog");
  await Deno.mkdir(dog, { recursive: true });
  await image(join(dog, "a.png"), 40, 32, 1);
  await Deno.writeTextFile(join(dog, "a.txt"), "a photo of dog");
  await image(join(dog, "b.jpg"), 32, 40, 2);
  await Deno.writeTextFile(join(dog, "b.txt"), "a dog");
  await image(join(dog, "c.webp"), 64, 16, 3); // no caption: "sks dog"; its own 32x8 bucket
  const reg = join(root, "reg", "1_dog");
  await Deno.mkdir(reg, { recursive: true });
  await image(join(reg, "r.png"), 32, 32, 4);
  await Deno.writeTextFile(
    join(root, "prompts.txt"),
    "# samples\na photo of dog --w 16 --h 16 --s 2 --d 5 --l 3\n",
  );
  return root;
}

Deno.test("train() on the tiny model: loss falls, the LoRA loads back, logs and report written", async () => {
  const root = await fixture();
  const out = join(root, "out"), logs = join(root, "logs");
  const lines: string[] = [], messages: string[] = [];
  const r = await train({
    pretrainedModelNameOrPath: join(root, "model"),
    trainDataDir: join(root, "train"),
    regDataDir: join(root, "reg"),
    outputDir: out,
    outputName: "tiny",
    resolution: 16, // latents 8x8 on the tiny model (downsampling 4) keep llvmpipe near 1 it/s
    enableBucket: true,
    minBucketReso: 8,
    maxBucketReso: 32,
    bucketResoSteps: 8,
    captionExtension: ".txt",
    trainBatchSize: 2,
    networkDim: 4,
    networkAlpha: 4,
    learningRate: 3e-3,
    maxTrainSteps: 50,
    cacheLatents: true,
    logDir: logs,
    logEvery: 5,
    saveEveryNSteps: 25,
    samplePrompts: join(root, "prompts.txt"),
    sampleAtFirst: true,
    sampleEveryNSteps: 50,
    sampleSampler: "euler",
    seed: 7,
    weightDType: "f32",
  }, { progress: (l) => lines.push(l), message: (m) => messages.push(m) });
  equal(r.steps, 50);
  const table = messages.find((m) => m.includes("bucket 0: resolution")) ?? "";
  ok(table.includes("resolution 16x16") && table.includes("resolution 32x8"), table);
  equal(lines.length, 10);
  // each logged value is a 5-step mean; compare the first and last 15 steps
  const first = (r.losses[0]! + r.losses[1]! + r.losses[2]!) / 3;
  const last = (r.losses[7]! + r.losses[8]! + r.losses[9]!) / 3;
  ok(last < first, `loss ${r.losses.map((l) => l.toFixed(3)).join(" ")}`);
  const shapes = modelShapes({ unet: r.models.unet, textEncoder: r.models.textEncoder });
  const file = await readLoraFile(r.output, shapes); // strict: every key must match a module
  equal(file.entries.length, r.network.adapters.length);
  equal(file.metadata.ss_network_dim, "4");
  deepEqual((await Array.fromAsync(Deno.readDir(out))).map((e) => e.name).sort(), [
    "sample",
    "tiny-step00000025.safetensors",
    "tiny.safetensors",
  ]);
  deepEqual((await Array.fromAsync(Deno.readDir(join(out, "sample")))).map((e) => e.name).sort(), [
    "tiny_000000_00.jpg",
    "tiny_000050_00.jpg",
  ]);
  const html = await Deno.readTextFile(join(logs, "report.html"));
  equal([...html.matchAll(/data:image\/jpeg;base64,/g)].length, 2);
  equal((await Deno.readTextFile(join(logs, "losses.jsonl"))).trim().split("\n").length, 10);
  r.network.dispose();
  for (const x of [r.models.unet, r.models.vae, r.models.textEncoder]) x.dispose();
  await Deno.remove(root, { recursive: true });
});

Deno.test("train() refuses bad input before writing anything", async () => {
  const root = await fixture();
  const base = {
    pretrainedModelNameOrPath: join(root, "model"),
    trainDataDir: join(root, "train"),
    captionExtension: ".txt",
    maxTrainSteps: 1,
  };
  const out = join(root, "out");
  await rejectsWith(
    () => train({ ...base, outputDir: out, resolution: 30 }),
    ConfigError,
    "use 28 or 32 instead of 30",
  );
  await Deno.writeTextFile(join(root, "file"), "x");
  await rejectsWith(
    () => train({ ...base, outputDir: join(root, "file", "out"), resolution: 16 }),
    ConfigError,
    "is not writable",
  );
  await rejectsWith(
    () => train({ ...base, outputDir: out, samplePrompts: join(root, "nope.txt") }),
    ConfigError,
    "does not exist",
  );
  deepEqual((await Array.fromAsync(Deno.readDir(root))).map((e) => e.name).sort(), [
    "file",
    "model",
    "prompts.txt",
    "reg",
    "train",
  ]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("train() stopped at step 3 and resumed writes a bit-identical LoRA", async () => {
  const root = await fixture();
  const base = {
    pretrainedModelNameOrPath: join(root, "model"),
    trainDataDir: join(root, "train"),
    captionExtension: ".txt",
    resolution: 16,
    trainBatchSize: 2,
    networkDim: 2,
    learningRate: 3e-3,
    seed: 11,
    weightDType: "f32" as const,
    shuffleCaption: true,
    flipAug: true,
    lrScheduler: "cosine",
    lrWarmupSteps: 2,
    logEvery: 3,
  };
  const full = await train({ ...base, outputDir: join(root, "full"), maxTrainSteps: 6 });
  const part = await train({
    ...base,
    outputDir: join(root, "part"),
    maxTrainSteps: 6,
    saveEveryNSteps: 3,
    saveState: true,
  });
  const stateDir = join(root, "part", "last-step00000003-state");
  const state = JSON.parse(await Deno.readTextFile(join(stateDir, "train_state.json")));
  deepEqual([state.current_step, state.stepper.step], [3, 3]);
  const resumed = await train({
    ...base,
    outputDir: join(root, "resumed"),
    maxTrainSteps: 6,
    resume: stateDir,
  });
  const bytes = async (p: string) => await Deno.readFile(p);
  const tensorsOf = async (p: string) => {
    const b = await bytes(p);
    const n = Number(new DataView(b.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
    delete header.__metadata__;
    return [JSON.stringify(header), b.subarray(8 + n)] as const;
  };
  const [hFull, dFull] = await tensorsOf(full.output);
  const [hRes, dRes] = await tensorsOf(resumed.output);
  equal(hRes, hFull);
  ok(dRes.length === dFull.length && dRes.every((v, i) => v === dFull[i]), "bit-identical tensors");
  deepEqual(resumed.losses, full.losses.slice(-resumed.losses.length));
  for (const r of [full, part, resumed]) {
    r.network.dispose();
    for (const x of [r.models.unet, r.models.vae, r.models.textEncoder]) x.dispose();
  }
  await Deno.remove(root, { recursive: true });
});
