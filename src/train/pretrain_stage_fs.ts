/**
 * What both pretraining stages share: the run they belong to, the loop that steps, logs and
 * saves, the learning-rate schedule, the images as a tensor, and the resumable state.
 *
 * @module
 */
import { join } from "node:path";
import type { AdamW } from "../ops/adamw.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../ops/tensor.ts";
import type { CLIPTextModel } from "../nn/clip.ts";
import type { Module } from "../nn/module.ts";
import { serializeSafetensors, toSafetensorsInputs } from "../nn/safetensors.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import type { EmaWeights } from "./ema.ts";
import { ConfigError } from "./errors.ts";
import { lrSchedule } from "./lr_schedule.ts";
import type { PretrainOptions, PretrainSource } from "./pretrain_options.ts";
import { EMA_FILE, type PretrainResume, type PretrainStateExtra } from "./pretrain_resume_fs.ts";
import { formatProgress, LossSmoother, RateMeter } from "./progress.ts";
import type { RunLog } from "./run_log_fs.ts";
import type { StepperState } from "./train_step.ts";
import { saveTrainState } from "./train_state_fs.ts";

/** One invocation of `mod.ts pretrain`: its settings, models and clock. */
export interface PretrainRun {
  /** The settings. */
  options: PretrainOptions;
  /** The captioned image stream. */
  source: PretrainSource;
  /** Model size. */
  size: "mini" | "tiny";
  /** Image side. */
  side: number;
  /** The three models (the U-Net stage freezes the VAE). */
  models: { vae: AutoencoderKL; textEncoder: CLIPTextModel; unet: UNet2DConditionModel };
  /** The state `--resume` continues from, if any. */
  resumed: PretrainResume | null;
  /** Wall seconds of the run, earlier invocations' included. */
  wall(): number;
}

/** The mean loss of a stage's first and last logged interval. */
export interface StageLosses {
  /** Which stage. */
  stage: "vae" | "unet";
  /** First interval's mean. */
  first: number;
  /** Last interval's mean. */
  last: number;
}

/** A stage's stepper as the loop sees it. */
export interface StageStepper {
  /** Steps taken. */
  step: number;
  /** Reads and resets the loss sum. */
  drainLoss(): Promise<{ mean: number; finite: boolean }>;
}

/**
 * Saves the resumable state of `stage` at the stepper's position into `<out>/state` (its `extra`
 * records what `--resume` checks), and an EMA of `weights` beside it (`ema.safetensors`, in the same
 * atomic folder write; `--resume` checks that its update count is the state's step).
 */
export async function saveStageState(
  run: PretrainRun,
  stage: "vae" | "unet",
  weights: ReadonlyMap<string, Tensor>,
  optimizer: AdamW,
  stepper: StepperState,
  ema?: EmaWeights,
): Promise<void> {
  const o = run.options;
  const extra: PretrainStateExtra = {
    stage,
    seed: o.seed,
    size: run.size,
    batchSize: o.batchSize,
    imageSize: run.side,
    scalingFactor: run.models.vae.scalingFactor,
    wallSeconds: run.wall(),
    emaDecay: o.emaDecay ?? 0,
  };
  const files: Record<string, Uint8Array> = {};
  if (ema) {
    const s = ema.state(), names = [...weights.keys()];
    const shadow = new Map(s.shadow.map((t, i) => [names[i]!, t]));
    const meta = { updates: String(s.updates), decay: String(ema.decay) };
    files[EMA_FILE] = serializeSafetensors(await toSafetensorsInputs(shadow), meta);
  }
  await saveTrainState(join(o.out, "state"), weights, optimizer, {
    current_epoch: 1,
    current_step: stepper.step,
    stepper,
    loader: { epoch: 1, batch: stepper.step, rngOffset: 0 },
    extra: { ...extra },
  }, files);
}

/**
 * Steps until `total`, reading the loss every `logEvery` steps into the log and a progress
 * line, saving every `saveEveryNSteps` and at the end. A non-finite loss stops the run.
 */
export async function runStage(
  run: PretrainRun,
  stage: "vae" | "unet",
  total: number,
  lrAt: (step: number) => number,
  log: RunLog,
  stepper: StageStepper,
  step: (i: number) => void,
  save: () => Promise<void>,
): Promise<StageLosses> {
  const o = run.options;
  const logEvery = o.logEvery ?? 10, saveEvery = o.saveEveryNSteps ?? 0;
  const print = o.print ?? ((l: string) => console.log(l));
  const smooth = new LossSmoother();
  const rate = new RateMeter();
  let first = NaN, last = NaN;
  rate.tick();
  while (stepper.step < total) {
    step(stepper.step);
    rate.tick();
    const s = stepper.step;
    const saveNow = saveEvery > 0 && s % saveEvery === 0;
    if (s % logEvery === 0 || s === total || saveNow) {
      const l = await stepper.drainLoss();
      if (!l.finite) {
        throw new ConfigError(
          `The ${stage} stage's loss became ${l.mean} at step ${s}; lower the learning rate`,
        );
      }
      if (Number.isNaN(first)) first = l.mean;
      last = l.mean;
      smooth.add(l.mean);
      const lr = lrAt(s - 1);
      await log.add({
        step: s,
        epoch: 1,
        loss: l.mean,
        smoothed: smooth.value,
        lr,
        elapsed: run.wall(),
      });
      const progress = formatProgress({
        step: s,
        totalSteps: total,
        epoch: 1,
        totalEpochs: 1,
        itPerSec: rate.perSecond,
        loss: smooth.value,
        lr,
      });
      print(`${stage} ${progress}`);
    }
    if (saveNow && s < total) await save();
  }
  await save();
  return { stage, first, last };
}

/** Base learning rate times a cosine decay to 0 after `warmup` steps (a tenth of short runs). */
export function stageLr(base: number, total: number, warmup: number): (step: number) => number {
  const f = lrSchedule({
    name: "cosine",
    totalSteps: total,
    warmup: Math.min(warmup, Math.floor(total / 10)),
  });
  return (s) => base * f(s);
}

// rgb: B images of [H, W, 3] bytes -> [B, 3, H, W] in [-1, 1]
/** Images in [-1, 1] as a `[B, 3, H, W]` tensor. */
export function imagesTensor(rgb: readonly Uint8Array[], side: number): Tensor {
  const B = rgb.length, hw = side * side;
  const out = new Float32Array(B * 3 * hw);
  rgb.forEach((img, b) => {
    if (img.length !== 3 * hw) {
      throw new ConfigError(`Item ${b} of a batch has ${img.length} bytes; expected ${3 * hw}`);
    }
    for (let p = 0; p < hw; p++) {
      for (let c = 0; c < 3; c++) out[(b * 3 + c) * hw + p] = img[p * 3 + c]! / 127.5 - 1;
    }
  });
  return tensor(out, [B, 3, side, side]);
}

/** A module's trainable weights by `<prefix>.<name>`, the names the state folder saves. */
export function trainableByName(m: Module, prefix: string): Map<string, Tensor> {
  return new Map(
    m.namedParameters().filter(([, p]) => p.trainable).map(([k, p]) => [
      `${prefix}.${k}`,
      p.value,
    ]),
  );
}

/** Puts saved weights in place (before an optimizer takes the parameters' tensors). */
export function adopt(models: Record<string, Module>, weights: Map<string, Tensor>): void {
  for (const [prefix, m] of Object.entries(models)) {
    const mine = new Map<string, Tensor>();
    for (const [k, t] of weights) {
      if (k.startsWith(prefix + ".")) mine.set(k.slice(prefix.length + 1), t);
    }
    m.loadStateDict(mine, { strict: false, copy: true });
  }
}

/** The settings a stage's HTML report lists. */
export function reportSettings(run: PretrainRun, steps: number): Record<string, string | number> {
  const o = run.options;
  return { command: o.command, size: run.size, steps, batch_size: o.batchSize, seed: o.seed };
}
