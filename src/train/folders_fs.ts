/**
 * Reading datasets from disk: kohya's `<repeats>_<class tokens>` folders under a train folder and
 * a reg folder, kohya's dataset TOML, the images in each subset with their captions
 * (`<image><caption extension>`, UTF-8, first line; the class tokens when there is none), and the
 * reg repeats balanced against the train count.
 *
 * @module
 */
import { basename, extname, join } from "node:path";
import type { Size } from "./buckets.ts";
import {
  type DatasetConfig,
  parseDatasetToml,
  parseSubsetDirName,
  resolveDataset,
  type Settings,
  type SubsetConfig,
} from "./dataset_config.ts";
import { ConfigError, DatasetError } from "./errors.ts";
import { checkImage, IMAGE_EXTENSIONS } from "./images_fs.ts";
import { balanceRegRepeats } from "./reg_balance.ts";

/** Receives warnings (kohya logs these and goes on). */
export type Warn = (message: string) => void;

async function listDir(path: string, what: string): Promise<Deno.DirEntry[]> {
  try {
    const out: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(path)) out.push(e);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      throw new DatasetError(
        `The ${what} ${path} does not exist or is not a folder; check the path`,
      );
    }
    throw e;
  }
}

async function subsetsIn(dir: string, isReg: boolean, warn: Warn): Promise<Settings[]> {
  const what = isReg ? "reg data folder" : "train data folder";
  const out: Settings[] = [];
  for (const e of await listDir(dir, what)) {
    if (!e.isDirectory) continue;
    const p = parseSubsetDirName(e.name);
    if (!p) {
      warn(
        `Ignoring the folder ${
          join(dir, e.name)
        }: its name has no repeats prefix (<repeats>_<class tokens>)`,
      );
      continue;
    }
    if (p.repeats < 1) {
      warn(`Ignoring the folder ${join(dir, e.name)}: its repeats ${p.repeats} is below 1`);
      continue;
    }
    out.push({
      imageDir: join(dir, e.name),
      numRepeats: p.repeats,
      classTokens: p.classTokens,
      isReg,
    });
  }
  if (out.length === 0) {
    throw new DatasetError(
      `The ${what} ${dir} has no usable subfolder; name each like 10_sks dog (<repeats>_<class tokens>)`,
    );
  }
  return out;
}

/**
 * One dataset from kohya's folder layout (`--train-data-dir`, `--reg-data-dir`); `settings` are
 * dataset and subset settings from flags, in camelCase (e.g. `{ resolution: [512, 512] }`).
 *
 * @example
 * ```ts
 * import { datasetFromFolders } from "./folders_fs.ts";
 * const ds = await datasetFromFolders("train_images", { regDataDir: "reg_images" });
 * console.log(ds.subsets.length);
 * ```
 */
export async function datasetFromFolders(
  trainDataDir: string,
  options: { regDataDir?: string; settings?: Settings; warn?: Warn } = {},
): Promise<DatasetConfig> {
  const warn = options.warn ?? console.warn;
  const subs = await subsetsIn(trainDataDir, false, warn);
  if (options.regDataDir !== undefined) {
    subs.push(...await subsetsIn(options.regDataDir, true, warn));
  }
  return resolveDataset([options.settings ?? {}], subs);
}

/** Reads kohya's dataset TOML file (see `parseDatasetToml`). */
export async function datasetsFromToml(
  path: string,
  defaults: Settings = {},
): Promise<DatasetConfig[]> {
  return parseDatasetToml(await readUtf8(path, "dataset config"), path, defaults);
}

/** Decodes strict UTF-8; an error names the file. */
function decodeUtf8(bytes: Uint8Array, path: string, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new DatasetError(`The ${what} ${path} is not valid UTF-8; save it as UTF-8`);
  }
}

/** Reads a text file as strict UTF-8; an error names the file. */
export async function readUtf8(path: string, what: string): Promise<string> {
  try {
    return decodeUtf8(await Deno.readFile(path), path, what);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`The ${what} ${path} does not exist; check the path`);
    }
    throw e;
  }
}

/** One image of a dataset, ready to bucket. */
export interface ImageRecord {
  /** The image file. */
  path: string;
  /** Its caption (caption file's first line, or the subset's class tokens). */
  caption: string;
  /** Size after EXIF orientation. */
  size: Size;
  /** Repeats per epoch (reg images: after balancing; 0 = unused). */
  repeats: number;
  /** Index of its subset in `DatasetConfig.subsets`. */
  subset: number;
  /** Loss weight: the prior-loss weight for reg images, else 1. */
  lossWeight: number;
}

/** A loaded dataset: its config, its images and kohya's counts. */
export interface LoadedDataset {
  /** The config it was read with. */
  config: DatasetConfig;
  /** Images with repeats (reg ones balanced). */
  images: ImageRecord[];
  /** Train images times repeats. */
  trainCount: number;
  /** Reg images times repeats, before balancing. */
  regCount: number;
}

async function captionFor(image: string, subset: SubsetConfig, warn: Warn): Promise<string> {
  const path = image.slice(0, image.length - extname(image).length) + subset.captionExtension;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    if (subset.classTokens === undefined || subset.classTokens === "") {
      warn(`No caption file and no class tokens for ${image}; it trains with an empty caption`);
      return "";
    }
    return subset.classTokens;
  }
  const text = decodeUtf8(bytes, path, "caption file");
  const first = text.split(/\r?\n/)[0]!.trim();
  if (text.trim() === "") {
    throw new DatasetError(`The caption file ${path} is empty; write a caption or delete the file`);
  }
  return first;
}

/** The image files of a subset folder, sorted; an empty folder is an error naming it. */
export async function listImages(dir: string): Promise<string[]> {
  const files = (await listDir(dir, "image folder"))
    .filter((e) => e.isFile && IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase()))
    .map((e) => join(dir, e.name));
  if (files.length === 0) {
    throw new DatasetError(
      `The image folder ${dir} holds no images (${
        IMAGE_EXTENSIONS.join(", ")
      }); add some or remove it`,
    );
  }
  return files;
}

/**
 * Reads every subset's images (decoding each once to catch broken files) and captions, and
 * balances reg repeats against the train count as kohya does.
 *
 * @example
 * ```ts
 * import { datasetFromFolders, loadDataset } from "./folders_fs.ts";
 * const ds = await loadDataset(await datasetFromFolders("train_images"));
 * console.log(ds.trainCount, ds.images.length);
 * ```
 */
export async function loadDataset(
  config: DatasetConfig,
  warn: Warn = console.warn,
): Promise<LoadedDataset> {
  const images: ImageRecord[] = [];
  const reg: ImageRecord[] = [];
  let trainCount = 0, regCount = 0;
  for (const [i, subset] of config.subsets.entries()) {
    if (!Number.isInteger(subset.numRepeats) || subset.numRepeats < 1) {
      warn(`Ignoring the subset ${subset.imageDir}: num_repeats ${subset.numRepeats} is below 1`);
      continue;
    }
    for (const path of await listImages(subset.imageDir)) {
      const record: ImageRecord = {
        path,
        caption: await captionFor(path, subset, warn),
        size: await checkImage(path),
        repeats: subset.numRepeats,
        subset: i,
        lossWeight: subset.isReg ? config.priorLossWeight : 1,
      };
      if (subset.isReg) {
        reg.push(record);
        regCount += record.repeats;
      } else {
        images.push(record);
        trainCount += record.repeats;
      }
    }
  }
  if (trainCount === 0) {
    throw new DatasetError(
      `No training images: every subset is a reg subset or was skipped (${
        config.subsets.map((s) => basename(s.imageDir)).join(", ")
      }); add a train folder`,
    );
  }
  if (regCount > trainCount) warn("Some reg images are not used: there are more than train images");
  const balanced = balanceRegRepeats(trainCount, reg.map((r) => r.repeats));
  reg.forEach((r, i) => {
    r.repeats = balanced[i]!;
    if (r.repeats > 0) images.push(r);
  });
  return { config, images, trainCount, regCount };
}
