// Aspect buckets against kohya's rules, written out by hand for a 512 base resolution.
import { deepEqual as assertEquals } from "node:assert/strict";
import { throwsWith as assertThrows } from "./_train_helpers.ts";
import {
  assignBuckets,
  BucketSelector,
  checkResolution,
  cropOffsets,
  downsamplingFactor,
  epochBatches,
  formatBucketTable,
  makeBucketResolutions,
  type Size,
} from "../src/train/buckets.ts";
import { ConfigError, DatasetError } from "../src/train/errors.ts";
import { Rng } from "../src/train/random.ts";

// make_bucket_resolutions((512, 512), 256, 1024, 64) worked by hand: area 262144, square 512;
// width w from 256 to 1024 gives height min(1024, (262144 // w) // 64 * 64), both orientations.
const GOLDEN_512: Size[] = [
  [256, 832],
  [256, 896],
  [256, 960],
  [256, 1024],
  [320, 704],
  [320, 768],
  [384, 640],
  [448, 576],
  [512, 512],
  [576, 448],
  [640, 384],
  [704, 320],
  [768, 320],
  [832, 256],
  [896, 256],
  [960, 256],
  [1024, 256],
]; // prettier-ignore

Deno.test("makeBucketResolutions() gives kohya's 17 buckets for 512", () => {
  assertEquals(makeBucketResolutions([512, 512], 256, 1024, 64), GOLDEN_512);
});

// [image size, bucket, resized] from select_bucket's rules (nearest aspect, cover, int(x + 0.5))
const GOLDEN_CHOICES: [Size, Size, Size][] = [
  [[1000, 1000], [512, 512], [512, 512]],
  [[800, 600], [576, 448], [597, 448]], // 4/3: 576/448 = 1.286 beats 640/384 = 1.667
  [[600, 800], [448, 576], [448, 597]],
  [[1920, 1080], [640, 384], [683, 384]], // 1.778: 1.667 beats 2.2
  [[300, 1200], [256, 1024], [256, 1024]], // exact aspect 0.25
  [[704, 320], [704, 320], [704, 320]], // a bucket size itself stays
  [[100, 100], [512, 512], [512, 512]], // upscaled
  [[1100, 500], [704, 320], [704, 320]], // 2.2 exactly
];

Deno.test("BucketSelector.select() lands images in kohya's buckets for 512", () => {
  const s = new BucketSelector({ resolution: [512, 512], enableBucket: true });
  for (const [size, bucket, resized] of GOLDEN_CHOICES) {
    const c = s.select(size);
    assertEquals([c.bucket, c.resized], [bucket, resized], `image ${size.join("x")}`);
  }
});

Deno.test("BucketSelector with noUpscale follows the image size and shrinks large ones", () => {
  const s = new BucketSelector({ resolution: [512, 512], enableBucket: true, noUpscale: true });
  // small: no resize, bucket = size floored to 64
  assertEquals(s.select([100, 130]), {
    bucket: [64, 128],
    resized: [100, 130],
    arError: 0.5 - 100 / 130,
  });
  // 2000x1000 > area: width-rounded gives 704/320 = 2.2, height-rounded 640/320 = 2.0 (exact)
  const big = s.select([2000, 1000]);
  assertEquals([big.bucket, big.resized], [[640, 320], [640, 320]]);
  assertThrows(() => s.select([40, 500]), DatasetError, "smaller than the bucket step 64");
});

Deno.test("without buckets every image is covered and cropped to the resolution", () => {
  const s = new BucketSelector({ resolution: [512, 512] });
  const c = s.select([800, 600]);
  assertEquals([c.bucket, c.resized], [[512, 512], [683, 512]]);
  assertEquals(cropOffsets(c.resized, c.bucket), { left: 85, top: 0 });
});

Deno.test("assignBuckets() counts repeats, sorts buckets and prints the table", () => {
  const items = [
    { name: "a", size: [800, 600] as Size, repeats: 2 },
    { name: "b", size: [600, 800] as Size, repeats: 1 },
    { name: "c", size: [810, 600] as Size, repeats: 3 },
  ];
  const plan = assignBuckets(items, { resolution: [512, 512], enableBucket: true });
  assertEquals(plan.buckets.map((b) => [b.size, b.items.map((i) => i.name).join("")]), [
    [[448, 576], "b"],
    [[576, 448], "aaccc"],
  ]);
  const table = formatBucketTable(plan);
  assertEquals(table.split("\n").slice(1, 3), [
    "bucket 0: resolution 448x576, count: 1",
    "bucket 1: resolution 576x448, count: 5",
  ]);
});

Deno.test("epochBatches() never mixes buckets and is reproducible from the seed", () => {
  const sizes: Size[] = [[800, 600], [600, 800], [512, 512], [1920, 1080]];
  const items = Array.from({ length: 23 }, (_, i) => ({ id: i, size: sizes[i % 4]!, repeats: 1 }));
  const plan = assignBuckets(items, { resolution: [512, 512], enableBucket: true });
  const a = epochBatches(plan, 2, new Rng(7));
  const b = epochBatches(plan, 2, new Rng(7));
  const c = epochBatches(plan, 2, new Rng(8));
  assertEquals(a, b);
  assertEquals(JSON.stringify(a) === JSON.stringify(c), false, "another seed, another order");
  const seen = new Set<number>();
  for (const batch of a) {
    const size = plan.buckets[batch.bucket]!.size;
    for (const it of batch.items) {
      assertEquals(it.choice.bucket, size);
      seen.add(it.id);
    }
    assertEquals(batch.items.length <= 2, true);
  }
  assertEquals(seen.size, 23, "every image once per epoch");
});

Deno.test("checkResolution() names the nearest valid sizes", () => {
  checkResolution([512, 768], 64);
  checkResolution([48, 48], 8);
  assertThrows(() => checkResolution([500, 512], 64), ConfigError, "use 448 or 512 instead of 500");
  assertThrows(() => checkResolution([512, 20], 64), ConfigError, "use 64 instead of 20");
  assertThrows(
    () => new BucketSelector({ resolution: [768, 768], enableBucket: true, maxBucketReso: 512 }),
    ConfigError,
    "max_bucket_reso 512",
  );
});

Deno.test("downsamplingFactor() is 64 for SD 1.x and smaller for small models", () => {
  const sd = { blockOutChannels: [320, 640, 1280, 1280] },
    sdVae = { blockOutChannels: [128, 256, 512, 512] };
  assertEquals(downsamplingFactor(sd, sdVae), 64);
  assertEquals(
    downsamplingFactor({ blockOutChannels: [32, 64] }, { blockOutChannels: [16, 32] }),
    4,
  );
});
