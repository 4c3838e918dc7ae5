// The training step core on a tiny U-Net (a full fine-tune of a few tensors stands in for the
// LoRA until the adapters land): a run saved at step k and resumed gives bit-identical weights to
// an uninterrupted run; a state folder is never half-written, even under SIGKILL; a NaN in the
// loss is caught at the next loss readback.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import {
  AdamW,
  Generator,
  getDevice,
  mul,
  noGrad,
  type Tensor,
  tensor,
  UNet2DConditionModel,
} from "../mod.ts";
import { TINY_UNET } from "./_sd_fixture.ts";
import { DataLoader, type LoaderDataset, type TrainBatch } from "../src/train/data_loader.ts";
import { resolveDataset } from "../src/train/dataset_config.ts";
import { lrSchedule } from "../src/train/lr_schedule.ts";
import { TrainStepper } from "../src/train/train_step.ts";
import { readTrainState, saveTrainState } from "../src/train/train_state_fs.ts";
import type { BucketChoice } from "../src/train/buckets.ts";

await getDevice();

const TRAINED = [
  "conv_in.weight",
  "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
  "conv_out.weight",
  "conv_out.bias",
];
const SEED = 1234, LR = 1e-3, TOTAL = 6;

function dataset(): LoaderDataset {
  const config = resolveDataset([{ resolution: [64, 64], batchSize: 2 }], [
    { imageDir: "a", numRepeats: 2, shuffleCaption: true, flipAug: true },
  ]);
  const images = [0, 1, 2].map((i) => ({
    path: `img${i}`,
    caption: `dog ${i}, red, blue`,
    size: [64 + 16 * i, 64] as [number, number],
    repeats: 2,
    subset: 0,
    lossWeight: 1,
  }));
  return { config, images };
}

// fake pixels: a smooth pattern per image, mirrored when flipped
function loadImage(path: string, c: BucketChoice, o: { flip: boolean }): Promise<Float32Array> {
  const [w, h] = c.bucket, k = Number(path.slice(3)) + 1;
  const px = new Float32Array(3 * w * h);
  for (let ch = 0; ch < 3; ch++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const xx = o.flip ? w - 1 - x : x;
        px[(ch * h + y) * w + x] = Math.sin(k * xx / 9 + ch) * Math.cos(y / 7);
      }
    }
  }
  return Promise.resolve(px);
}

// pixels [B, 3, H, W] -> latents [B, 4, H/8, W/8] (8x8 means, a 4th channel of their average);
// captions -> context [B, 5, 32] from character codes: a deterministic stand-in for VAE and CLIP
function encode(b: TrainBatch): [Tensor, Tensor] {
  const [W, H] = b.size, B = b.captions.length, h = H / 8, w = W / 8;
  const lat = new Float32Array(B * 4 * h * w);
  for (let i = 0; i < B; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let all = 0;
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let dy = 0; dy < 8; dy++) {
            for (let dx = 0; dx < 8; dx++) {
              s += b.pixels[((i * 3 + c) * H + y * 8 + dy) * W + x * 8 + dx]!;
            }
          }
          lat[((i * 4 + c) * h + y) * w + x] = s / 64;
          all += s / 192;
        }
        lat[((i * 4 + 3) * h + y) * w + x] = all;
      }
    }
  }
  const ctx = new Float32Array(B * 5 * 32);
  b.captions.forEach((cap, i) => {
    for (let j = 0; j < 5 * 32; j++) {
      ctx[i * 160 + j] = Math.sin((cap.charCodeAt(j % cap.length) || 1) * (j + 1) * 0.01);
    }
  });
  return [tensor(lat, [B, 4, h, w]), tensor(ctx, [B, 5, 32])];
}

interface Run {
  unet: UNet2DConditionModel;
  opt: AdamW;
  stepper: TrainStepper;
  loader: DataLoader;
  named: Map<string, Tensor>;
}

async function setup(resumeFrom?: string, seed = SEED): Promise<Run> {
  const unet = new UNet2DConditionModel(TINY_UNET, { generator: new Generator(1) });
  for (const [n, p] of unet.namedParameters()) p.trainable = TRAINED.includes(n);
  const saved = resumeFrom ? await readTrainState(resumeFrom) : undefined;
  if (saved) unet.loadStateDict(saved.weights, { strict: false });
  const all = new Map(unet.namedParameters());
  const named = new Map(TRAINED.map((n) => [n, all.get(n)!.value]));
  const opt = new AdamW([...named.values()], { lr: LR, maxGradNorm: 1 });
  if (saved) opt.loadState(saved.optimizer);
  const sched = lrSchedule({ name: "cosine", totalSteps: TOTAL, warmup: 2 });
  const stepper = new TrainStepper(
    opt,
    (x, t, c) => unet.forward(x, t, c),
    new Generator(seed),
    (s) => LR * sched(s),
    {
      noiseOffset: 0.05,
      minSnrGamma: 5,
      gradientAccumulationSteps: 2,
    },
  );
  const loader = new DataLoader([dataset()], { seed, loadImage });
  if (saved) {
    stepper.loadState(saved.state.stepper);
    loader.seek(saved.state.loader);
  }
  return { unet, opt, stepper, loader, named };
}

/** Trains until `until` optimizer steps; saves a state folder when reaching `saveAt`. */
async function train(
  r: Run,
  until: number,
  saveAt?: { step: number; dir: string },
): Promise<number[]> {
  const losses: number[] = [];
  while (r.stepper.step < until) {
    const batch = await r.loader.next();
    const [lat, ctx] = encode(batch);
    const stepped = r.stepper.run(lat, ctx, batch.lossWeights);
    lat.dispose();
    ctx.dispose();
    if (!stepped) continue;
    const rep = await r.stepper.drainLoss();
    ok(rep.finite);
    losses.push(rep.mean);
    if (saveAt && r.stepper.step === saveAt.step) {
      await saveTrainState(saveAt.dir, r.named, r.opt, {
        current_epoch: r.loader.epoch,
        current_step: r.stepper.step,
        stepper: r.stepper.state(),
        loader: r.loader.position(),
      });
    }
  }
  return losses;
}

async function weights(r: Run): Promise<Float32Array[]> {
  return await Promise.all([...r.named.values()].map((t) => t.toArray()));
}

function dispose(r: Run): void {
  r.stepper.dispose();
  r.opt.dispose();
  r.unet.dispose();
}

Deno.test("a run saved at step 3 and resumed ends bit-identical to an uninterrupted run", async () => {
  const dir = await Deno.makeTempDir();
  const state = join(dir, "tiny-step00000003-state");
  const a = await setup();
  const initial = await weights(a);
  const lossesA = await train(a, TOTAL, { step: 3, dir: state });
  const final = await weights(a);
  dispose(a);
  notDeepEqual(final, initial, "training changed the weights");
  const saved = JSON.parse(await Deno.readTextFile(join(state, "train_state.json")));
  deepEqual([saved.current_step, saved.params], [3, TRAINED]);

  const b = await setup(state);
  const lossesB = await train(b, TOTAL);
  const resumed = await weights(b);
  dispose(b);
  deepEqual(resumed, final, "bit-identical weights");
  deepEqual(lossesB, lossesA.slice(3), "bit-identical losses after the resume");

  const c = await setup(undefined, SEED + 1);
  await train(c, TOTAL);
  notDeepEqual(await weights(c), final, "another seed gives other weights");
  dispose(c);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a state folder killed mid-write is either the old one or the new one, never partial", async () => {
  const dir = await Deno.makeTempDir();
  const target = join(dir, "run-state");
  const script = new URL("./_train_state_writer.ts", import.meta.url).pathname;
  for (const delay of [30, 90, 170]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, target],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.getReader();
    await reader.read(); // "ready": version 0 is in place
    await new Promise((r) => setTimeout(r, delay));
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const { version } = JSON.parse(await Deno.readTextFile(join(target, "train_state.json")));
    const bytes = await Deno.readFile(join(target, "weights.bin"));
    equal(bytes.length, 4 << 20);
    ok(bytes.every((b) => b === version % 256), `weights.bin matches version ${version}`);
  }
  // temporaries left by the kill are hidden siblings, never the final name
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  ok(names.every((n) => n === "run-state" || n.startsWith(".run-state.")), names.join());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a NaN in the loss is reported at the next readback", async () => {
  const w = tensor([0.5], [1], { requiresGrad: true });
  const opt = new AdamW([w], { lr: 1e-2 });
  let poison = false;
  const denoise = (x: Tensor) => {
    const y = mul(x, w);
    return poison ? mul(y, noGrad(() => tensor([NaN], [1]))) : y;
  };
  const stepper = new TrainStepper(opt, denoise, new Generator(3), () => 1e-2);
  const lat = tensor(new Float32Array(2 * 4 * 2 * 2).fill(0.3), [2, 4, 2, 2]);
  const ctx = tensor(new Float32Array(2), [2, 1, 1]);
  stepper.run(lat, ctx, [1, 1]);
  stepper.run(lat, ctx, [1, 1]);
  const good = await stepper.drainLoss();
  deepEqual([good.count, good.finite], [2, true]);
  stepper.run(lat, ctx, [1, 1]);
  poison = true;
  stepper.run(lat, ctx, [1, 1]);
  poison = false;
  stepper.run(lat, ctx, [1, 1]);
  const bad = await stepper.drainLoss();
  deepEqual([bad.count, bad.finite], [3, false]);
  for (const t of [lat, ctx, w]) t.dispose();
  stepper.dispose();
  opt.dispose();
});
