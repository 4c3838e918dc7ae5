// Latent caching: one VAE encode per image, bucket and flip; the disk store next to the images is
// reused by a new run and invalidated by another VAE, resize or crop.
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { AutoencoderKL, Generator, getDevice } from "../mod.ts";
import { LatentCache, vaeFingerprint } from "../src/train/latent_cache.ts";
import { diskLatentStore, latentCachePath } from "../src/train/latent_cache_fs.ts";
import { TextEncodingCache } from "../src/train/text_cache.ts";
import type { BucketChoice } from "../src/train/buckets.ts";
import { DataLoader } from "../src/train/data_loader.ts";
import { resolveDataset } from "../src/train/dataset_config.ts";
import { TINY_VAE } from "./_sd_fixture.ts";

await getDevice();

// fake images and a fake "VAE": latents [4, H/8, W/8] whose values encode the call
function fakes() {
  const calls: string[] = [];
  const load = (_path: string, c: BucketChoice, o: { flip: boolean }) =>
    Promise.resolve(new Float32Array(3 * c.bucket[0] * c.bucket[1]).fill(o.flip ? -1 : 1));
  const encode = (px: Float32Array, size: readonly [number, number]) => {
    calls.push(`${size.join("x")}:${px[0]}`);
    return Promise.resolve(
      new Float32Array(4 * (size[0] / 8) * (size[1] / 8)).fill(px[0]! * calls.length),
    );
  };
  return { calls, load, encode };
}
const shape = (b: readonly [number, number]) => [4, b[1] / 8, b[0] / 8];
const choice = (w: number, h: number, rw = w): BucketChoice => ({
  bucket: [w, h],
  resized: [rw, h],
  arError: 0,
});

Deno.test("LatentCache encodes once per image, bucket and flip, from memory after", async () => {
  const f = fakes();
  const cache = new LatentCache(f.load, f.encode, { vaeId: "v1" });
  const a = await cache.latents("a.png", choice(64, 48), { flip: false });
  const b = await cache.latents("a.png", choice(64, 48), { flip: false });
  equal(a, b);
  await cache.latents("a.png", choice(64, 48), { flip: true });
  await cache.latents("a.png", choice(48, 64), { flip: false });
  deepEqual(f.calls, ["64x48:1", "64x48:-1", "48x64:1"]);
  deepEqual(cache.stats, { memory: 1, stored: 0, encoded: 3 });
});

Deno.test("the disk store is reused by a new run and invalidated by VAE, resize or crop", async () => {
  const dir = await Deno.makeTempDir();
  const img = join(dir, "a.png");
  const store = diskLatentStore(shape);
  const f1 = fakes();
  const first = new LatentCache(f1.load, f1.encode, { vaeId: "v1", store });
  const lat = await first.latents(img, choice(64, 48), { flip: false });
  const latF = await first.latents(img, choice(64, 48), { flip: true });
  equal(
    latentCachePath({ path: img, bucket: [64, 48] }),
    join(dir, "a_64x48.denoise-latents.safetensors"),
  );
  // a new run with the same VAE reads both orientations from disk
  const f2 = fakes();
  const second = new LatentCache(f2.load, f2.encode, { vaeId: "v1", store });
  deepEqual(await second.latents(img, choice(64, 48), { flip: false }), lat);
  deepEqual(await second.latents(img, choice(64, 48), { flip: true }), latF);
  deepEqual([f2.calls.length, second.stats.stored], [0, 2]);
  // another VAE, or another resize (hence crop) of the same bucket: re-encoded and rewritten
  const f3 = fakes();
  const third = new LatentCache(f3.load, f3.encode, { vaeId: "v2", store });
  await third.latents(img, choice(64, 48), { flip: false });
  const f4 = fakes();
  const fourth = new LatentCache(f4.load, f4.encode, { vaeId: "v2", store });
  await fourth.latents(img, choice(64, 48, 80), { flip: false });
  deepEqual([f3.calls.length, f4.calls.length], [1, 1]);
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
  deepEqual(names, ["a_64x48.denoise-latents.safetensors"], "one file, rewritten in place");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("warm() encodes every image up front, both ways where the subset flips; the loader serves latents", async () => {
  const f = fakes();
  const cache = new LatentCache(f.load, f.encode, { vaeId: "v1" });
  const config = resolveDataset([{ resolution: [64, 64], batchSize: 2 }], [
    { imageDir: "a", flipAug: true },
    { imageDir: "b" },
  ]);
  const images = ["x", "y", "z"].map((p, i) => ({
    path: p,
    caption: "c",
    size: [64, 64] as [number, number],
    repeats: 1,
    subset: i < 2 ? 0 : 1,
    lossWeight: 1,
  }));
  const c = choice(64, 64);
  await cache.warm([{ config, images, choices: new Map(images.map((i) => [i.path, c])) }]);
  equal(f.calls.length, 5); // x and y both ways, z once
  const loader = new DataLoader([{ config, images }], { seed: 1, loadImage: cache.loader });
  const batch = await loader.next();
  equal(batch.pixels.length, batch.paths.length * 4 * 8 * 8);
  equal(f.calls.length, 5, "no encode during training");
});

Deno.test("vaeFingerprint() tells VAEs apart and is stable", async () => {
  using a = new AutoencoderKL(TINY_VAE, { generator: new Generator(1) });
  using b = new AutoencoderKL(TINY_VAE, { generator: new Generator(1) });
  using c = new AutoencoderKL(TINY_VAE, { generator: new Generator(2) });
  const [ia, ib, ic] = await Promise.all([a, b, c].map(vaeFingerprint));
  equal(ia, ib);
  notEqual(ia, ic);
  ok(/^[0-9a-f]{24}$/.test(ia!));
});

Deno.test("TextEncodingCache encodes each distinct caption once", async () => {
  const seen: string[][] = [];
  const cache = new TextEncodingCache((caps) => {
    seen.push([...caps]);
    return Promise.resolve(
      Float32Array.from({ length: caps.length * 2 }, (_, i) => caps[i >> 1]!.length * 10 + (i & 1)),
    );
  }, 2);
  deepEqual(Array.from(await cache.encode(["ab", "c", "ab"])), [20, 21, 10, 11, 20, 21]);
  deepEqual(Array.from(await cache.encode(["c", "dddd"])), [10, 11, 40, 41]);
  deepEqual(seen, [["ab", "c"], ["dddd"]]);
  equal(cache.encoded, 3);
});
