/**
 * The training loop's plumbing around `TrainStepper`: batches from the `DataLoader`, encoding
 * through a hook (VAE and text encoder, or their caches), loss readback and the NaN/Inf check at
 * log intervals and before every save, the progress line, the log folder, samples, checkpoints
 * and state folders on step or epoch schedules, and the final save. Adapter-neutral: what a
 * checkpoint holds is the hooks' business.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import type { CheckpointAt } from "./checkpoint_names.ts";
import type { DataLoader, TrainBatch } from "./data_loader.ts";
import { DenoiseError } from "../ops/errors.ts";
import { ConfigError } from "./errors.ts";
import { formatProgress, LossSmoother, type ProgressInfo, RateMeter } from "./progress.ts";
import type { RunLog } from "./run_log_fs.ts";
import type { TrainStepper } from "./train_step.ts";

/** The loss went NaN or infinite; training stopped. */
export class NonFiniteLossError extends DenoiseError {}

/** kohya's step count for `--max-train-epochs`: epochs times optimizer steps per epoch. */
export function stepsForEpochs(epochs: number, batchesPerEpoch: number, accumulation = 1): number {
  return epochs * Math.ceil(batchesPerEpoch / accumulation);
}

/** Schedules and limits of a run. */
export interface LoopOptions {
  /** Optimizer steps to run (`--max-train-steps`, or from `stepsForEpochs`). */
  maxTrainSteps: number;
  /** Optimizer steps per epoch (for the epoch shown and epoch schedules). */
  stepsPerEpoch: number;
  /** Read the loss back every N optimizer steps (default 10). */
  logEvery?: number;
  /** `--save-every-n-steps`. */
  saveEveryNSteps?: number;
  /** `--save-every-n-epochs`. */
  saveEveryNEpochs?: number;
  /** Write a state folder with each checkpoint (`--save-state`). */
  saveState?: boolean;
  /** `--sample-every-n-steps`. */
  sampleEveryNSteps?: number;
  /** `--sample-every-n-epochs`. */
  sampleEveryNEpochs?: number;
  /** `--sample-at-first`. */
  sampleAtFirst?: boolean;
}

/** What the loop calls out to. */
export interface LoopHooks {
  /** Latents `[B, 4, h, w]` and text context `[B, T, D]` of a batch (the loop disposes them). */
  encode(batch: TrainBatch): [Tensor, Tensor] | Promise<[Tensor, Tensor]>;
  /** The learning rate of an optimizer step (for the progress line and log). */
  lrAt(step: number): number;
  /** Writes the model file; returns its path (named in messages). */
  saveCheckpoint?(at: CheckpointAt): Promise<string>;
  /** Writes a state folder. */
  saveState?(at: CheckpointAt): Promise<string>;
  /** Makes sample images at `step` (0 = before training). */
  sample?(step: number): Promise<void>;
  /** Receives each progress line. */
  progress?(line: string, info: ProgressInfo): void;
  /** The log folder, if any. */
  log?: RunLog;
}

/** How a run ended. */
export interface LoopResult {
  /** Optimizer steps done. */
  steps: number;
  /** Mean loss of each log interval, in order. */
  losses: number[];
  /** Files and folders written, in order. */
  saved: string[];
}

/**
 * Runs the loop until `maxTrainSteps`, then saves the final checkpoint (and state with
 * `saveState`). A NaN or infinite loss stops it with `NonFiniteLossError`, naming the last good
 * checkpoint; nothing is saved after the bad step.
 *
 * @example
 * ```ts ignore
 * const result = await runTrainingLoop(stepper, loader, { maxTrainSteps: 100, stepsPerEpoch: 10 }, hooks);
 * ```
 */
export async function runTrainingLoop(
  stepper: TrainStepper,
  loader: DataLoader,
  options: LoopOptions,
  hooks: LoopHooks,
): Promise<LoopResult> {
  const total = options.maxTrainSteps, perEpoch = Math.max(1, options.stepsPerEpoch);
  if (!Number.isInteger(total) || total < 1) {
    throw new ConfigError(`max_train_steps must be a whole number >= 1, got ${total}`);
  }
  const logEvery = options.logEvery ?? 10;
  const epochs = Math.ceil(total / perEpoch);
  const smoother = new LossSmoother(), meter = new RateMeter();
  const saved: string[] = [], losses: number[] = [];
  let lastGood = "none yet", lastRead = stepper.step;
  const start = performance.now();

  const check = async (): Promise<void> => {
    const from = lastRead, to = stepper.step;
    const r = await stepper.drainLoss();
    lastRead = to;
    if (r.count === 0) return;
    if (!r.finite) {
      throw new NonFiniteLossError(
        `The loss became NaN or infinite between steps ${from + 1} and ${to}; training stopped. ` +
          `The last good checkpoint is ${lastGood}. Try a lower learning rate, --max-grad-norm 1, ` +
          "f32 base weights, or a smaller --noise-offset",
      );
    }
    losses.push(r.mean);
    smoother.add(r.mean);
    const info: ProgressInfo = {
      step: to,
      totalSteps: total,
      epoch: Math.min(epochs, loader.epoch),
      totalEpochs: epochs,
      itPerSec: meter.perSecond,
      loss: smoother.value,
      lr: hooks.lrAt(Math.max(0, to - 1)),
    };
    hooks.progress?.(formatProgress(info), info);
    await hooks.log?.add({
      step: to,
      epoch: info.epoch,
      loss: r.mean,
      smoothed: smoother.value,
      lr: info.lr,
      elapsed: (performance.now() - start) / 1000,
    });
  };

  const save = async (at: CheckpointAt): Promise<void> => {
    await check(); // never save weights after a bad step
    if (hooks.saveCheckpoint) {
      lastGood = await hooks.saveCheckpoint(at);
      saved.push(lastGood);
    }
    if (options.saveState && hooks.saveState) saved.push(await hooks.saveState(at));
  };

  if (options.sampleAtFirst && stepper.step === 0) await hooks.sample?.(0);
  meter.tick();
  while (stepper.step < total) {
    const batch = await loader.next();
    const [latents, context] = await hooks.encode(batch);
    let stepped: boolean;
    try {
      stepped = stepper.run(latents, context, batch.lossWeights, batch.endOfEpoch);
    } finally {
      latents.dispose();
      context.dispose();
    }
    if (!stepped) continue;
    meter.tick();
    const s = stepper.step;
    // the loader says where epochs end (an epoch's last batch always completes a step)
    const epochDone = batch.endOfEpoch ? batch.epoch : 0;
    if (s % logEvery === 0) await check();
    if (s < total) {
      if (options.saveEveryNSteps && s % options.saveEveryNSteps === 0) await save({ step: s });
      if (epochDone && options.saveEveryNEpochs && epochDone % options.saveEveryNEpochs === 0) {
        await save({ epoch: epochDone });
      }
    }
    const sampleNow = (options.sampleEveryNSteps && s % options.sampleEveryNSteps === 0) ||
      (epochDone && options.sampleEveryNEpochs && epochDone % options.sampleEveryNEpochs === 0);
    if (sampleNow && hooks.sample) {
      await check();
      await hooks.sample(s);
    }
  }
  await save("final");
  return { steps: stepper.step, losses, saved };
}
