/**
 * The running statistics of a batch-norm U-Net in pretraining (`mod.ts pretrain --norm batch`):
 * an exact AdaBN estimate (two passes, population mean and variance, see `src/adabn`) over a few
 * batches of the training stream, each noised at {@link ADABN_TIMESTEPS_PER_BAND} fixed
 * timesteps spread over [0, 1000), written into every BatchNorm2d's `running_mean` and
 * `running_var`. Training normalizes with batch statistics and only moves the running ones by
 * a momentum average; this sets them from the data once, before the first step of a converted
 * model (so step 0 samples with statistics of its inputs) and after the last step (so sampling
 * uses the statistics of the final weights, not an average over the last steps' weights).
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { Generator } from "../ops/rng.ts";
import { scope, untrack } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import { AdaBN } from "../adabn/mod.ts";
import { ADABN_TIMESTEPS_PER_BAND, type AdabnData, estimateTrainAdabn } from "./adabn_train.ts";
import type { UnetStageModels } from "./pretrain_unet_step.ts";

/** Batches of the training stream the estimate reads. */
export const NORM_ESTIMATE_BATCHES = 4;

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
 * from the text encoder, each batch noised at each fixed timestep); returns the sample count
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
  using adabn = AdaBN.attach(unet);
  try {
    estimateTrainAdabn(adabn, unet, data, { seed, minTimestep: 0, maxTimestep: 1000 });
    adabn.commit();
  } finally {
    for (const d of data) [d.latents, d.context].forEach((t) => t.dispose());
  }
  return batches.reduce((n, b) => n + b.shape[0], 0) * ADABN_TIMESTEPS_PER_BAND;
}
