/**
 * The AdaBN ablation's conditions and how each gets its models: the base models as they are,
 * AdaBN statistics estimated on the target's training images, or a LoRA trained with the
 * kohya-style trainer (with or without AdaBN, or with norm deltas) and loaded back from its file
 * onto a fresh copy of the base, as a user would load it.
 *
 * @module
 */
import { join } from "node:path";
import { loadStableDiffusion, type StableDiffusionModels } from "../nn/loaders_fs.ts";
import { AdaBN } from "../adabn/adabn.ts";
import { type AdabnData, type AdabnTrainMode, estimateTrainAdabn } from "../train/adabn_train.ts";
import { checkpointName } from "../train/checkpoint_names.ts";
import type { ProgressInfo } from "../train/progress.ts";
import { train } from "../train/trainer_fs.ts";
import { heldOutImageLoss, imageLatents, promptContext } from "./_demo_measure.ts";
import { applyAdabnSpecs, applyLoraSpecs } from "./_lora_spec.ts";

/** Which base model a condition starts from. */
export type ModelFamily = "bn" | "gn";

/** One condition of the ablation. */
export interface ConditionSpec {
  /** Key in the JSON and the LoRA file names. */
  key: string;
  /** Row label. */
  name: string;
  /** The batch-norm model or the group-norm one. */
  family: ModelFamily;
  /** The base as it is, AdaBN statistics alone, or a trained LoRA. */
  kind: "base" | "adabn" | "lora";
  /** The trainer's AdaBN mode (LoRA conditions on the batch-norm model). */
  adabn?: AdabnTrainMode;
  /** Train norm deltas with the LoRA (the group-norm model). */
  trainNorm?: boolean;
}

/** Every condition, in table order. */
export const CONDITIONS: readonly ConditionSpec[] = [
  { key: "base_bn", name: "base (BN)", family: "bn", kind: "base" },
  { key: "adabn_only", name: "AdaBN only (BN)", family: "bn", kind: "adabn" },
  { key: "lora_bn", name: "LoRA (BN)", family: "bn", kind: "lora" },
  {
    key: "lora_adabn_before",
    name: "LoRA + AdaBN before (BN)",
    family: "bn",
    kind: "lora",
    adabn: "before",
  },
  {
    key: "lora_adabn_during",
    name: "LoRA + AdaBN during (BN)",
    family: "bn",
    kind: "lora",
    adabn: "during",
  },
  { key: "base_gn", name: "base (GN)", family: "gn", kind: "base" },
  { key: "lora_gn", name: "LoRA (GN)", family: "gn", kind: "lora" },
  {
    key: "lora_norms_gn",
    name: "LoRA + norm deltas (GN)",
    family: "gn",
    kind: "lora",
    trainNorm: true,
  },
];

/** Models ready to measure; disposing frees them and whatever is attached. */
export interface LoadedModels extends Disposable {
  /** The models (U-Net in eval mode). */
  models: StableDiffusionModels;
}

/** Attaches a LoRA file unmerged with the AdaBN statistics it carries; dispose to detach. */
async function applyFile(models: StableDiffusionModels, file: string): Promise<Disposable> {
  const spec = { path: file, multiplier: 1 };
  const net = await applyLoraSpecs(models, [spec]);
  let adabn: AdaBN | null = null;
  try {
    adabn = await applyAdabnSpecs(models.unet, [spec], () => {});
  } catch (e) {
    net?.dispose();
    throw e;
  }
  return {
    [Symbol.dispose]: () => {
      adabn?.dispose();
      net?.dispose();
    },
  };
}

function freeModels(m: StableDiffusionModels): void {
  for (const x of [m.unet, m.vae, m.textEncoder]) x.dispose();
}

/**
 * Loads a model folder with its U-Net in eval mode (batch norm then normalizes with the running
 * statistics, not each batch's), and applies a LoRA file unmerged with the AdaBN statistics it
 * carries, if any.
 *
 * @example
 * ```ts ignore
 * using loaded = await loadForMeasure("models/mini_sd_bn", "runs/x/lora_bn.safetensors");
 * ```
 */
export async function loadForMeasure(model: string, lora?: string): Promise<LoadedModels> {
  const models = await loadStableDiffusion(model);
  let applied: Disposable | undefined;
  try {
    if (lora !== undefined) applied = await applyFile(models, lora);
  } catch (e) {
    freeModels(models);
    throw e;
  }
  return {
    models,
    [Symbol.dispose]: () => {
      applied?.[Symbol.dispose]();
      freeModels(models);
    },
  };
}

/**
 * The held-out loss of `images` with each LoRA file in turn applied to one copy of the base
 * (eval mode; each file's AdaBN statistics with it): a training run's curve from its checkpoints.
 *
 * @example
 * ```ts ignore
 * const curve = await heldOutCurve("models/mini_sd", files, images, prompts, 32);
 * ```
 */
export async function heldOutCurve(
  model: string,
  files: readonly string[],
  images: readonly Uint8Array[],
  prompts: readonly string[],
  side: number,
): Promise<number[]> {
  if (files.length === 0) return [];
  const models = await loadStableDiffusion(model);
  try {
    const out: number[] = [];
    for (const file of files) {
      using _applied = await applyFile(models, file);
      out.push(await heldOutImageLoss(models, images, prompts, side));
    }
    return out;
  } finally {
    freeModels(models);
  }
}

/**
 * AdaBN alone: attaches one band of statistics to the U-Net and estimates them on the target's
 * training images with the trainer's method (exact, its fixed timesteps, batches of
 * `batchSize`, VAE means as latents), then freezes them. Dispose the result to detach.
 *
 * @example
 * ```ts ignore
 * using adabn = estimateAdabnOnly(loaded.models, images, captions, { side: 32, seed: 1, batchSize: 4 });
 * ```
 */
export function estimateAdabnOnly(
  models: StableDiffusionModels,
  images: readonly Uint8Array[],
  captions: readonly string[],
  o: { side: number; seed: number; batchSize: number },
): AdaBN {
  const adabn = AdaBN.attach(models.unet, { bands: [0, 1000] });
  const data: AdabnData[] = [];
  try {
    for (let i = 0; i < images.length; i += o.batchSize) {
      data.push({
        latents: imageLatents(models, images.slice(i, i + o.batchSize), o.side),
        context: promptContext(models, captions.slice(i, i + o.batchSize)),
      });
    }
    estimateTrainAdabn(adabn, models.unet, data, {
      seed: o.seed,
      minTimestep: 0,
      maxTimestep: 1000,
    });
    return adabn;
  } catch (e) {
    adabn.dispose();
    throw e;
  } finally {
    for (const d of data) [d.latents, d.context].forEach((t) => t.dispose());
  }
}

/** The training settings every LoRA condition shares. */
export interface LoraSettings {
  /** The base model folder. */
  model: string;
  /** The kohya data folder of the target's training images (`.txt` captions). */
  dataDir: string;
  /** Where the LoRA file goes. */
  outputDir: string;
  /** Optimizer steps. */
  steps: number;
  /** Rank (alpha equal: scale 1). */
  rank: number;
  /** Learning rate. */
  learningRate: number;
  /** Batch size. */
  batchSize: number;
  /** The run seed (data order, noise, adapter init). */
  seed: number;
  /** Training resolution. */
  side: number;
  /** Steps between the checkpoints the held-out curve is measured on. */
  evalEvery: number;
}

/** A trained LoRA: its files and the trainer's smoothed loss after each step. */
export interface TrainedLora {
  /** The final LoRA file (with AdaBN statistics when trained with AdaBN). */
  file: string;
  /** The checkpoints every `evalEvery` steps, then the final file. */
  checkpoints: { step: number; file: string }[];
  /** Smoothed training loss after step i + 1 (the trainer's progress value, logged every step). */
  curve: number[];
}

/**
 * Trains one condition's LoRA with the kohya-style trainer (U-Net and text encoder, cached
 * latents, constant learning rate, the loss read back every step, a checkpoint every
 * `evalEvery` steps).
 *
 * @example
 * ```ts ignore
 * const t = await trainCondition(CONDITIONS[3]!, settings, () => {});
 * console.log(t.file, t.curve.at(-1));
 * ```
 */
export async function trainCondition(
  c: ConditionSpec,
  s: LoraSettings,
  onStep: (line: string, info: ProgressInfo) => void,
): Promise<TrainedLora> {
  const curve: number[] = [];
  const r = await train({
    pretrainedModelNameOrPath: s.model,
    trainDataDir: s.dataDir,
    captionExtension: ".txt",
    outputDir: s.outputDir,
    outputName: c.key,
    resolution: s.side,
    trainBatchSize: s.batchSize,
    networkDim: s.rank,
    networkAlpha: s.rank,
    learningRate: s.learningRate,
    maxTrainSteps: s.steps,
    saveEveryNSteps: s.evalEvery,
    cacheLatents: true,
    logEvery: 1,
    seed: s.seed,
    ...(c.adabn ? { adabn: c.adabn } : {}),
    ...(c.trainNorm ? { trainNorm: true } : {}),
  }, {
    progress: (line, info) => {
      curve[info.step - 1] = info.loss;
      onStep(line, info);
    },
  });
  r.adabn?.dispose();
  r.network.dispose();
  for (const m of [r.models.unet, r.models.vae, r.models.textEncoder]) m.dispose();
  const checkpoints = [];
  for (let step = s.evalEvery; step < s.steps; step += s.evalEvery) {
    checkpoints.push({ step, file: join(s.outputDir, checkpointName(c.key, { step })) });
  }
  checkpoints.push({ step: s.steps, file: r.output });
  return { file: r.output, checkpoints, curve };
}

/**
 * The first checkpoint step whose held-out loss is at or below `threshold`; `maxSteps` with
 * `reached: false` when none is.
 *
 * @example
 * ```ts
 * import { stepsToThreshold } from "./_adabn_ablation_conditions.ts";
 * console.log(stepsToThreshold([10, 20, 30], [0.3, 0.2, 0.1], 0.2, 30)); // { steps: 20, reached: true }
 * ```
 */
export function stepsToThreshold(
  steps: readonly number[],
  losses: readonly number[],
  threshold: number,
  maxSteps: number,
): { steps: number; reached: boolean } {
  const i = losses.findIndex((v) => v <= threshold);
  return i < 0 ? { steps: maxSteps, reached: false } : { steps: steps[i]!, reached: true };
}
