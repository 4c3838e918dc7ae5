// Epoch ends come from the loader: with 3 batches per epoch and gradient accumulation 2, the
// epoch's last batch completes a (shorter) optimizer step, so no step mixes two epochs, and the
// epoch checkpoints fall where the epochs end (kohya with accelerate's end-of-dataloader sync).
import { deepEqual } from "node:assert/strict";
import { AdamW, Generator, getDevice, mul, type Tensor, tensor } from "../mod.ts";
import { DataLoader, type TrainBatch } from "../src/train/data_loader.ts";
import { resolveDataset } from "../src/train/dataset_config.ts";
import { runTrainingLoop, stepsForEpochs } from "../src/train/loop.ts";
import { TrainStepper } from "../src/train/train_step.ts";
import type { CheckpointAt } from "../src/train/checkpoint_names.ts";

await getDevice();

Deno.test("optimizer steps never mix epochs; epoch saves land on the loader's epoch ends", async () => {
  const config = resolveDataset([{ resolution: [64, 64], batchSize: 2 }], [{
    imageDir: "a",
    numRepeats: 1,
  }]);
  const images = [0, 1, 2, 3, 4, 5].map((i) => ({
    path: `img${i}`,
    caption: "x",
    size: [64, 64] as [number, number],
    repeats: 1,
    subset: 0,
    lossWeight: 1,
  }));
  const loader = new DataLoader([{ config, images }], {
    seed: 4,
    loadImage: (_p, c) => Promise.resolve(new Float32Array(3 * c.bucket[0] * c.bucket[1])),
  });
  const w = tensor([0.2], [1], { requiresGrad: true });
  const opt = new AdamW([w], { lr: 0.01 });
  const stepper = new TrainStepper(opt, (x: Tensor) => mul(x, w), new Generator(1), () => 0.01, {
    gradientAccumulationSteps: 2,
  });
  const perEpoch = stepsForEpochs(1, loader.batchesPerEpoch, 2);
  const epochsOfStep: number[][] = [];
  const saves: [CheckpointAt, number][] = [];
  await runTrainingLoop(stepper, loader, {
    maxTrainSteps: 3 * perEpoch,
    stepsPerEpoch: perEpoch,
    saveEveryNEpochs: 1,
  }, {
    encode: (b: TrainBatch): [Tensor, Tensor] => {
      (epochsOfStep[stepper.step] ??= []).push(b.epoch);
      const B = b.captions.length;
      return [
        tensor(new Float32Array(B * 16).fill(0.5), [B, 4, 2, 2]),
        tensor(new Float32Array(B), [B, 1, 1]),
      ];
    },
    lrAt: () => 0.01,
    saveCheckpoint: (at) => {
      saves.push([at, stepper.step]);
      return Promise.resolve(JSON.stringify(at));
    },
  });
  // each epoch: batches 1+2 make a step, batch 3 alone ends the epoch with another
  deepEqual(epochsOfStep, [[1, 1], [1], [2, 2], [2], [3, 3], [3]]);
  deepEqual(saves, [[{ epoch: 1 }, 2], [{ epoch: 2 }, 4], ["final", 6]]);
  stepper.dispose();
  opt.dispose();
});
