/**
 * The running statistics of a batch-norm U-Net in pretraining (`mod.ts pretrain --norm batch`):
 * an exact AdaBN estimate (two passes, population mean and variance, see `src/adabn`) over a few
 * batches of the training stream, each noised {@link NORM_ESTIMATE_TIMESTEPS} times with
 * timesteps spread over [0, 1000) inside every batch, written into every BatchNorm2d's `running_mean` and
 * `running_var`. Training normalizes with batch statistics and only moves the running ones by
 * a momentum average; this sets them from the data once, before the first step of a converted
 * model (so step 0 samples with statistics of its inputs) and after the last step (so sampling
 * uses the statistics of the final weights, not an average over the last steps' weights).
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { Generator, randn } from "../ops/rng.ts";
import { scope, untrack } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import { AdaBN, type AdabnBatch } from "../adabn/mod.ts";
import { addNoise } from "../schedule/training.ts";
import { type AdabnData, spreadTimesteps } from "./adabn_train.ts";
import type { UnetStageModels } from "./pretrain_unet_step.ts";

/** Batches of the training stream the estimate reads. */
export const NORM_ESTIMATE_BATCHES = 4;

/** Noised copies of each batch, each with its own spread of timesteps. */
export const NORM_ESTIMATE_TIMESTEPS = 4;

/** One batch for the estimate: images and their token ids. */
export interface NormEstimateBatch {
  /** `[B, 3, H, W]` images in [-1, 1] (the caller owns them). */
  images: Tensor;
  /** `[B, T]` token ids, row-major. */
  ids: number[];
  /** `[B, T]`. */
  shape: [number, number];
}

/**
 * Sets every BatchNorm2d's running statistics of `models.unet` by an exact AdaBN estimate over
 * `batches` (latents drawn by the frozen VAE with a generator seeded by `seed`, text context
 * from the text encoder, each batch noised {@link NORM_ESTIMATE_TIMESTEPS} times); returns the sample count
 * behind each statistic (batches x timesteps x batch size). Weights and `num_batches_tracked`
 * do not change.
 *
 * @example
 * ```ts ignore
 * const n = estimateNormStatistics(models, [{ images, ids, shape: [16, 77] }], 1);
 * ```
 */
export function estimateNormStatistics(
  models: UnetStageModels,
  batches: readonly NormEstimateBatch[],
  seed: number,
): number {
  const { vae, textEncoder, unet } = models;
  const data: AdabnData[] = batches.map((b, i) =>
    noGrad(() =>
      scope(() => {
        const gen = new Generator(seed + 7919 * (i + 1));
        const latents = scale(
          vae.sample(vae.encode(b.images), { generator: gen }),
          vae.scalingFactor,
        );
        const context = textEncoder.forward(b.ids, b.shape);
        untrack(latents);
        untrack(context);
        return { latents, context };
      })
    )
  );
  // pass j gives sample i the timestep of slot i * K + j of K * B evenly spaced ones: every
  // batch spreads over [0, 1000) as a training batch does, so each layer's inputs are normalized
  // by mixed-timestep batch statistics, as in training
  const K = NORM_ESTIMATE_TIMESTEPS;
  const runs: AdabnBatch[] = data.flatMap((d, i) => {
    const B = d.latents.shape[0]!;
    return Array.from({ length: K }, (_, j) => () => {
      const t = spreadTimesteps(B, K, j, 0, 1000);
      const noise = randn(d.latents.shape, { generator: new Generator(seed + 104729 * i + j) });
      return unet.forward(addNoise(d.latents, noise, t), t, d.context);
    });
  });
  using adabn = AdaBN.attach(unet);
  try {
    noGrad(() => adabn.estimate(runs, { method: "exact" }));
    adabn.commit();
  } finally {
    for (const d of data) [d.latents, d.context].forEach((t) => t.dispose());
  }
  return batches.reduce((n, b) => n + b.shape[0], 0) * K;
}
