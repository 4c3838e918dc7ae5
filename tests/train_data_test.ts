// The data pipeline on disk: kohya folders, captions, reg balancing, dataset TOML, and image
// decoding (JPEG, PNG, WebP, EXIF orientation, alpha, 16-bit, grayscale) with sharp.
import { deepEqual, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { datasetFromFolders, datasetsFromToml, loadDataset } from "../src/train/folders_fs.ts";
import { checkImage, loadTrainingImage } from "../src/train/images_fs.ts";
import { parseDatasetToml, parseSubsetDirName } from "../src/train/dataset_config.ts";
import { balanceRegRepeats } from "../src/train/reg_balance.ts";
import { ConfigError, DatasetError } from "../src/train/errors.ts";
import type { BucketChoice, Size } from "../src/train/buckets.ts";
import { rejectsWith, throwsWith } from "./_train_helpers.ts";

/** Writes a w x h RGB image of one colour (or a left/right split) in the format of `path`. */
async function writeImage(path: string, w: number, h: number, rgb = [200, 100, 50]): Promise<void> {
  const px = new Uint8Array(w * h * 3).map((_, i) => rgb[i % 3]!);
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  if (path.endsWith(".jpg")) await img.jpeg({ quality: 95 }).toFile(path);
  else if (path.endsWith(".webp")) await img.webp({ lossless: true }).toFile(path);
  else await img.png().toFile(path);
}

async function layout(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "train_data_" });
  const dog = join(root, "train", "10_sks dog");
  await Deno.mkdir(dog, { recursive: true });
  await writeImage(join(dog, "a.png"), 64, 48);
  await Deno.writeTextFile(join(dog, "a.caption"), "sks dog, grass\nsecond line ignored\n");
  await writeImage(join(dog, "b.jpg"), 48, 64); // no caption: the class tokens
  await writeImage(join(dog, "c.webp"), 64, 64);
  await Deno.writeTextFile(join(dog, "c.caption"), "sks dog, snow");
  await Deno.writeTextFile(join(dog, "c.txt"), "other extension");
  await Deno.mkdir(join(root, "train", "notes"));
  await writeImage(join(root, "train", "notes", "x.png"), 8, 8);
  await Deno.writeTextFile(join(root, "train", "readme.txt"), "not a folder");
  const reg = join(root, "reg", "1_dog");
  await Deno.mkdir(reg, { recursive: true });
  for (const n of ["r1", "r2", "r3", "r4"]) await writeImage(join(reg, `${n}.png`), 32, 32);
  return root;
}

Deno.test("parseSubsetDirName() follows kohya's <repeats>_<class tokens> rule", () => {
  deepEqual(parseSubsetDirName("10_sks dog"), { repeats: 10, classTokens: "sks dog" });
  deepEqual(parseSubsetDirName("3_a_b"), { repeats: 3, classTokens: "a_b" });
  deepEqual(parseSubsetDirName("5"), { repeats: 5, classTokens: "" });
  equal(parseSubsetDirName("dog_10"), null);
  equal(parseSubsetDirName("notes"), null);
});

Deno.test("balanceRegRepeats() follows kohya's loop", () => {
  deepEqual(balanceRegRepeats(10, [1, 1, 1]), [4, 3, 3]);
  deepEqual(balanceRegRepeats(30, [1, 1, 1, 1]), [8, 8, 7, 7]);
  deepEqual(balanceRegRepeats(3, [2, 2, 2]), [2, 2, 0]); // more reg than train: some unused
  deepEqual(balanceRegRepeats(5, []), []);
});

Deno.test("kohya folders: captions, class tokens, skipped folders and balanced reg", async () => {
  const root = await layout();
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const config = await datasetFromFolders(join(root, "train"), {
    regDataDir: join(root, "reg"),
    settings: { priorLossWeight: 0.5, resolution: [64, 64] },
    warn,
  });
  equal(config.subsets.length, 2);
  ok(warnings.some((w) => w.includes("notes") && w.includes("no repeats prefix")), warnings.join());
  const ds = await loadDataset(config, warn);
  equal(ds.trainCount, 30);
  equal(ds.regCount, 4);
  const rows = ds.images.map((
    r,
  ) => [r.path.slice(root.length + 1), r.caption, r.size, r.repeats, r.lossWeight]);
  deepEqual(rows, [
    ["train/10_sks dog/a.png", "sks dog, grass", [64, 48], 10, 1],
    ["train/10_sks dog/b.jpg", "sks dog", [48, 64], 10, 1],
    ["train/10_sks dog/c.webp", "sks dog, snow", [64, 64], 10, 1],
    ["reg/1_dog/r1.png", "dog", [32, 32], 8, 0.5],
    ["reg/1_dog/r2.png", "dog", [32, 32], 8, 0.5],
    ["reg/1_dog/r3.png", "dog", [32, 32], 7, 0.5],
    ["reg/1_dog/r4.png", "dog", [32, 32], 7, 0.5],
  ]);
  const txt = await datasetFromFolders(join(root, "train"), {
    settings: { captionExtension: ".txt" },
    warn,
  });
  equal((await loadDataset(txt, warn)).images[2]!.caption, "other extension");
  await Deno.remove(root, { recursive: true });
});

Deno.test("bad data is a clear error naming the file or folder", async () => {
  const root = await layout();
  const train = join(root, "train"), dog = join(train, "10_sks dog");
  const warn = () => {};
  const load = async () => loadDataset(await datasetFromFolders(train, { warn }), warn);
  // a caption that is not UTF-8
  await Deno.writeFile(join(dog, "a.caption"), new Uint8Array([0x73, 0xff, 0xfe, 0x20]));
  await rejectsWith(
    load,
    DatasetError,
    `caption file ${join(dog, "a.caption")} is not valid UTF-8`,
  );
  await Deno.writeTextFile(join(dog, "a.caption"), "fine");
  // a truncated JPEG
  const jpg = await Deno.readFile(join(dog, "b.jpg"));
  await Deno.writeFile(join(dog, "b.jpg"), jpg.slice(0, Math.floor(jpg.length * 0.9)));
  await rejectsWith(load, DatasetError, `Cannot read the image ${join(dog, "b.jpg")}`);
  // not an image at all
  await Deno.writeTextFile(join(dog, "b.jpg"), "hello");
  await rejectsWith(load, DatasetError, `Cannot read the image ${join(dog, "b.jpg")}`);
  await Deno.remove(join(dog, "b.jpg"));
  // an empty caption file
  await Deno.writeTextFile(join(dog, "a.caption"), "\n");
  await rejectsWith(load, DatasetError, `caption file ${join(dog, "a.caption")} is empty`);
  await Deno.remove(join(dog, "a.caption"));
  // an empty subset folder
  await Deno.mkdir(join(train, "2_cat"));
  await rejectsWith(load, DatasetError, `image folder ${join(train, "2_cat")} holds no images`);
  // nothing with a repeats prefix left
  const only = join(root, "only_bad");
  await Deno.mkdir(join(only, "dogs"), { recursive: true });
  const warnings: string[] = [];
  await rejectsWith(
    () => datasetFromFolders(only, { warn: (m) => warnings.push(m) }),
    DatasetError,
    `train data folder ${only} has no usable subfolder`,
  );
  equal(warnings.length, 1);
  await rejectsWith(
    () => datasetFromFolders(join(root, "missing")),
    DatasetError,
    "does not exist",
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("parseDatasetToml() reads kohya's layered keys", () => {
  const [a, b] = parseDatasetToml(
    `[general]
shuffle_caption = true
caption_extension = ".txt"
keep_tokens = 1

[[datasets]]
resolution = 512
batch_size = 4
enable_bucket = true
bucket_no_upscale = true

  [[datasets.subsets]]
  image_dir = "img/dog"
  num_repeats = 10
  class_tokens = "sks dog"

  [[datasets.subsets]]
  image_dir = "img/reg"
  is_reg = true
  keep_tokens = 0

[[datasets]]
resolution = [768, 512]
flip_aug = true
  [[datasets.subsets]]
  image_dir = "img/cat"
`,
    "dataset.toml",
  );
  deepEqual([a!.resolution, a!.batchSize, a!.enableBucket, a!.bucketNoUpscale, a!.minBucketReso], [
    [512, 512],
    4,
    true,
    true,
    256,
  ]);
  deepEqual(a!.subsets, [
    {
      imageDir: "img/dog",
      numRepeats: 10,
      classTokens: "sks dog",
      isReg: false,
      captionExtension: ".txt",
      flipAug: false,
      shuffleCaption: true,
      keepTokens: 1,
    },
    {
      imageDir: "img/reg",
      numRepeats: 1,
      isReg: true,
      captionExtension: ".txt",
      flipAug: false,
      shuffleCaption: true,
      keepTokens: 0,
    },
  ]);
  deepEqual([b!.resolution, b!.batchSize, b!.subsets[0]!.flipAug], [[768, 512], 1, true]);
});

Deno.test("dataset TOML errors name the file, line and key", async () => {
  throwsWith(
    () => parseDatasetToml("[general]\nbatch_size = 2\nshuffle_caption = tru\n", "d.toml"),
    ConfigError,
    "d.toml line 3",
  );
  throwsWith(
    () =>
      parseDatasetToml(
        '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "x"\ncolor_aug = true\n',
        "d.toml",
      ),
    ConfigError,
    "d.toml line 4 (datasets 1 subset 1) key color_aug is a kohya option not supported here",
  );
  throwsWith(
    () =>
      parseDatasetToml(
        "[[datasets]]\nbatch_sise = 2\n[[datasets.subsets]]\nimage_dir = 'x'",
        "d.toml",
      ),
    ConfigError,
    "key batch_sise is unknown",
  );
  throwsWith(
    () =>
      parseDatasetToml(
        "[[datasets]]\nbatch_size = 'two'\n[[datasets.subsets]]\nimage_dir = 'x'",
        "d.toml",
      ),
    ConfigError,
    "key batch_size must be a whole number",
  );
  throwsWith(
    () => parseDatasetToml("[[datasets]]\n[[datasets.subsets]]\nnum_repeats = 2", "d.toml"),
    ConfigError,
    "has no image_dir",
  );
  throwsWith(
    () =>
      parseDatasetToml(
        "[[datasets]]\nimage_dir = 'x'\n[[datasets.subsets]]\nimage_dir = 'x'",
        "d.toml",
      ),
    ConfigError,
    "image_dir belongs in [[datasets.subsets]]",
  );
  const dir = await Deno.makeTempDir();
  await Deno.writeFile(join(dir, "d.toml"), new Uint8Array([0x5b, 0xff, 0x5d]));
  await rejectsWith(() => datasetsFromToml(join(dir, "d.toml")), DatasetError, "not valid UTF-8");
  await Deno.remove(dir, { recursive: true });
});

const whole = (s: Size): BucketChoice => ({ bucket: s, resized: s, arError: 0 });

Deno.test("images: EXIF orientation, alpha on white, 16-bit and grayscale", async () => {
  const dir = await Deno.makeTempDir();
  // 16x8 stored: left half black, right half white; orientation 6 = rotate 90 degrees clockwise to
  // show, so the shown image is 8x16 with the black half on top
  const px = new Uint8Array(16 * 8 * 3).map((_, i) => (Math.floor(i / 3) % 16 < 8 ? 0 : 255));
  const o6 = join(dir, "o6.jpg");
  await sharp(px, { raw: { width: 16, height: 8, channels: 3 } }).jpeg({ quality: 100 })
    .withMetadata({ orientation: 6 }).toFile(o6);
  deepEqual(await checkImage(o6), [8, 16]);
  const chw = await loadTrainingImage(o6, whole([8, 16]));
  // JPEG at quality 100 keeps a flat black/white split within a few levels; 0.2 is ~25 levels
  // top-right black and bottom-left white: only true when the rotation was applied
  ok(chw[7]! < -0.8 && chw[8 * 15]! > 0.8, `top right ${chw[7]}, bottom left ${chw[8 * 15]}`);
  // flip mirrors left-right
  const g = join(dir, "lr.png");
  await sharp(px, { raw: { width: 16, height: 8, channels: 3 } }).png().toFile(g);
  const flipped = await loadTrainingImage(g, whole([16, 8]), { flip: true });
  deepEqual([flipped[0], flipped[15]], [1, -1]);
  // transparent pixels become white, half-transparent red blends toward white
  const a = join(dir, "a.webp");
  const rgba = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 128, 0, 0, 255, 255, 0, 0, 255, 255]);
  await sharp(rgba, { raw: { width: 2, height: 2, channels: 4 } }).webp({ lossless: true }).toFile(
    a,
  );
  const al = await loadTrainingImage(a, whole([2, 2]));
  const at = (c: number, i: number) => Math.round((al[c * 4 + i]! + 1) * 127.5);
  deepEqual([at(0, 0), at(1, 0), at(2, 0)], [255, 255, 255]);
  // 255 * 128/255 + 255 * (1 - 128/255) for red; green/blue 255 * (1 - 128/255) = 127 (one level)
  deepEqual([at(0, 1), at(1, 1), at(2, 1)], [255, 127, 127]);
  deepEqual([at(0, 2), at(1, 2), at(2, 2)], [0, 0, 255]);
  // 16-bit grayscale: 0x8080 is 8-bit 128 in every channel
  const g16 = join(dir, "g16.png");
  await sharp(new Uint16Array(6).fill(0x8080), { raw: { width: 3, height: 2, channels: 1 } })
    .toColourspace("grey16").png().toFile(g16);
  const meta = await sharp(g16).metadata();
  deepEqual([meta.depth, meta.channels], ["ushort", 1]);
  const v16 = await loadTrainingImage(g16, whole([3, 2]));
  equal(v16.length, 18);
  ok(v16.every((v) => Math.abs((v + 1) * 127.5 - 128) < 1e-3), `16-bit gray ${v16[0]}`);
  // 8-bit grayscale JPEG
  const g8 = join(dir, "g8.jpg");
  await sharp(new Uint8Array(16).fill(60), { raw: { width: 4, height: 4, channels: 1 } }).jpeg()
    .toFile(g8);
  const v8 = await loadTrainingImage(g8, whole([4, 4]));
  ok(v8.every((v) => Math.abs((v + 1) * 127.5 - 60) <= 1), "8-bit gray in all three channels");
  // resize to cover then centre-crop: 16x8 split image into a 4x4 bucket via 8x4
  const crop = await loadTrainingImage(g, { bucket: [4, 4], resized: [8, 4], arError: 0 });
  deepEqual([crop[0]! < -0.9, crop[3]! > 0.9], [true, true]);
  await rejectsWith(() => checkImage(join(dir, "x.bmp")), DatasetError, "BMP");
  await Deno.remove(dir, { recursive: true });
});
