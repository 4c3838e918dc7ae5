/**
 * The dataset description the trainer reads: subsets (folders of images with repeats, class
 * tokens and caption settings) grouped into datasets (resolution, batch size, buckets). Built from
 * kohya's dataset TOML (`[general]`, `[[datasets]]`, `[[datasets.subsets]]`, keys given at an
 * outer level apply to the inner ones) or from kohya's `<repeats>_<class tokens>` folder names.
 *
 * @module
 */
import type { CaptionOptions } from "./captions.ts";
import type { Size } from "./buckets.ts";
import { ConfigError } from "./errors.ts";
import { keyLine, parseToml, type TomlTable } from "./toml.ts";

/** One folder of images and its settings. */
export interface SubsetConfig extends CaptionOptions {
  /** The folder holding the images. */
  imageDir: string;
  /** Times each image is seen per epoch (`num_repeats`, default 1). */
  numRepeats: number;
  /** Caption used when an image has no caption file (`class_tokens`). */
  classTokens?: string;
  /** A regularization subset (`is_reg`). */
  isReg: boolean;
  /** Caption file extension (`caption_extension`, default ".caption" as kohya). */
  captionExtension: string;
  /** Random horizontal flips (`flip_aug`). */
  flipAug: boolean;
}

/** One dataset: shared image size and batching, and its subsets. */
export interface DatasetConfig {
  /** Base resolution `[width, height]` (`resolution`, default 512). */
  resolution: Size;
  /** Batch size (`batch_size`, default 1). */
  batchSize: number;
  /** Aspect buckets (`enable_bucket`). */
  enableBucket: boolean;
  /** `min_bucket_reso` (default 256). */
  minBucketReso: number;
  /** `max_bucket_reso` (default 1024). */
  maxBucketReso: number;
  /** `bucket_reso_steps` (default 64). */
  bucketResoSteps: number;
  /** `bucket_no_upscale`. */
  bucketNoUpscale: boolean;
  /** Loss weight of regularization images (`prior_loss_weight`, default 1). */
  priorLossWeight: number;
  /** The folders. */
  subsets: SubsetConfig[];
}

type Kind = "int" | "number" | "bool" | "string" | "resolution";
type Level = "dataset" | "subset" | "subset-only";

// key -> [field, kind, level]: dataset keys apply to a dataset; subset keys may also be given on
// [general] or [[datasets]] and then apply to every subset below (kohya's "ascendable" keys)
const KEYS: Record<string, [string, Kind, Level]> = {
  resolution: ["resolution", "resolution", "dataset"],
  batch_size: ["batchSize", "int", "dataset"],
  enable_bucket: ["enableBucket", "bool", "dataset"],
  min_bucket_reso: ["minBucketReso", "int", "dataset"],
  max_bucket_reso: ["maxBucketReso", "int", "dataset"],
  bucket_reso_steps: ["bucketResoSteps", "int", "dataset"],
  bucket_no_upscale: ["bucketNoUpscale", "bool", "dataset"],
  prior_loss_weight: ["priorLossWeight", "number", "dataset"],
  image_dir: ["imageDir", "string", "subset-only"],
  is_reg: ["isReg", "bool", "subset-only"],
  num_repeats: ["numRepeats", "int", "subset"],
  class_tokens: ["classTokens", "string", "subset"],
  caption_extension: ["captionExtension", "string", "subset"],
  flip_aug: ["flipAug", "bool", "subset"],
  shuffle_caption: ["shuffleCaption", "bool", "subset"],
  caption_separator: ["captionSeparator", "string", "subset"],
  keep_tokens: ["keepTokens", "int", "subset"],
  keep_tokens_separator: ["keepTokensSeparator", "string", "subset"],
  caption_prefix: ["captionPrefix", "string", "subset"],
  caption_suffix: ["captionSuffix", "string", "subset"],
  caption_dropout_rate: ["captionDropoutRate", "number", "subset"],
  caption_dropout_every_n_epochs: ["captionDropoutEveryNEpochs", "int", "subset"],
  caption_tag_dropout_rate: ["captionTagDropoutRate", "number", "subset"],
};

/** kohya keys we know but do not implement: named as such in the error. */
const UNSUPPORTED = [
  "color_aug",
  "random_crop",
  "face_crop_aug_range",
  "enable_wildcard",
  "secondary_separator",
  "token_warmup_min",
  "token_warmup_step",
  "custom_attributes",
  "cache_info",
  "alpha_mask",
  "metadata_file",
  "conditioning_data_dir",
  "validation_seed",
  "validation_split",
  "network_multiplier",
  "resize_interpolation",
  "debug_dataset",
];

/** Dataset-level defaults (kohya's). */
export const DATASET_DEFAULTS: Omit<DatasetConfig, "subsets"> = {
  resolution: [512, 512],
  batchSize: 1,
  enableBucket: false,
  minBucketReso: 256,
  maxBucketReso: 1024,
  bucketResoSteps: 64,
  bucketNoUpscale: false,
  priorLossWeight: 1,
};

/** Subset-level defaults (kohya's). */
export const SUBSET_DEFAULTS: Omit<SubsetConfig, "imageDir"> = {
  numRepeats: 1,
  isReg: false,
  captionExtension: ".caption",
  flipAug: false,
};

function convert(value: unknown, kind: Kind, where: () => string): unknown {
  const bad = (want: string): never => {
    throw new ConfigError(`${where()} must be ${want}, got ${JSON.stringify(value)}`);
  };
  switch (kind) {
    case "int":
      return Number.isInteger(value) ? value : bad("a whole number");
    case "number":
      return typeof value === "number" && Number.isFinite(value) ? value : bad("a number");
    case "bool":
      return typeof value === "boolean" ? value : bad("true or false");
    case "string":
      return typeof value === "string" ? value : bad("a string");
    default: {
      if (Number.isInteger(value)) return [value, value];
      if (Array.isArray(value) && value.length === 2 && value.every(Number.isInteger)) {
        return [value[0], value[1]];
      }
      return bad("a whole number or [width, height]");
    }
  }
}

/** Raw key/value settings in camelCase, as read from one TOML table or from flags. */
export type Settings = Record<string, unknown>;

function readTable(
  table: TomlTable,
  allowed: Level[],
  text: string,
  file: string,
  section: string,
): Settings {
  const out: Settings = {};
  for (const [key, value] of Object.entries(table)) {
    if (key === "subsets" || key === "datasets") continue;
    const at = (): string => {
      const line = keyLine(text, key);
      return `${file}${line ? ` line ${line}` : ""} (${section}) key ${key}`;
    };
    const spec = KEYS[key];
    if (!spec) {
      const why = UNSUPPORTED.includes(key) ? "is a kohya option not supported here" : "is unknown";
      throw new ConfigError(
        `${at()} ${why}; remove it (supported keys: ${Object.keys(KEYS).join(", ")})`,
      );
    }
    if (!allowed.includes(spec[2])) {
      throw new ConfigError(`${at()} belongs in [[datasets.subsets]]; move it there`);
    }
    out[spec[0]] = convert(value, spec[1], at);
  }
  return out;
}

function tables(value: unknown, what: string, file: string): TomlTable[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "object" && v !== null)) {
    throw new ConfigError(`${file}: ${what} must be an array of tables ([[${what}]])`);
  }
  return value as TomlTable[];
}

/** Builds datasets from layered settings: defaults, then general, then each dataset's own. */
export function resolveDataset(layers: Settings[], subsets: Settings[]): DatasetConfig {
  const merged: Settings = Object.assign({}, ...layers);
  const ds: Settings = { ...DATASET_DEFAULTS };
  const inherited: Settings = { ...SUBSET_DEFAULTS };
  for (const [k, v] of Object.entries(merged)) {
    const spec = Object.values(KEYS).find((s) => s[0] === k);
    if (spec?.[2] === "dataset") ds[k] = v;
    else inherited[k] = v;
  }
  return {
    ...(ds as Omit<DatasetConfig, "subsets">),
    subsets: subsets.map((s) => ({ ...inherited, ...s }) as unknown as SubsetConfig),
  };
}

/**
 * Reads kohya's dataset TOML. Unknown keys, keys kohya has but we do not support, wrong types and
 * a subset without `image_dir` are errors naming the file, line and key.
 *
 * @example
 * ```ts
 * import { parseDatasetToml } from "./dataset_config.ts";
 * const [ds] = parseDatasetToml(`
 * [general]
 * shuffle_caption = true
 * [[datasets]]
 * resolution = [512, 768]
 * [[datasets.subsets]]
 * image_dir = "img/dog"
 * num_repeats = 10
 * `, "dataset.toml");
 * console.log(ds!.resolution, ds!.subsets[0]!.shuffleCaption); // [512, 768] true
 * ```
 */
export function parseDatasetToml(
  text: string,
  file: string,
  defaults: Settings = {},
): DatasetConfig[] {
  const root = parseToml(text, file);
  for (const key of Object.keys(root)) {
    if (key !== "general" && key !== "datasets") {
      throw new ConfigError(
        `${file} line ${keyLine(text, key) || "?"}: top-level key ${key} is unknown; ` +
          "use [general], [[datasets]] and [[datasets.subsets]]",
      );
    }
  }
  const general = readTable(
    (root.general ?? {}) as TomlTable,
    ["dataset", "subset"],
    text,
    file,
    "[general]",
  );
  const datasets = tables(root.datasets, "datasets", file);
  if (datasets.length === 0) {
    throw new ConfigError(`${file} has no [[datasets]]; add one with its [[datasets.subsets]]`);
  }
  return datasets.map((d, i) => {
    const own = readTable(d, ["dataset", "subset"], text, file, `datasets ${i + 1}`);
    const subs = tables(d.subsets, "datasets.subsets", file).map((s, j) => {
      const section = `datasets ${i + 1} subset ${j + 1}`;
      const read = readTable(s, ["subset", "subset-only"], text, file, section);
      if (typeof read.imageDir !== "string") {
        throw new ConfigError(`${file} (${section}) has no image_dir; add the image folder`);
      }
      return read;
    });
    if (subs.length === 0) {
      throw new ConfigError(
        `${file} (datasets ${i + 1}) has no [[datasets.subsets]]; add one with an image_dir`,
      );
    }
    return resolveDataset([defaults, general, own], subs);
  });
}

/**
 * kohya's folder name rule: `<repeats>_<class tokens>` (class tokens may hold underscores);
 * `null` when the name does not start with a whole number (kohya skips such folders).
 *
 * @example
 * ```ts
 * import { parseSubsetDirName } from "./dataset_config.ts";
 * console.log(parseSubsetDirName("10_sks dog")); // { repeats: 10, classTokens: "sks dog" }
 * ```
 */
export function parseSubsetDirName(name: string): { repeats: number; classTokens: string } | null {
  const [head, ...rest] = name.split("_");
  // python int() accepts surrounding spaces and a sign; kohya skips folders whose repeats < 1
  if (!/^\s*[+-]?\d+\s*$/.test(head!)) return null;
  return { repeats: Number(head), classTokens: rest.join("_") };
}
