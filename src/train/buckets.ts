/**
 * Aspect-ratio buckets with kohya sd-scripts' rules (`model_util.make_bucket_resolutions` and
 * `train_util.BucketManager`): bucket sizes keep the area of the base resolution in steps of 64,
 * each image goes to the bucket of nearest aspect ratio, is scaled to cover it and centre-cropped;
 * with `noUpscale` buckets come from the image sizes themselves. Batches never mix buckets.
 *
 * @module
 */
import { ConfigError, DatasetError } from "./errors.ts";
import type { Rng } from "./random.ts";

/** A width and height in pixels. */
export type Size = readonly [width: number, height: number];

/** Bucketing settings (kohya's dataset keys). */
export interface BucketOptions {
  /** Base resolution `[width, height]`; buckets keep its area. */
  resolution: Size;
  /** Use aspect buckets (`enable_bucket`, default false: one bucket of `resolution`). */
  enableBucket?: boolean;
  /** Smallest bucket side (`min_bucket_reso`, default 256). */
  minBucketReso?: number;
  /** Largest bucket side (`max_bucket_reso`, default 1024). */
  maxBucketReso?: number;
  /** Bucket side step (`bucket_reso_steps`, default 64). */
  bucketResoSteps?: number;
  /** Never upscale; buckets follow the image sizes (`bucket_no_upscale`, default false). */
  noUpscale?: boolean;
}

/** Where one image goes: its bucket, the size it is resized to, and the crop offset. */
export interface BucketChoice {
  /** The bucket `[width, height]`. */
  bucket: Size;
  /** The size the image is resized to before the centre crop. */
  resized: Size;
  /** Bucket aspect ratio minus image aspect ratio. */
  arError: number;
}

// maxReso: [W, H] -> list of [w, h] sorted by width then height
/**
 * kohya's `make_bucket_resolutions`: the square `floor(sqrt(area) / step) * step` plus, for every
 * width from `minSize` to `maxSize` in steps, the height `min(maxSize, floor(area / width / step) *
 * step)` when it is at least `minSize`, in both orientations; sorted.
 *
 * @example
 * ```ts
 * import { makeBucketResolutions } from "./buckets.ts";
 * console.log(makeBucketResolutions([512, 512]).length); // 17
 * ```
 */
export function makeBucketResolutions(
  maxReso: Size,
  minSize = 256,
  maxSize = 1024,
  divisible = 64,
): Size[] {
  const area = maxReso[0] * maxReso[1];
  const seen = new Map<string, Size>();
  const add = (w: number, h: number): void => void seen.set(`${w}x${h}`, [w, h]);
  const side = Math.floor(Math.sqrt(area) / divisible) * divisible;
  add(side, side);
  for (let w = minSize; w <= maxSize; w += divisible) {
    const h = Math.min(maxSize, Math.floor(Math.floor(area / w) / divisible) * divisible);
    if (h >= minSize) {
      add(w, h);
      add(h, w);
    }
  }
  return [...seen.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** Python's `int(x + 0.5)` for x >= 0. */
function roundHalfUp(x: number): number {
  return Math.floor(x + 0.5);
}

/**
 * Chooses buckets for images, one call per image, as kohya's `BucketManager.select_bucket`.
 *
 * @example
 * ```ts
 * import { BucketSelector } from "./buckets.ts";
 * const s = new BucketSelector({ resolution: [512, 512], enableBucket: true });
 * console.log(s.select([800, 600]).bucket); // [576, 448]
 * ```
 */
export class BucketSelector {
  readonly #predefined: Size[];
  readonly #predefinedKeys: Set<string>;
  readonly #noUpscale: boolean;
  readonly #maxArea: number;
  readonly #steps: number;

  /** Builds the predefined buckets from the options. */
  constructor(options: BucketOptions) {
    const [w, h] = options.resolution;
    this.#steps = options.bucketResoSteps ?? 64;
    this.#maxArea = w * h;
    const enable = options.enableBucket ?? false;
    this.#noUpscale = enable && (options.noUpscale ?? false);
    const min = options.minBucketReso ?? 256, max = options.maxBucketReso ?? 1024;
    if (enable && !this.#noUpscale) {
      if (max < w || max < h) {
        throw new ConfigError(
          `max_bucket_reso ${max} is smaller than the resolution ${w}x${h}; raise max_bucket_reso`,
        );
      }
      if (max < min) {
        throw new ConfigError(`max_bucket_reso ${max} is smaller than min_bucket_reso ${min}`);
      }
    }
    this.#predefined = enable ? makeBucketResolutions([w, h], min, max, this.#steps) : [[w, h]];
    this.#predefinedKeys = new Set(this.#predefined.map(([a, b]) => `${a}x${b}`));
  }

  /** The bucket sizes images are chosen from (empty with `noUpscale`). */
  get predefined(): readonly Size[] {
    return this.#noUpscale ? [] : this.#predefined;
  }

  /** The bucket and resize size of an image of size `[width, height]`. */
  select(size: Size): BucketChoice {
    const [iw, ih] = size;
    const ar = iw / ih;
    let bucket: Size, resized: Size;
    if (!this.#noUpscale) {
      bucket = this.#predefinedKeys.has(`${iw}x${ih}`) ? [iw, ih] : this.#nearest(ar);
      const scale = ar > bucket[0] / bucket[1] ? bucket[1] / ih : bucket[0] / iw;
      resized = [roundHalfUp(iw * scale), roundHalfUp(ih * scale)];
    } else {
      resized = iw * ih > this.#maxArea ? this.#shrink(ar) : [iw, ih];
      bucket = [resized[0] - resized[0] % this.#steps, resized[1] - resized[1] % this.#steps];
      if (bucket[0] === 0 || bucket[1] === 0) {
        throw new DatasetError(
          `An image of ${iw}x${ih} is smaller than the bucket step ${this.#steps}; ` +
            "remove it or turn off bucket_no_upscale",
        );
      }
    }
    return { bucket, resized, arError: bucket[0] / bucket[1] - ar };
  }

  #nearest(ar: number): Size {
    let best = 0, bestErr = Infinity;
    this.#predefined.forEach(([w, h], i) => {
      const e = Math.abs(w / h - ar);
      if (e < bestErr) [best, bestErr] = [i, e];
    });
    return this.#predefined[best]!;
  }

  #roundToSteps(x: number): number {
    const r = roundHalfUp(x);
    return r - r % this.#steps;
  }

  // kohya: shrink to the base area keeping the aspect, rounding whichever side keeps it better
  #shrink(ar: number): Size {
    const rw = Math.sqrt(this.#maxArea * ar), rh = this.#maxArea / rw;
    const bw = this.#roundToSteps(rw);
    const arW = bw / this.#roundToSteps(bw / ar);
    const bh = this.#roundToSteps(rh);
    const arH = this.#roundToSteps(bh * ar) / bh;
    return Math.abs(arW - ar) < Math.abs(arH - ar)
      ? [bw, roundHalfUp(bw / ar)]
      : [roundHalfUp(bh * ar), bh];
  }
}

/** The centre crop of a resized image down to its bucket: left and top offsets. */
export function cropOffsets(resized: Size, bucket: Size): { left: number; top: number } {
  return {
    left: Math.floor(Math.max(0, resized[0] - bucket[0]) / 2),
    top: Math.floor(Math.max(0, resized[1] - bucket[1]) / 2),
  };
}

/** One bucket with the items in it (an item appears once per repeat). */
export interface Bucket<T> {
  /** The bucket `[width, height]`. */
  size: Size;
  /** The items, repeats included. */
  items: T[];
}

/** An item to bucket: its image size and how often it repeats per epoch. */
export interface Bucketable {
  /** Image `[width, height]` (after EXIF orientation). */
  size: Size;
  /** Repeats per epoch (kohya's `num_repeats`). */
  repeats: number;
}

/** Buckets with their items, sorted by size, and the mean absolute aspect error. */
export interface BucketPlan<T> {
  /** Non-empty buckets sorted by width then height. */
  buckets: Bucket<T & { choice: BucketChoice }>[];
  /** Mean `|arError|` over images (repeats not counted). */
  meanArError: number;
}

/**
 * Puts every item in its bucket, `repeats` times each, as kohya's `make_buckets`.
 *
 * @example
 * ```ts
 * import { assignBuckets, formatBucketTable } from "./buckets.ts";
 * const plan = assignBuckets([{ size: [800, 600], repeats: 2 }], {
 *   resolution: [512, 512],
 *   enableBucket: true,
 * });
 * console.log(formatBucketTable(plan));
 * ```
 */
export function assignBuckets<T extends Bucketable>(
  items: readonly T[],
  options: BucketOptions,
): BucketPlan<T> {
  const selector = new BucketSelector(options);
  const byKey = new Map<string, Bucket<T & { choice: BucketChoice }>>();
  let arSum = 0;
  for (const item of items) {
    const choice = selector.select(item.size);
    arSum += Math.abs(choice.arError);
    const key = `${choice.bucket[0]}x${choice.bucket[1]}`;
    let b = byKey.get(key);
    if (!b) byKey.set(key, b = { size: choice.bucket, items: [] });
    for (let r = 0; r < item.repeats; r++) b.items.push({ ...item, choice });
  }
  const buckets = [...byKey.values()].sort((a, b) =>
    a.size[0] - b.size[0] || a.size[1] - b.size[1]
  );
  return { buckets, meanArError: items.length ? arSum / items.length : 0 };
}

/** kohya's bucket table: one line per bucket with its resolution and image count (repeats in). */
export function formatBucketTable<T>(plan: BucketPlan<T>): string {
  const lines = ["number of images (including repeats) per bucket:"];
  plan.buckets.forEach((b, i) => {
    lines.push(`bucket ${i}: resolution ${b.size[0]}x${b.size[1]}, count: ${b.items.length}`);
  });
  lines.push(`mean ar error (without repeats): ${plan.meanArError.toFixed(6)}`);
  return lines.join("\n");
}

/** One batch: a bucket index and its items, all of that bucket's size. */
export interface Batch<T> {
  /** Index into `plan.buckets`. */
  bucket: number;
  /** The batch's items (at most the batch size; the last of a bucket may be smaller). */
  items: T[];
}

/**
 * One epoch's batches: each bucket's items shuffled, cut into batches of `batchSize`, and the
 * batch order shuffled (kohya's `buckets_indices` + `shuffle_buckets`), all from `rng`.
 */
export function epochBatches<T>(
  plan: BucketPlan<T>,
  batchSize: number,
  rng: Rng,
): Batch<T & { choice: BucketChoice }>[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new ConfigError(`batch_size must be a whole number >= 1, got ${batchSize}`);
  }
  const batches: Batch<T & { choice: BucketChoice }>[] = [];
  plan.buckets.forEach((b, i) => {
    const items = rng.shuffle(b.items);
    for (let s = 0; s < items.length; s += batchSize) {
      batches.push({ bucket: i, items: items.slice(s, s + batchSize) });
    }
  });
  return rng.shuffle(batches);
}

/**
 * Checks that a resolution side is a multiple of the model's downsampling factor (VAE times
 * U-Net: 64 for SD 1.x) and names the nearest valid values when not.
 */
export function checkResolution(size: Size, factor: number, what = "resolution"): void {
  for (const v of size) {
    if (!Number.isInteger(v) || v < factor || v % factor !== 0) {
      const lo = Math.max(factor, Math.floor(v / factor) * factor);
      const hi = Math.max(factor, Math.ceil(v / factor) * factor);
      const near = lo === hi ? `${lo}` : `${lo} or ${hi}`;
      throw new ConfigError(
        `The ${what} ${size[0]}x${size[1]} does not fit the model: each side must be a multiple ` +
          `of ${factor} (its VAE and U-Net downsampling); use ${near} instead of ${v}`,
      );
    }
  }
}

/**
 * The side multiple a model takes: the VAE's downsampling (2 per level after the first) times
 * the U-Net's (2 per down block after the first): 8 x 8 = 64 for SD 1.x.
 *
 * @example
 * ```ts
 * import { downsamplingFactor } from "./buckets.ts";
 * console.log(downsamplingFactor({ blockOutChannels: [320, 640, 1280, 1280] }, { blockOutChannels: [128, 256, 512, 512] })); // 64
 * ```
 */
export function downsamplingFactor(
  unet: { blockOutChannels: readonly number[] },
  vae: { blockOutChannels: readonly number[] },
): number {
  return 2 ** (Math.max(1, vae.blockOutChannels.length) - 1) *
    2 ** (Math.max(1, unet.blockOutChannels.length) - 1);
}
