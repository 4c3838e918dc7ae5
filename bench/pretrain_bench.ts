/**
 * Pretraining step times of the mini SD's candidate sizes (batch 16, 32x32 images, 8x8
 * latents, 77 tokens): one VAE step, and one text-encoder + U-Net step, each forward, backward
 * and AdamW. Reports images per second as the throughput.
 *
 * Run `deno bench -A bench/pretrain_bench.ts`.
 *
 * @module
 */
import {
  AdamW,
  AutoencoderKL,
  CLIPTextModel,
  Generator,
  getDevice,
  rand,
  UNet2DConditionModel,
} from "../mod.ts";
import { affine } from "../src/ops/unary.ts";
import { MINI_SD_SIZES } from "../src/train/pretrain_config.ts";
import { VaeStepper } from "../src/train/pretrain_vae_step.ts";
import { UnetStageStepper } from "../src/train/pretrain_unet_step.ts";

await getDevice();
const B = Number(Deno.env.get("PRETRAIN_BENCH_BATCH") ?? 16);
const images = affine(rand([B, 3, 32, 32]), 2, -1);
const ids = Array.from({ length: B * 77 }, (_, i) => i % 200);

const candidates = {
  mini: MINI_SD_SIZES.mini,
  wide: {
    ...MINI_SD_SIZES.mini,
    vae: { ...MINI_SD_SIZES.mini.vae, blockOutChannels: [32, 64, 64] },
    unet: { ...MINI_SD_SIZES.mini.unet, blockOutChannels: [96, 192] },
  },
  deep: {
    ...MINI_SD_SIZES.mini,
    unet: { ...MINI_SD_SIZES.mini.unet, blockOutChannels: [64, 128, 128] },
  },
};

for (const [name, c] of Object.entries(candidates)) {
  const vae = new AutoencoderKL(c.vae);
  const vaeOpt = new AdamW(vae.trainableParameters().map((p) => p.value), { lr: 1e-3 });
  const vs = new VaeStepper(vae, vaeOpt, new Generator(1), () => 1e-3);
  vs.run(images);
  await vs.drainLoss();
  Deno.bench({
    group: "vae",
    name: `pretrain vae step ${name} f32 [${B},3,32,32]`,
    n: 3,
    warmup: 0,
  }, async (b) => {
    b.start();
    vs.run(images);
    await vs.drainLoss();
    b.end();
  });
  const frozen = new AutoencoderKL(c.vae).freeze();
  const te = new CLIPTextModel({ ...c.textEncoder, vocabSize: 256 });
  const unet = new UNet2DConditionModel(c.unet);
  const params = [...te.trainableParameters(), ...unet.trainableParameters()].map((p) => p.value);
  const opt = new AdamW(params, { lr: 3e-4 });
  const us = new UnetStageStepper(
    { vae: frozen, textEncoder: te, unet },
    opt,
    new Generator(2),
    () => 3e-4,
  );
  us.run(images, ids, [B, 77]);
  await us.drainLoss();
  Deno.bench({
    group: "unet",
    name: `pretrain te+unet step ${name} f32 [${B},4,8,8]`,
    n: 3,
    warmup: 0,
  }, async (b) => {
    b.start();
    us.run(images, ids, [B, 77]);
    await us.drainLoss();
    b.end();
  });
}
