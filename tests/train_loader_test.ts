// The data loader: epochs cover every image and repeat once, batches keep to one bucket, and a
// saved position resumes the exact sequence of images, captions and flips.
import { deepEqual, equal, ok } from "node:assert/strict";
import { DataLoader, type LoaderDataset, type TrainBatch } from "../src/train/data_loader.ts";
import { resolveDataset } from "../src/train/dataset_config.ts";
import type { BucketChoice } from "../src/train/buckets.ts";

// a fake image: every pixel holds the image's index, negated when flipped
function fakeLoader(paths: string[]) {
  return (path: string, choice: BucketChoice, o: { flip: boolean }): Promise<Float32Array> => {
    const [w, h] = choice.bucket;
    const v = paths.indexOf(path) * (o.flip ? -1 : 1);
    return Promise.resolve(new Float32Array(3 * w * h).fill(v));
  };
}

function dataset(): LoaderDataset {
  const config = resolveDataset([{
    resolution: [64, 64],
    enableBucket: true,
    minBucketReso: 32,
    maxBucketReso: 128,
    bucketResoSteps: 32,
    batchSize: 2,
  }], [
    { imageDir: "a", numRepeats: 3, shuffleCaption: true, keepTokens: 1, flipAug: true },
    { imageDir: "r", isReg: true, numRepeats: 1 },
  ]); // prettier-ignore
  const sizes: [number, number][] = [[64, 48], [48, 64], [64, 64], [100, 50], [64, 48]];
  const images = sizes.map((size, i) => ({
    path: `img${i}.png`,
    caption: `tok${i}, x, y, z`,
    size,
    repeats: i < 4 ? 3 : 2,
    subset: i < 4 ? 0 : 1,
    lossWeight: i < 4 ? 1 : 0.5,
  }));
  return { config, images };
}

const PATHS = Array.from({ length: 5 }, (_, i) => `img${i}.png`);

function summary(b: TrainBatch): string {
  return JSON.stringify([
    b.size,
    b.paths,
    b.captions,
    b.lossWeights,
    Array.from(b.pixels.subarray(0, 1)),
  ]);
}

Deno.test("DataLoader: an epoch takes every image and repeat once, one bucket per batch", async () => {
  const loader = new DataLoader([dataset()], { seed: 1, loadImage: fakeLoader(PATHS) });
  const counts = new Map<string, number>();
  let flips = 0;
  const n = loader.batchesPerEpoch;
  for (let i = 0; i < n; i++) {
    const b = await loader.next();
    const [w, h] = b.size;
    equal(b.pixels.length, b.paths.length * 3 * w * h);
    ok(b.paths.length <= 2);
    b.paths.forEach((p, j) => {
      counts.set(p, (counts.get(p) ?? 0) + 1);
      const v = b.pixels[j * 3 * w * h]!;
      equal(Math.abs(v), PATHS.indexOf(p));
      if (v < 0) flips++;
      ok(b.captions[j]!.startsWith(`tok${PATHS.indexOf(p)}`), "keep_tokens 1");
      equal(b.lossWeights[j], p === "img4.png" ? 0.5 : 1);
    });
  }
  deepEqual(Object.fromEntries(counts), {
    "img0.png": 3,
    "img1.png": 3,
    "img2.png": 3,
    "img3.png": 3,
    "img4.png": 2,
  });
  ok(flips > 0, "flip_aug flips some");
  equal(loader.epoch, 1);
  await loader.next();
  equal(loader.epoch, 2);
});

Deno.test("DataLoader: each epoch has its own order", async () => {
  const loader = new DataLoader([dataset()], { seed: 3, loadImage: fakeLoader(PATHS) });
  const epoch = async () => {
    const out: string[] = [];
    for (let i = 0; i < loader.batchesPerEpoch; i++) out.push(summary(await loader.next()));
    return out.join();
  };
  ok(await epoch() !== await epoch());
});

Deno.test("DataLoader.seek() resumes the exact sequence, across epochs", async () => {
  const a = new DataLoader([dataset()], { seed: 5, loadImage: fakeLoader(PATHS) });
  for (let i = 0; i < 4; i++) await a.next();
  const pos = a.position();
  const rest: string[] = [];
  for (let i = 0; i < 2 * a.batchesPerEpoch; i++) rest.push(summary(await a.next()));
  const b = new DataLoader([dataset()], { seed: 5, loadImage: fakeLoader(PATHS) });
  b.seek(JSON.parse(JSON.stringify(pos)));
  for (const want of rest) equal(summary(await b.next()), want);
  const c = new DataLoader([dataset()], { seed: 6, loadImage: fakeLoader(PATHS) });
  c.seek(pos);
  ok(summary(await c.next()) !== rest[0] || summary(await c.next()) !== rest[1], "seed matters");
});
