// mod.ts pretrain --norm batch on tiny models: a group-norm model converts to batch norm with its
// affine parameters copied exactly and its VAE and text encoder unchanged bit for bit, its running
// statistics set from data; a few steps lower the loss of a fixed batch from scratch and from the
// converted model; batch norm samples with running statistics; bad options are refused; and the
// shipped batch-norm variant (models/mini_sd_bn) loads with batch norms and names its command.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { AdamW } from "../src/ops/adamw.ts";
import { noGrad } from "../src/ops/autograd.ts";
import { ones, tensor, zeros } from "../src/ops/creation.ts";
import { mseLoss } from "../src/ops/mse_loss.ts";
import { Generator, manualSeed } from "../src/ops/rng.ts";
import { scope } from "../src/ops/scope.ts";
import type { Tensor } from "../src/ops/tensor.ts";
import { scale } from "../src/ops/unary.ts";
import { CLIPTextModel } from "../src/nn/clip.ts";
import { BatchNorm2d } from "../src/nn/layers/batch_norm.ts";
import { loadDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { SafetensorsFile } from "../src/nn/safetensors_fs.ts";
import { UNet2DConditionModel } from "../src/nn/unet.ts";
import { AutoencoderKL } from "../src/nn/vae.ts";
import { addNoise, trainingNoise } from "../src/schedule/training.ts";
import { UsageError } from "../src/cli/_args.ts";
import { bundledBatchNormModelDir, bundledModelDir } from "../src/cli/bundled.ts";
import { pretrainCommand } from "../src/cli/pretrain.ts";
import { miniSdConfig } from "../src/train/pretrain_config.ts";
import { ProceduralWorld } from "../src/eval/world.ts";
import { pretrain } from "../src/train/pretrain_fs.ts";
import { source, tinyPretrainOptions, tokenizer } from "./_pretrain_fixture.ts";
import { initFromFolder } from "../src/train/pretrain_init_fs.ts";
import { estimateNormStatistics, NORM_ESTIMATE_BATCHES } from "../src/train/pretrain_norm_stats.ts";
import { UnetStageStepper } from "../src/train/pretrain_unet_step.ts";
import { assertClose, folderBytes, randomData } from "./_helpers.ts"; // acquires the GPU device

const options = tinyPretrainOptions;

// one tiny group-norm model for every test (about 2 s)
const ROOT = await Deno.makeTempDir({ prefix: "denoise_pretrain_norm_" });
const BASE = (await pretrain(source, options(join(ROOT, "base"), { command: "base" }))).model!;
globalThis.addEventListener("unload", () => Deno.removeSync(ROOT, { recursive: true }));

type Models = { vae: AutoencoderKL; textEncoder: CLIPTextModel; unet: UNet2DConditionModel };

/** Tiny random models, the U-Net with batch norms. */
function tinyModels(seed: number): Models {
  const cfg = miniSdConfig("tiny", tokenizer.vocabSize);
  manualSeed(seed);
  return {
    vae: new AutoencoderKL(cfg.vae),
    textEncoder: new CLIPTextModel(cfg.textEncoder),
    unet: new UNet2DConditionModel({ ...cfg.unet, norm: "batch" }),
  };
}

// rgb: B x [32, 32, 3] bytes -> [B, 3, 32, 32] in [-1, 1]
function imagesTensor(rgb: readonly Uint8Array[]): Tensor {
  const px = new Float32Array(rgb.length * 3 * 1024);
  rgb.forEach((img, b) => {
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) px[(b * 3 + c) * 1024 + p] = img[p * 3 + c]! / 127.5 - 1;
    }
  });
  return tensor(px, [rgb.length, 3, 32, 32]);
}

async function tensors(path: string): Promise<Map<string, Uint8Array>> {
  using f = await SafetensorsFile.open(path);
  const out = new Map<string, Uint8Array>();
  for (const k of f.keys) out.set(k, await f.readRaw(k));
  return out;
}

const NORMS = /(resnets\.\d+\.norm[12]|^conv_norm_out)\.(weight|bias)$/;

Deno.test("the group-to-batch-norm conversion copies each GroupNorm's weight and bias exactly", async () => {
  const m = tinyModels(1);
  await initFromFolder(BASE, m, { convertNorms: true });
  using f = await SafetensorsFile.open(join(BASE, "unet", "diffusion_pytorch_model.safetensors"));
  const converted: string[] = [];
  for (const [path, layer] of m.unet.namedModules()) {
    if (!(layer instanceof BatchNorm2d)) continue;
    for (const name of ["weight", "bias"]) {
      // f16 in the file, widened to f32 exactly on both sides
      deepEqual(
        [...await layer.param(name).value.toArray()],
        [...await f.read(`${path}.${name}`)],
        `${path}.${name}`,
      );
      converted.push(`${path}.${name}`);
    }
  }
  // every ResNet and output norm of the file, and nothing else, became a batch norm
  deepEqual(converted.sort(), f.keys.filter((k) => NORMS.test(k)).sort());
  ok(converted.length > 0);
  [m.vae, m.textEncoder, m.unet].forEach((x) => x.dispose());
});

Deno.test("--norm batch from a group-norm model keeps its VAE and text encoder bit for bit and records the conversion", async () => {
  const r = await pretrain(
    source,
    options(join(ROOT, "bn"), {
      stage: "unet",
      init: BASE,
      norm: "batch",
      command: "bn",
      captionDropout: 0,
    }),
  );
  for (const part of ["vae/diffusion_pytorch_model", "text_encoder/model"]) {
    const a = await tensors(join(BASE, `${part}.safetensors`));
    const b = await tensors(join(r.model!, `${part}.safetensors`));
    deepEqual(b, a, `${part} changed`);
  }
  const config = JSON.parse(await Deno.readTextFile(join(r.model!, "unet", "config.json")));
  equal(config.norm, "batch");
  using f = await SafetensorsFile.open(
    join(r.model!, "unet", "diffusion_pytorch_model.safetensors"),
  );
  equal(f.metadata.denoise_norm, "batch");
  const history = JSON.parse(f.metadata.denoise_history!);
  deepEqual(history.map((p: { command: string }) => p.command), ["base", "bn"]);
  ok(/from .*base.* converted to batch norms/.test(history[1].init), history[1].init);
  ok(/exact AdaBN estimate over 32 samples/.test(history[1].init), history[1].init);
  // the running statistics are the exact estimate on the final weights: recomputed here, from
  // PyTorch's initial 0 and 1, on the saved model and the same stream batches (captions kept:
  // no dropout in this run)
  const m = await loadDiffusersFolder(r.model!);
  const batches = Array.from({ length: NORM_ESTIMATE_BATCHES }, (_, i) => {
    const items = source(2 * i, 2);
    const ids = items.captions.flatMap((c) => tokenizer.encode(c, { maxLength: 77 }).ids);
    return { images: imagesTensor(items.rgb), ids, shape: [2, 77] as [number, number] };
  });
  for (const [, layer] of m.unet.namedModules()) {
    if (!(layer instanceof BatchNorm2d)) continue;
    layer.param("running_mean").assign(zeros([layer.channels]));
    layer.param("running_var").assign(ones([layer.channels]));
  }
  equal(estimateNormStatistics(m, batches, 3), 32);
  for (const [path, layer] of m.unet.namedModules()) {
    if (!(layer instanceof BatchNorm2d)) continue;
    for (const name of ["running_mean", "running_var"]) {
      // the file holds f16 weights and statistics (relative rounding 2^-11 each); 1e-2 of the
      // value covers both, while the training-mode running average misses by far more
      assertClose(
        await f.read(`${path}.${name}`),
        await layer.param(name).value.toArray(),
        1e-3,
        1e-2,
        `${path}.${name}`,
      );
    }
  }
  [m.vae, m.textEncoder, m.unet, ...batches.map((b) => b.images)].forEach((x) => x.dispose());
});

/** `[4, 3, 32, 32]` images of a fixed batch, their token ids, and their latents. */
function fixedBatch(vae: AutoencoderKL): { x: Tensor; ids: number[]; latents: Tensor } {
  const items = new ProceduralWorld({ seed: 8 }).items(0, 4);
  const x = imagesTensor(items.map((it) => it.rgb));
  const ids = items.flatMap((it) => tokenizer.encode(it.caption, { maxLength: 77 }).ids);
  const latents = noGrad(() =>
    scale(vae.sample(vae.encode(x), { generator: new Generator(3) }), vae.scalingFactor)
  );
  return { x, ids, latents };
}

/** The batch's mean denoising loss over fixed timesteps and noise, with batch statistics. */
async function batchLoss(m: Models, b: { ids: number[]; latents: Tensor }): Promise<number> {
  let total = 0;
  for (const [i, t] of [[100, 300, 500, 700], [900, 50, 400, 800]].entries()) {
    total += await noGrad(() =>
      scope(() => {
        const noise = trainingNoise(b.latents.shape, { generator: new Generator(11 + i) });
        const context = m.textEncoder.forward(b.ids, [4, 77]);
        return mseLoss(m.unet.forward(addNoise(b.latents, noise, t), t, context), noise);
      }).item()
    );
  }
  return total / 2;
}

// tiny models move fast: Adam at 1e-3 for 6 steps on the one batch
const LR = 1e-3, STEPS = 6;

for (const from of ["scratch", "the converted model"] as const) {
  Deno.test(`a few --norm batch steps from ${from} lower the denoising loss of a fixed batch`, async () => {
    const m = tinyModels(2);
    if (from !== "scratch") {
      await initFromFolder(BASE, m, { convertNorms: true });
      m.textEncoder.freeze(); // as pretrain does for a converted model
    }
    m.vae.freeze();
    const b = fixedBatch(m.vae);
    const before = await batchLoss(m, b);
    const params = [...m.textEncoder.trainableParameters(), ...m.unet.trainableParameters()];
    const opt = new AdamW(params.map((p) => p.value), { lr: LR });
    const s = new UnetStageStepper(m, opt, new Generator(4), () => LR);
    for (let i = 0; i < STEPS; i++) s.run(b.x, b.ids, [4, 77]);
    await s.drainLoss();
    const after = await batchLoss(m, b);
    // a step that does not train (no gradient through the batch norms, learning rate 0) stays
    // within noise of `before`; 10% below it is a real decrease
    ok(after < 0.9 * before, `denoising loss ${before} -> ${after}`);
    s.dispose();
    opt.dispose();
    [m.vae, m.textEncoder, m.unet, b.x, b.latents].forEach((x) => x.dispose());
  });
}

Deno.test("pretrain refuses a bad --norm, --norm batch without the U-Net stage or with --resume, and a batch-norm --init without --norm batch", async () => {
  const run = ["--size", "tiny", "--steps", "1", "--batch-size", "1", "--out", join(ROOT, "x")];
  await rejects(
    () => pretrainCommand([...run, "--norm", "layer"]),
    (e: Error) => e instanceof UsageError && /--norm must be one of group, batch/.test(e.message),
  );
  const bnFolder = join(ROOT, "fake_bn");
  await Deno.mkdir(join(bnFolder, "unet"), { recursive: true });
  await Deno.writeTextFile(join(bnFolder, "unet", "config.json"), '{"norm": "batch"}');
  for (
    const [extra, want] of [
      [{ norm: "batch", stage: "vae" }, /--stage vae does not train/],
      [{ norm: "batch", stage: "unet", resume: ROOT }, /--resume does not restore batch-norm/],
      [{ stage: "unet", init: bnFolder }, /has a batch-norm U-Net; pass --norm batch/],
    ] as const
  ) {
    let message = "";
    await pretrain(source, options(join(ROOT, "refused"), extra)).catch((e) => message = e.message);
    ok(want.test(message), message);
  }
});

const SHIPPED = await Deno.stat(join(bundledBatchNormModelDir(), "unet", "config.json")).then(
  () => true,
  () => false,
);

Deno.test({
  name:
    "the shipped batch-norm mini SD loads with batch norms, names its command, shares the base's VAE and text encoder and samples with running statistics",
  ignore: !SHIPPED,
  fn: async () => {
    const dir = bundledBatchNormModelDir();
    ok(
      await folderBytes(dir) + await folderBytes(bundledModelDir()) <= 20_000_000,
      "models/mini_sd and models/mini_sd_bn together are over 20 MB",
    );
    const unetFile = join(dir, "unet", "diffusion_pytorch_model.safetensors");
    {
      using f = await SafetensorsFile.open(unetFile);
      ok(f.metadata.denoise_command?.startsWith("deno run -A mod.ts pretrain "));
      ok(f.metadata.denoise_command!.includes("--norm batch"), f.metadata.denoise_command);
      const last = JSON.parse(f.metadata.denoise_history!).at(-1);
      equal(last.command, f.metadata.denoise_command);
      equal(last.norm, "batch");
      ok(/from models\/mini_sd .*converted to batch norms/.test(last.init), last.init);
      ok(last.unet_steps > 0 && last.batch_size > 0 && last.wall_time_s > 0);
    }
    for (const part of ["vae/diffusion_pytorch_model", "text_encoder/model"]) {
      deepEqual(
        await tensors(join(dir, `${part}.safetensors`)),
        await tensors(join(bundledModelDir(), `${part}.safetensors`)),
        `${part} differs from models/mini_sd's`,
      );
    }
    const { vae, textEncoder, unet } = await loadDiffusersFolder(dir);
    const bns = unet.namedModules().filter(([, l]) => l instanceof BatchNorm2d);
    ok(bns.length > 0, "no BatchNorm2d in the U-Net");
    // one sample's prediction, alone and beside another: the same in eval mode (running
    // statistics), different in training mode (the batch's statistics)
    const data = Float32Array.from(randomData(2 * 4 * 64, 5));
    const ids = tokenizer.encode("a red circle", { maxLength: 77 }).ids;
    const firstOf = (batch: number) =>
      noGrad(() =>
        scope(() => {
          const xs = tensor(data.subarray(0, batch * 256), [batch, 4, 8, 8]);
          const context = textEncoder.forward([...ids, ...ids].slice(0, 77 * batch), [batch, 77]);
          return unet.forward(xs, 500, context);
        }).toArray()
      ).then((v) => v.slice(0, 256));
    const [path, bn] = bns[0]!;
    const running = await bn.param("running_mean").value.toArray();
    unet.eval();
    // f32 sums over a different batch layout round differently: 1e-4 is far below the 1e-2
    // that batch statistics move the prediction by (checked below)
    assertClose(await firstOf(1), await firstOf(2), 1e-4, 0, "eval-mode prediction");
    deepEqual(await bn.param("running_mean").value.toArray(), running, `${path} moved in eval`);
    unet.train();
    const alone = await firstOf(1), beside = await firstOf(2);
    ok(alone.some((v, i) => Math.abs(v - beside[i]!) > 1e-2), "training mode ignored the batch");
    [vae, textEncoder, unet].forEach((t) => t.dispose());
  },
});
