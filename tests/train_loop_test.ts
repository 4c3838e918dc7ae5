// The loop's plumbing with a one-parameter denoiser (fast): progress lines, log files, step
// checkpoints with keep-last-N, samples at first and every N steps, the final save, and a NaN that
// stops the run keeping the last good checkpoint.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import { AdamW, Generator, getDevice, mul, noGrad, type Tensor, tensor } from "../mod.ts";
import { DataLoader, type LoaderDataset } from "../src/train/data_loader.ts";
import { resolveDataset } from "../src/train/dataset_config.ts";
import { NonFiniteLossError, runTrainingLoop, stepsForEpochs } from "../src/train/loop.ts";
import { TrainStepper } from "../src/train/train_step.ts";
import { RunLog } from "../src/train/run_log_fs.ts";
import { type CheckpointAt, checkpointName } from "../src/train/checkpoint_names.ts";
import { writeFileAtomic } from "../src/train/atomic_fs.ts";
import { pruneCheckpoints } from "../src/train/checkpoints_fs.ts";

await getDevice();

function dataset(): LoaderDataset {
  const config = resolveDataset([{ resolution: [64, 64], batchSize: 2 }], [{
    imageDir: "a",
    numRepeats: 1,
  }]);
  const images = [0, 1, 2, 3].map((i) => ({
    path: `img${i}`,
    caption: "x",
    size: [64, 64] as [number, number],
    repeats: 1,
    subset: 0,
    lossWeight: 1,
  }));
  return { config, images };
}

function setup(poisonAt = Infinity) {
  const w = tensor([0.2], [1], { requiresGrad: true });
  const opt = new AdamW([w], { lr: 0.05, weightDecay: 0 });
  let calls = 0;
  // epsilon prediction from x_t: the best scalar w is about sqrt(1 - ab) (noise-dominated)
  const denoise = (x: Tensor): Tensor => {
    const y = mul(x, w);
    return ++calls === poisonAt ? mul(y, noGrad(() => tensor([NaN], [1]))) : y;
  };
  const stepper = new TrainStepper(opt, denoise, new Generator(1), () => 0.05, {
    minTimestep: 900,
  });
  const loader = new DataLoader([dataset()], {
    seed: 2,
    loadImage: (_p, c) =>
      Promise.resolve(new Float32Array(3 * c.bucket[0] * c.bucket[1]).fill(0.5)),
  });
  const encode = (b: { captions: string[] }): [Tensor, Tensor] => {
    const B = b.captions.length;
    return [
      tensor(new Float32Array(B * 4 * 4).fill(0.5), [B, 4, 2, 2]),
      tensor(new Float32Array(B), [B, 1, 1]),
    ];
  };
  return { w, opt, stepper, loader, encode };
}

async function saver(dir: string, at: CheckpointAt): Promise<string> {
  const path = join(dir, checkpointName("tiny", at));
  await writeFileAtomic(path, JSON.stringify(at));
  if (at !== "final") await pruneCheckpoints(dir, "tiny", "step", 2);
  return path;
}

Deno.test("runTrainingLoop() logs, samples, keeps the last 2 step checkpoints and saves the final", async () => {
  const dir = await Deno.makeTempDir();
  const s = setup();
  const lines: string[] = [], samples: number[] = [];
  const log = await RunLog.open(join(dir, "logs"));
  const stepsPerEpoch = stepsForEpochs(1, s.loader.batchesPerEpoch);
  equal(stepsPerEpoch, 2);
  const r = await runTrainingLoop(s.stepper, s.loader, {
    maxTrainSteps: 40,
    stepsPerEpoch,
    logEvery: 5,
    saveEveryNSteps: 10,
    sampleEveryNSteps: 20,
    sampleAtFirst: true,
  }, {
    encode: s.encode,
    lrAt: () => 0.05,
    saveCheckpoint: (at) => saver(dir, at),
    sample: (step) => Promise.resolve(void samples.push(step)),
    progress: (line) => lines.push(line),
    log,
  });
  equal(r.steps, 40);
  deepEqual(samples, [0, 20, 40]);
  deepEqual(r.saved.map((p) => p.slice(dir.length + 1)), [
    "tiny-step00000010.safetensors",
    "tiny-step00000020.safetensors",
    "tiny-step00000030.safetensors",
    "tiny.safetensors",
  ]);
  const files = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  deepEqual(files, [
    "logs",
    "tiny-step00000020.safetensors",
    "tiny-step00000030.safetensors",
    "tiny.safetensors",
  ]);
  equal(lines.length, 8);
  ok(lines[7]!.startsWith("step 40/40 (100.0%) | epoch 20/20 | "), lines[7]);
  equal(log.records.length, 8);
  ok(r.losses.at(-1)! < r.losses[0]!, `loss falls: ${r.losses[0]} -> ${r.losses.at(-1)}`);
  s.stepper.dispose();
  s.opt.dispose();
  s.w.dispose();
  await Deno.remove(dir, { recursive: true });
});

// no interval readback (logEvery 100): the check before each save is what catches it
Deno.test("a NaN stops the loop with the last good checkpoint named and nothing saved after", async () => {
  const dir = await Deno.makeTempDir();
  const s = setup(27); // micro-batch 27 = step 27 (no accumulation)
  await rejects(
    () =>
      runTrainingLoop(s.stepper, s.loader, {
        maxTrainSteps: 40,
        stepsPerEpoch: 2,
        logEvery: 100,
        saveEveryNSteps: 10,
      }, {
        encode: s.encode,
        lrAt: () => 0.05,
        saveCheckpoint: (at) => saver(dir, at),
      }),
    (e: unknown) => {
      ok(e instanceof NonFiniteLossError, String(e));
      ok(e.message.includes("between steps 21 and 30"), e.message);
      ok(
        e.message.includes(`last good checkpoint is ${join(dir, "tiny-step00000020.safetensors")}`),
        e.message,
      );
      return true;
    },
  );
  const files = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  deepEqual(files, ["tiny-step00000010.safetensors", "tiny-step00000020.safetensors"]);
  s.stepper.dispose();
  s.opt.dispose();
  s.w.dispose();
  await Deno.remove(dir, { recursive: true });
});
