/**
 * The training data order: every dataset's images bucketed, each epoch's batches shuffled from a
 * seeded stream (kohya reseeds with `seed + epoch`), captions augmented and flips drawn from the
 * same stream, so a saved position (epoch, batch, stream offset) resumes the exact sequence.
 * Images come through an injected loader (`loadTrainingImage` on disk), so this file stays
 * portable.
 *
 * @module
 */
import {
  assignBuckets,
  type BucketChoice,
  type BucketPlan,
  epochBatches,
  type Size,
} from "./buckets.ts";
import { processCaption } from "./captions.ts";
import type { DatasetConfig } from "./dataset_config.ts";
import { ConfigError } from "./errors.ts";
import { Rng } from "./random.ts";

/** One image of a loaded dataset (see `ImageRecord` in `folders_fs.ts`). */
export interface LoaderImage {
  /** Where to load it from. */
  path: string;
  /** Its caption before augmentation. */
  caption: string;
  /** Size after EXIF orientation. */
  size: Size;
  /** Repeats per epoch. */
  repeats: number;
  /** Index of its subset in the dataset config. */
  subset: number;
  /** Loss weight (prior-loss weight for reg images). */
  lossWeight: number;
}

/** A dataset to draw from: its config and images. */
export interface LoaderDataset {
  /** The config (bucketing, batch size, subsets' caption settings). */
  config: DatasetConfig;
  /** The images with repeats. */
  images: readonly LoaderImage[];
}

/** Loads one image for its bucket as `[3, H, W]` floats in [-1, 1]. */
export type ImageLoader = (
  path: string,
  choice: BucketChoice,
  options: { flip: boolean },
) => Promise<Float32Array>;

/** One batch: images of one bucket size. */
export interface TrainBatch {
  /** Bucket `[width, height]`. */
  size: Size;
  /** `[B, 3, H, W]` pixels in [-1, 1], or `[B, C, h, w]` latents when loading from a cache. */
  pixels: Float32Array;
  /** Augmented captions. */
  captions: string[];
  /** Per-sample loss weights. */
  lossWeights: number[];
  /** Source files (for messages). */
  paths: string[];
  /** The epoch it belongs to (1-based). */
  epoch: number;
  /** Whether it is the epoch's last batch (the epoch ends after it). */
  endOfEpoch: boolean;
}

/** Where the loader is: enough to resume the exact sequence. */
export interface LoaderPosition {
  /** Epoch (1-based). */
  epoch: number;
  /** Batches already taken in this epoch. */
  batch: number;
  /** The epoch stream's offset after those batches. */
  rngOffset: number;
}

interface Planned {
  dataset: number;
  items: (LoaderImage & { choice: BucketChoice })[];
}

/**
 * Batches for training, epoch after epoch.
 *
 * @example
 * ```ts
 * import { DataLoader } from "./data_loader.ts";
 * import { datasetFromFolders, loadDataset } from "./folders_fs.ts";
 * import { loadTrainingImage } from "./images_fs.ts";
 * const ds = await loadDataset(await datasetFromFolders("train_images"));
 * const loader = new DataLoader([ds], { seed: 42, loadImage: loadTrainingImage });
 * const batch = await loader.next();
 * console.log(batch.size, batch.captions);
 * ```
 */
export class DataLoader {
  readonly #datasets: readonly LoaderDataset[];
  readonly #plans: BucketPlan<LoaderImage>[];
  readonly #seed: number;
  readonly #load: ImageLoader;
  #epoch = 1;
  #batch = 0;
  #rng: Rng;
  #order: Planned[];

  /** Buckets every dataset and prepares epoch 1. */
  constructor(
    datasets: readonly LoaderDataset[],
    options: { seed: number; loadImage: ImageLoader },
  ) {
    if (datasets.length === 0) throw new ConfigError("DataLoader needs at least one dataset");
    this.#datasets = datasets;
    this.#seed = options.seed;
    this.#load = options.loadImage;
    this.#plans = datasets.map((d) =>
      assignBuckets(d.images.filter((i) => i.repeats > 0), {
        resolution: d.config.resolution,
        enableBucket: d.config.enableBucket,
        minBucketReso: d.config.minBucketReso,
        maxBucketReso: d.config.maxBucketReso,
        bucketResoSteps: d.config.bucketResoSteps,
        noUpscale: d.config.bucketNoUpscale,
      })
    );
    [this.#rng, this.#order] = this.#plan(1);
  }

  /** The bucket plans, one per dataset (for the bucket table). */
  get plans(): readonly BucketPlan<LoaderImage>[] {
    return this.#plans;
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    return this.#order.length;
  }

  #plan(epoch: number): [Rng, Planned[]] {
    const rng = new Rng(this.#seed + epoch);
    const all = this.#plans.flatMap((plan, d) =>
      epochBatches(plan, this.#datasets[d]!.config.batchSize, rng).map((b) => ({
        dataset: d,
        items: b.items,
      }))
    );
    return [rng, this.#plans.length > 1 ? rng.shuffle(all) : all];
  }

  /** The position to save. */
  position(): LoaderPosition {
    return { epoch: this.#epoch, batch: this.#batch, rngOffset: this.#rng.offset };
  }

  /** Continues from a saved position. */
  seek(pos: LoaderPosition): void {
    [this.#rng, this.#order] = this.#plan(pos.epoch);
    if (pos.batch > this.#order.length) {
      throw new ConfigError(
        `The saved data position (batch ${pos.batch} of epoch ${pos.epoch}) is past the ` +
          `${this.#order.length} batches of an epoch; the dataset changed since the state was saved`,
      );
    }
    this.#epoch = pos.epoch;
    this.#batch = pos.batch;
    this.#rng.offset = pos.rngOffset;
  }

  /** The next batch (moving to the next epoch after the last one). */
  async next(): Promise<TrainBatch> {
    if (this.#batch >= this.#order.length) {
      this.#epoch++;
      this.#batch = 0;
      [this.#rng, this.#order] = this.#plan(this.#epoch);
    }
    const planned = this.#order[this.#batch++]!;
    const config = this.#datasets[planned.dataset]!.config;
    const jobs = planned.items.map((item) => {
      const subset = config.subsets[item.subset]!;
      const caption = processCaption(item.caption, subset, this.#rng, this.#epoch);
      const flip = subset.flipAug && this.#rng.next() < 0.5;
      return { item, caption, flip };
    });
    const images = await Promise.all(
      jobs.map((j) => this.#load(j.item.path, j.item.choice, { flip: j.flip })),
    );
    const [w, h] = planned.items[0]!.choice.bucket;
    const per = images[0]!.length;
    const pixels = new Float32Array(images.length * per);
    images.forEach((img, i) => {
      if (img.length !== per) {
        throw new ConfigError(
          `The image loader gave ${img.length} values for ${jobs[i]!.item.path} but ${per} for ` +
            `another image of the same ${w}x${h} bucket; it must give one size per bucket`,
        );
      }
      pixels.set(img, i * per);
    });
    return {
      size: [w, h],
      pixels,
      captions: jobs.map((j) => j.caption),
      lossWeights: jobs.map((j) => j.item.lossWeight),
      paths: jobs.map((j) => j.item.path),
      epoch: this.#epoch,
      endOfEpoch: this.#batch === this.#order.length,
    };
  }

  /** The current epoch (1-based). */
  get epoch(): number {
    return this.#epoch;
  }
}
