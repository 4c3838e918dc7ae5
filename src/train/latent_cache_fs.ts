/**
 * `--cache-latents-to-disk`: latents stored next to each image as
 * `<image base>_<w>x<h>.denoise-latents.safetensors` (tensors `latents` and `latents_flipped`),
 * with the VAE fingerprint, resize and crop in the metadata; a file whose metadata differs is
 * stale and rewritten. Writes are atomic.
 *
 * @module
 */
import { extname } from "node:path";
import { SafetensorsReader, serializeSafetensors } from "../nn/safetensors.ts";
import { writeFileAtomic } from "./atomic_fs.ts";
import { type LatentCacheKey, latentStamp, type LatentStore } from "./latent_cache.ts";

/** The cache file of an image for a bucket. */
export function latentCachePath(key: Pick<LatentCacheKey, "path" | "bucket">): string {
  const base = key.path.slice(0, key.path.length - extname(key.path).length);
  return `${base}_${key.bucket[0]}x${key.bucket[1]}.denoise-latents.safetensors`;
}

async function readValid(key: LatentCacheKey): Promise<SafetensorsReader | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(latentCachePath(key));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  let r: SafetensorsReader;
  try {
    r = await SafetensorsReader.fromBytes(bytes, latentCachePath(key));
  } catch {
    return undefined; // unreadable: treated as stale and rewritten
  }
  const want = latentStamp(key);
  if (Object.entries(want).some(([k, v]) => r.metadata[k] !== v)) {
    r[Symbol.dispose]();
    return undefined;
  }
  return r;
}

const tensorName = (flip: boolean): string => flip ? "latents_flipped" : "latents";

/**
 * A `LatentStore` on disk next to the images.
 *
 * @example
 * ```ts ignore
 * const cache = new LatentCache(loadTrainingImage, encode, { vaeId, store: diskLatentStore(shape) });
 * ```
 */
export function diskLatentStore(
  latentShape: (bucket: readonly [number, number]) => number[],
): LatentStore {
  return {
    async get(key) {
      const r = await readValid(key);
      if (!r) return undefined;
      using reader = r;
      const name = tensorName(key.flip);
      if (!reader.keys.includes(name)) return undefined;
      return await reader.read(name);
    },
    async put(key, latents) {
      const tensors: Record<string, { data: Float32Array; shape: number[] }> = {};
      const old = await readValid(key);
      if (old) {
        using reader = old;
        for (const k of reader.keys) {
          tensors[k] = { data: await reader.read(k), shape: [...reader.info(k).shape] };
        }
      }
      tensors[tensorName(key.flip)] = { data: latents, shape: latentShape(key.bucket) };
      await writeFileAtomic(latentCachePath(key), serializeSafetensors(tensors, latentStamp(key)));
    },
  };
}
