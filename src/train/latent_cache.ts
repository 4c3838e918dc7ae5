/**
 * Latent caching: each image is VAE-encoded once per (bucket, resize, crop, flip) and reused every
 * epoch, from memory and optionally from a store on disk (`--cache-latents-to-disk`). Entries are
 * keyed by a fingerprint of the VAE and by the resize and crop, so a changed VAE, resolution or
 * crop re-encodes instead of reusing stale latents. The cache serves the `DataLoader` through the
 * same loader signature as images, so batches then carry latents instead of pixels.
 *
 * @module
 */
import type { Module } from "../nn/module.ts";
import { type BucketChoice, cropOffsets, type Size } from "./buckets.ts";
import type { ImageLoader, LoaderDataset } from "./data_loader.ts";

// pixels: [3, H, W] in [-1, 1] -> [C, H / f, W / f] scaled latents
/** Encodes one image (the VAE's mean or a sample, times the scaling factor). */
export type LatentEncoder = (pixels: Float32Array, size: Size) => Promise<Float32Array>;

/** What identifies a cached latent. */
export interface LatentCacheKey {
  /** The image file. */
  path: string;
  /** Its bucket. */
  bucket: Size;
  /** The size it was resized to before the crop. */
  resized: Size;
  /** Mirrored. */
  flip: boolean;
  /** The VAE fingerprint. */
  vaeId: string;
}

/** A persistent store of latents (see `diskLatentStore` in `latent_cache_fs.ts`). */
export interface LatentStore {
  /** The latents for `key`, or undefined when absent or stale. */
  get(key: LatentCacheKey): Promise<Float32Array | undefined>;
  /** Saves latents for `key`. */
  put(key: LatentCacheKey, latents: Float32Array): Promise<void>;
}

/** The settings a cached latent must match to be reused: VAE, resize and crop. */
export function latentStamp(key: LatentCacheKey): Record<string, string> {
  const crop = cropOffsets(key.resized, key.bucket);
  return {
    format: "denoise-latents-1",
    vae: key.vaeId,
    bucket: `${key.bucket[0]}x${key.bucket[1]}`,
    resized: `${key.resized[0]}x${key.resized[1]}`,
    crop: `${crop.left},${crop.top}`,
  };
}

/** Counts of where latents came from. */
export interface LatentCacheStats {
  /** Served from memory. */
  memory: number;
  /** Read from the store. */
  stored: number;
  /** Encoded with the VAE. */
  encoded: number;
}

/**
 * Latents by image, computed once.
 *
 * @example
 * ```ts ignore
 * const cache = new LatentCache(loadTrainingImage, encode, { vaeId: await vaeFingerprint(vae) });
 * const loader = new DataLoader([dataset], { seed: 1, loadImage: cache.loader });
 * ```
 */
export class LatentCache {
  readonly #load: ImageLoader;
  readonly #encode: LatentEncoder;
  readonly #vaeId: string;
  readonly #store: LatentStore | undefined;
  readonly #memory = new Map<string, Promise<Float32Array>>();
  /** Where latents came from so far. */
  readonly stats: LatentCacheStats = { memory: 0, stored: 0, encoded: 0 };

  /** `loadImage` decodes images; `encode` runs the VAE on one. */
  constructor(
    loadImage: ImageLoader,
    encode: LatentEncoder,
    options: { vaeId: string; store?: LatentStore },
  ) {
    this.#load = loadImage;
    this.#encode = encode;
    this.#vaeId = options.vaeId;
    this.#store = options.store;
  }

  /** A loader for `DataLoader` that returns latents. */
  readonly loader: ImageLoader = (path, choice, options) => this.latents(path, choice, options);

  /** The latents of one image for its bucket. */
  latents(path: string, choice: BucketChoice, options: { flip: boolean }): Promise<Float32Array> {
    const key: LatentCacheKey = {
      path,
      bucket: choice.bucket,
      resized: choice.resized,
      flip: options.flip,
      vaeId: this.#vaeId,
    };
    const id = JSON.stringify(key);
    const hit = this.#memory.get(id);
    if (hit) {
      this.stats.memory++;
      return hit;
    }
    const p = this.#compute(key, choice);
    this.#memory.set(id, p);
    p.catch(() => this.#memory.delete(id));
    return p;
  }

  async #compute(key: LatentCacheKey, choice: BucketChoice): Promise<Float32Array> {
    const stored = await this.#store?.get(key);
    if (stored) {
      this.stats.stored++;
      return stored;
    }
    const pixels = await this.#load(key.path, choice, { flip: key.flip });
    const latents = await this.#encode(pixels, choice.bucket);
    this.stats.encoded++;
    await this.#store?.put(key, latents);
    return latents;
  }

  /**
   * Encodes every image of the datasets up front (both orientations where the subset flips), as
   * kohya does before training; `onProgress(done, total)` after each.
   */
  async warm(
    datasets: readonly (LoaderDataset & { choices: ReadonlyMap<string, BucketChoice> })[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<void> {
    const jobs: [string, BucketChoice, boolean][] = [];
    for (const d of datasets) {
      for (const img of d.images) {
        const choice = d.choices.get(img.path);
        if (!choice || img.repeats < 1) continue;
        jobs.push([img.path, choice, false]);
        if (d.config.subsets[img.subset]?.flipAug) jobs.push([img.path, choice, true]);
      }
    }
    let done = 0;
    for (const [path, choice, flip] of jobs) {
      await this.latents(path, choice, { flip });
      onProgress?.(++done, jobs.length);
    }
  }
}

/**
 * A content fingerprint of a VAE's encoder: SHA-256 over its config and the encoder's first and
 * last weights (one small readback), as hex.
 *
 * @example
 * ```ts ignore
 * const id = await vaeFingerprint(vae); // "3f1c..."
 * ```
 */
export async function vaeFingerprint(vae: Module & { config: unknown }): Promise<string> {
  const parts: Uint8Array[] = [new TextEncoder().encode(JSON.stringify(vae.config))];
  for (const name of ["encoder.conv_in.weight", "encoder.conv_out.weight", "quant_conv.weight"]) {
    const p = vae.namedParameters().find(([n]) => n === name);
    if (p) parts.push(new Uint8Array((await p[1].value.toArray()).buffer));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest.subarray(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}
