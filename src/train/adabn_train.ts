/**
 * AdaBN in the trainer (`--adabn before|during`, `--adabn_bands`): checks the model has batch
 * norms, estimates the statistics on the training images before the first step (exact method,
 * then frozen), and rewrites each saved LoRA file with the statistics in it.
 *
 * Timesteps of the estimate: per band, {@link ADABN_TIMESTEPS_PER_BAND} noised copies of each
 * batch whose samples spread evenly over the part of the band the trainer draws from
 * (`[minTimestep, maxTimestep)`), every copy with different timesteps
 * ({@link spreadTimesteps}). A batch mixes timesteps, as a training batch does, so each layer
 * sees inputs normalized as in training (one timestep per batch gave the batch-norm mini SD a
 * held-out loss of 0.141 against 0.062 with spread ones); every band gets the same number of
 * samples (a random draw can leave a narrow band empty); the estimate is the same on every run
 * and resume, and the stepper's generator is untouched, so a run's noise and timesteps do not
 * change with `--adabn`.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { Generator, randn } from "../ops/rng.ts";
import type { Tensor } from "../ops/tensor.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import { SafetensorsFile, writeSafetensors } from "../nn/safetensors_fs.ts";
import { addNoise } from "../schedule/training.ts";
import { AdaBN, type AdabnBatch, TimestepBands } from "../adabn/mod.ts";
import { fileWithAdabnStatistics } from "../adabn/file.ts";
import { ConfigError } from "./errors.ts";
import {
  DataLoader,
  type ImageLoader,
  type LoaderDataset,
  type TrainBatch,
} from "./data_loader.ts";

/** The trainer's AdaBN modes: estimate then freeze, or estimate then adapt at every step. */
export type AdabnTrainMode = "before" | "during";

/** Timesteps per band in the estimate (see the module notes). */
export const ADABN_TIMESTEPS_PER_BAND = 4;

/** One batch of training data for the estimate: clean latents and their text context. */
export interface AdabnData {
  /** `[B, C, h, w]` clean latents (already scaled by the VAE's factor). */
  latents: Tensor;
  /** `[B, T, D]` text context. */
  context: Tensor;
}

/**
 * Checks `--adabn` and `--adabn_bands` before anything loads.
 *
 * @example
 * ```ts
 * import { checkAdabnOptions } from "./adabn_train.ts";
 * console.log(checkAdabnOptions("before", [0, 500, 1000])); // [0, 500, 1000]
 * ```
 */
export function checkAdabnOptions(mode: string | undefined, bands?: readonly number[]): number[] {
  if (mode === undefined) {
    if (bands !== undefined) {
      throw new ConfigError("--adabn_bands needs --adabn before or --adabn during; add one");
    }
    return [0, 1000];
  }
  if (mode !== "before" && mode !== "during") {
    throw new ConfigError(`--adabn is "before" or "during", got "${mode}"; pick one`);
  }
  try {
    return [...new TimestepBands(bands ?? [0, 1000]).boundaries];
  } catch (e) {
    throw new ConfigError(`--adabn_bands: ${(e as Error).message}`);
  }
}

/**
 * Attaches AdaBN to the U-Net, or throws a ConfigError naming the alternative when it has no
 * batch norm (every SD checkpoint: GroupNorm).
 */
export function attachTrainAdabn(unet: UNet2DConditionModel, bands: readonly number[]): AdaBN {
  if (unet.config.norm !== "batch") {
    throw new ConfigError(
      "--adabn needs a model with batch norm (U-Net norm: batch); SD's U-Net uses GroupNorm: " +
        "train norm deltas instead (--network_args train_norm=True, as LyCORIS)",
    );
  }
  return AdaBN.attach(unet, { bands });
}

/** The part `[lo, hi)` of each band inside `[min, max)`; bands outside it are left out. */
export function adabnBandRanges(
  bands: readonly number[],
  min: number,
  max: number,
): [number, number][] {
  const out: [number, number][] = [];
  for (let k = 0; k + 1 < bands.length; k++) {
    const lo = Math.max(bands[k]!, min), hi = Math.min(bands[k + 1]!, max);
    if (hi > lo) out.push([lo, hi]); // else the trainer never draws there: base statistics stay
  }
  return out;
}

/**
 * Timesteps of copy `pass` of `passes` of a batch of `B`: sample b gets slot `b * passes + pass`
 * of `B * passes` evenly spaced points of `[lo, hi)`, so each copy spreads over the range and
 * the copies together cover it evenly.
 *
 * @example
 * ```ts
 * import { spreadTimesteps } from "./adabn_train.ts";
 * console.log(spreadTimesteps(2, 2, 0, 0, 1000)); // [125, 625]
 * ```
 */
export function spreadTimesteps(
  B: number,
  passes: number,
  pass: number,
  lo: number,
  hi: number,
): number[] {
  return Array.from(
    { length: B },
    (_, b) => Math.floor(lo + (b * passes + pass + 0.5) * (hi - lo) / (passes * B)),
  );
}

/**
 * Estimates the statistics with the exact method over every data batch noised at every fixed
 * timestep (the noise of each pair is seeded, so both passes see the same inputs), then
 * freezes them. The caller owns `data`.
 */
export function estimateTrainAdabn(
  adabn: AdaBN,
  unet: UNet2DConditionModel,
  data: readonly AdabnData[],
  options: { seed: number; minTimestep: number; maxTimestep: number },
): void {
  const ranges = adabnBandRanges(adabn.bands.boundaries, options.minTimestep, options.maxTimestep);
  const K = ADABN_TIMESTEPS_PER_BAND;
  const batches: AdabnBatch[] = data.flatMap((d, i) =>
    ranges.flatMap(([lo, hi], k) =>
      Array.from({ length: K }, (_, j) => () => {
        const t = spreadTimesteps(d.latents.shape[0]!, K, j, lo, hi);
        const g = new Generator(options.seed + 15485863 + i * 1009 + k * K + j);
        const noisy = addNoise(d.latents, randn(d.latents.shape, { generator: g }), t);
        return unet.forward(noisy, t, d.context);
      })
    )
  );
  noGrad(() => adabn.estimate(batches, { method: "exact" }));
}

/**
 * Estimates on each training image once (a loader over the datasets with one repeat each: its
 * own bucket and an augmented caption), see {@link estimateTrainAdabn}; `data` turns a batch
 * into latents and context. Returns the number of batches.
 */
export async function estimateOnTrainingImages(
  adabn: AdaBN,
  unet: UNet2DConditionModel,
  datasets: readonly LoaderDataset[],
  options: {
    seed: number;
    loadImage: ImageLoader;
    data: (batch: TrainBatch) => AdabnData;
    minTimestep: number;
    maxTimestep: number;
  },
): Promise<number> {
  const once = new DataLoader(
    datasets.map((d) => ({
      ...d,
      images: d.images.map((i) => ({ ...i, repeats: Math.min(i.repeats, 1) })),
    })),
    { seed: options.seed, loadImage: options.loadImage },
  );
  const data: AdabnData[] = [];
  try {
    for (let b = 0; b < once.batchesPerEpoch; b++) data.push(options.data(await once.next()));
    estimateTrainAdabn(adabn, unet, data, options);
  } finally {
    for (const d of data) [d.latents, d.context].forEach((t) => t.dispose());
  }
  return data.length;
}

/** Rewrites a saved LoRA file with the AdaBN statistics (and their metadata) in it. */
export async function addAdabnToFile(path: string, adabn: AdaBN): Promise<void> {
  const snapshot = await adabn.snapshot();
  let parts;
  {
    using reader = await SafetensorsFile.open(path);
    parts = await fileWithAdabnStatistics(reader, snapshot);
  }
  await writeSafetensors(path, parts.tensors, parts.metadata);
}
