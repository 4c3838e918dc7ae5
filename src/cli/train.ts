/**
 * `mod.ts train`: a LoRA run with kohya sd-scripts' flags (ours hyphenated, kohya's underscore
 * spellings too), an optional `--config` TOML whose keys are flag names, progress on stderr and
 * the written file on stdout.
 *
 * @module
 */
import { getDevice } from "../ops/device.ts";
import { escapeControls, quote } from "../nn/_untrusted.ts";
import { readUtf8 } from "../train/folders_fs.ts";
import { configArgs, parseRunConfig } from "../train/run_config.ts";
import { train, type TrainOptions } from "../train/trainer_fs.ts";
import {
  choiceOption,
  formatOptions,
  intOption,
  type OptionValues,
  parseOptions,
  UsageError,
} from "./_args.ts";
import {
  adabnTrainOptions,
  KNOWN_TRAIN_FLAGS,
  normalizeTrainArgs,
  TRAIN_OPTIONS,
  trainHelp,
} from "./train_options.ts";
import { DEMO, trainDemo } from "./train_demo.ts";

/** Help text of `train`. */
export const TRAIN_HELP: string =
  `Usage: deno run -A mod.ts train            (no arguments: the bundled demo)

With no arguments, train runs the bundled demo: a LoRA for the shipped concept datasets/zqstar
(five-pointed stars, trigger word "zqstar") on the shipped mini SD (models/mini_sd, 32x32), in a
few minutes on a CPU. It writes the LoRA, before/after sample grids, the loss curve and an HTML
report into ${DEMO.outputDir}/ and prints the measured effect. A shorter demo (CI, a quick look):

  deno run -A mod.ts train --demo-steps <n> --demo-images <n> --demo-sample-steps <n> \\
    --output-dir <dir>

For a real model, kohya style:

  deno run -A mod.ts train --pretrained_model_name_or_path <diffusers folder | .safetensors> \\
    --train_data_dir <dir with <repeats>_<trigger> folders> --output_dir <dir> \\
    --output_name my_lora --resolution 512 --enable_bucket --network_dim 8 --network_alpha 4 \\
    --learning_rate 1e-4 --train_batch_size 1 --max_train_steps 1600 --save_every_n_epochs 1 \\
    --logging_dir <dir> --sample_prompts prompts.txt --sample_every_n_epochs 1

${trainHelp(formatOptions)}`;

/** Parsed flags of `train`. */
export type TrainValues = OptionValues<typeof TRAIN_OPTIONS>;
export type { OptionValues, TrainOptions };

const FLOAT = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** A decimal number (exponents allowed, as kohya's 1e-4) from `min` to `max`. */
function float(name: string, raw: string, min: number, max = Infinity): number {
  const n = FLOAT.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(
      `--${name} must be a number from ${min}${max < Infinity ? ` to ${max}` : " up"}, such as ` +
        `1e-4; got ${quote(raw)}`,
    );
  }
  return n;
}

const whole = (name: string, raw: string, min = 1): number =>
  intOption(name, raw, 0, { min, max: Number.MAX_SAFE_INTEGER });

function intList(name: string, raw: string): number[] {
  return raw.split(",").map((s) => whole(name, s.trim(), 0));
}

/** A LyCORIS-style boolean network arg: True / False (any case), 1 / 0. */
function flag(name: string, raw: string): boolean {
  const v = raw.toLowerCase();
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new UsageError(`--${name} is True or False, got ${quote(raw)}`);
}

/** kohya's `--network_args` keys, written into the options. */
function networkArgs(list: readonly string[], o: TrainOptions): void {
  for (const item of list) {
    const eq = item.indexOf("=");
    const key = item.slice(0, eq).trim(), raw = item.slice(eq + 1).trim();
    if (eq < 0 || raw === "") {
      throw new UsageError(`--network-args takes key=value pairs; got ${quote(item)}`);
    }
    const f = (min: number, max = Infinity) => float(`network-args ${key}`, raw, min, max);
    switch (key) {
      case "conv_dim":
        o.convDim = whole("network-args conv_dim", raw);
        break;
      case "conv_alpha":
        o.convAlpha = f(0);
        break;
      case "block_dims":
        o.blockDims = intList("network-args block_dims", raw);
        break;
      case "block_alphas":
        o.blockAlphas = raw.split(",").map((s) => float("network-args block_alphas", s.trim(), 0));
        break;
      case "conv_block_dims":
        o.convBlockDims = intList("network-args conv_block_dims", raw);
        break;
      case "conv_block_alphas":
        o.convBlockAlphas = raw.split(",").map((s) =>
          float("network-args conv_block_alphas", s.trim(), 0)
        );
        break;
      case "down_lr_weight":
        o.downLrWeight = raw;
        break;
      case "up_lr_weight":
        o.upLrWeight = raw;
        break;
      case "mid_lr_weight":
        o.midLrWeight = f(0);
        break;
      case "block_lr_zero_threshold":
        o.blockLrZeroThreshold = f(0);
        break;
      case "rank_dropout":
        o.rankDropout = f(0, 1);
        break;
      case "module_dropout":
        o.moduleDropout = f(0, 1);
        break;
      case "loraplus_lr_ratio":
        o.loraplusLrRatio = f(0);
        break;
      case "loraplus_unet_lr_ratio":
        o.loraplusUnetLrRatio = f(0);
        break;
      case "loraplus_text_encoder_lr_ratio":
        o.loraplusTextEncoderLrRatio = f(0);
        break;
      case "train_norm":
        o.trainNorm = flag(`network-args ${key}`, raw);
        break;
      default:
        throw new UsageError(
          `--network-args has no key ${quote(key)}; see "mod.ts train --help" for the keys`,
        );
    }
  }
}

/** The trainer's options from parsed flags (ranges checked; the model checks sizes later). */
export function trainOptions(v: TrainValues): TrainOptions {
  const model = v["pretrained-model-name-or-path"], outputDir = v["output-dir"];
  if (model === undefined || outputDir === undefined) {
    throw new UsageError("train needs --pretrained-model-name-or-path and --output-dir");
  }
  if ((v["train-data-dir"] === undefined) === (v["dataset-config"] === undefined)) {
    throw new UsageError("train needs one of --train-data-dir (kohya folders) or --dataset-config");
  }
  // kohya flags whose only supported values are these: checked, nothing to set
  choiceOption("network-module", v["network-module"], "networks.lora", ["networks.lora"]);
  choiceOption("optimizer-type", v["optimizer-type"], "AdamW", ["AdamW", "adamw"]);
  choiceOption("save-model-as", v["save-model-as"], "safetensors", ["safetensors"]);
  choiceOption("mixed-precision", v["mixed-precision"], "no", ["no", "fp16", "bf16"]);
  const o: TrainOptions = { pretrainedModelNameOrPath: model, outputDir };
  const str = (k: keyof TrainValues & string, set: (s: string) => void) => {
    const raw = v[k];
    if (typeof raw === "string") set(raw);
  };
  const bool = (k: keyof TrainValues & string, set: () => void) => v[k] === true && set();
  str("train-data-dir", (s) => o.trainDataDir = s);
  str("reg-data-dir", (s) => o.regDataDir = s);
  str("dataset-config", (s) => o.datasetConfig = s);
  str("output-name", (s) => o.outputName = s);
  str(
    "save-precision",
    (s) => o.savePrecision = choiceOption("save-precision", s, "float", ["float", "fp16"]),
  );
  str("resolution", (s) => {
    const parts = s.split(",").map((p) => whole("resolution", p.trim()));
    if (parts.length > 2) throw new UsageError(`--resolution is <px> or <w,h>; got ${quote(s)}`);
    o.resolution = parts.length === 2 ? [parts[0]!, parts[1]!] : parts[0]!;
  });
  str("train-batch-size", (s) => o.trainBatchSize = whole("train-batch-size", s));
  bool("enable-bucket", () => o.enableBucket = true);
  str("min-bucket-reso", (s) => o.minBucketReso = whole("min-bucket-reso", s));
  str("max-bucket-reso", (s) => o.maxBucketReso = whole("max-bucket-reso", s));
  str("bucket-reso-steps", (s) => o.bucketResoSteps = whole("bucket-reso-steps", s));
  bool("bucket-no-upscale", () => o.bucketNoUpscale = true);
  str("caption-extension", (s) => o.captionExtension = s);
  bool("shuffle-caption", () => o.shuffleCaption = true);
  str("keep-tokens", (s) => o.keepTokens = whole("keep-tokens", s, 0));
  str("caption-prefix", (s) => o.captionPrefix = s);
  str("caption-suffix", (s) => o.captionSuffix = s);
  str("caption-dropout-rate", (s) => o.captionDropoutRate = float("caption-dropout-rate", s, 0, 1));
  str(
    "caption-tag-dropout-rate",
    (s) => o.captionTagDropoutRate = float("caption-tag-dropout-rate", s, 0, 1),
  );
  bool("flip-aug", () => o.flipAug = true);
  str("prior-loss-weight", (s) => o.priorLossWeight = float("prior-loss-weight", s, 0));
  bool("cache-latents", () => o.cacheLatents = true);
  bool("cache-latents-to-disk", () => o.cacheLatentsToDisk = true);
  str("network-dim", (s) => o.networkDim = whole("network-dim", s));
  str("network-alpha", (s) => o.networkAlpha = float("network-alpha", s, 0));
  networkArgs(v["network-args"] ?? [], o);
  str("network-dropout", (s) => o.networkDropout = float("network-dropout", s, 0, 1));
  bool("network-train-unet-only", () => o.networkTrainUnetOnly = true);
  str("clip-skip", (s) => o.clipSkip = whole("clip-skip", s));
  str("learning-rate", (s) => o.learningRate = float("learning-rate", s, 0));
  str("unet-lr", (s) => o.unetLr = float("unet-lr", s, 0));
  str("text-encoder-lr", (s) => o.textEncoderLr = float("text-encoder-lr", s, 0));
  str("loraplus-lr-ratio", (s) => o.loraplusLrRatio = float("loraplus-lr-ratio", s, 0));
  str(
    "loraplus-unet-lr-ratio",
    (s) => o.loraplusUnetLrRatio = float("loraplus-unet-lr-ratio", s, 0),
  );
  str(
    "loraplus-text-encoder-lr-ratio",
    (s) => o.loraplusTextEncoderLrRatio = float("loraplus-text-encoder-lr-ratio", s, 0),
  );
  str("lr-scheduler", (s) => o.lrScheduler = s);
  str("lr-warmup-steps", (s) => o.lrWarmupSteps = float("lr-warmup-steps", s, 0));
  str(
    "lr-scheduler-num-cycles",
    (s) => o.lrSchedulerNumCycles = whole("lr-scheduler-num-cycles", s),
  );
  str("lr-scheduler-power", (s) => o.lrSchedulerPower = float("lr-scheduler-power", s, 0));
  str("max-grad-norm", (s) => o.maxGradNorm = float("max-grad-norm", s, 0));
  str(
    "gradient-accumulation-steps",
    (s) => o.gradientAccumulationSteps = whole("gradient-accumulation-steps", s),
  );
  str("max-train-steps", (s) => o.maxTrainSteps = whole("max-train-steps", s));
  str("max-train-epochs", (s) => o.maxTrainEpochs = whole("max-train-epochs", s));
  str("seed", (s) => o.seed = whole("seed", s, 0));
  str("noise-offset", (s) => o.noiseOffset = float("noise-offset", s, 0));
  str(
    "multires-noise-iterations",
    (s) => o.multiresNoiseIterations = whole("multires-noise-iterations", s, 0),
  );
  str(
    "multires-noise-discount",
    (s) => o.multiresNoiseDiscount = float("multires-noise-discount", s, 0, 1),
  );
  str("min-snr-gamma", (s) => o.minSnrGamma = float("min-snr-gamma", s, 0));
  str("min-timestep", (s) => o.minTimestep = whole("min-timestep", s, 0));
  str("max-timestep", (s) => o.maxTimestep = whole("max-timestep", s));
  bool("v-parameterization", () => o.vParameterization = true);
  bool("gradient-checkpointing", () => o.gradientCheckpointing = true);
  str(
    "weight-dtype",
    (s) => o.weightDType = choiceOption("weight-dtype", s, "auto", ["auto", "f32", "f16"]),
  );
  str("save-every-n-steps", (s) => o.saveEveryNSteps = whole("save-every-n-steps", s));
  str("save-every-n-epochs", (s) => o.saveEveryNEpochs = whole("save-every-n-epochs", s));
  lastN(v, o);
  bool("save-state", () => o.saveState = true);
  str("resume", (s) => o.resume = s);
  str("log-dir", (s) => o.logDir = s);
  str("log-every", (s) => o.logEvery = whole("log-every", s));
  str("sample-prompts", (s) => o.samplePrompts = s);
  str("sample-every-n-steps", (s) => o.sampleEveryNSteps = whole("sample-every-n-steps", s));
  str("sample-every-n-epochs", (s) => o.sampleEveryNEpochs = whole("sample-every-n-epochs", s));
  bool("sample-at-first", () => o.sampleAtFirst = true);
  str("sample-sampler", (s) => o.sampleSampler = s);
  Object.assign(o, adabnTrainOptions(v.adabn, v["adabn-bands"]));
  return o;
}

/**
 * kohya's `--save_last_n_steps N` keeps the step files saved within the last N steps (with
 * saves every E steps that is N / E + 1 files); `--save_last_n_epochs N` keeps N epoch files.
 */
function lastN(v: TrainValues, o: TrainOptions): void {
  const steps = v["save-last-n-steps"], epochs = v["save-last-n-epochs"];
  if (epochs !== undefined) o.saveLastNEpochFiles = whole("save-last-n-epochs", epochs);
  if (steps !== undefined) {
    const every = o.saveEveryNSteps;
    if (every === undefined) {
      throw new UsageError("--save-last-n-steps needs --save-every-n-steps");
    }
    o.saveLastNStepFiles = Math.floor(whole("save-last-n-steps", steps) / every) + 1;
  }
}

/** The arguments with a `--config` file's flags put first (so the command line wins). */
async function withConfig(args: string[]): Promise<string[]> {
  const at = args.findIndex((a) => a === "--config" || a.startsWith("--config="));
  if (at < 0) return args;
  const file = args[at]!.startsWith("--config=") ? args[at]!.slice(9) : args[at + 1];
  if (file === undefined || file.startsWith("--")) {
    throw new UsageError("--config needs a TOML file");
  }
  const flags = parseRunConfig(await readUtf8(file, "run config"), file, KNOWN_TRAIN_FLAGS);
  delete flags["config"];
  return [...normalizeTrainArgs(configArgs(flags)), ...args];
}

/**
 * Runs `train` with its arguments (after the command name); returns the exit code.
 *
 * @example
 * ```ts ignore
 * import { trainCommand } from "./train.ts";
 * await trainCommand(["--pretrained_model_name_or_path", "sd15", "--train_data_dir", "img",
 *   "--output_dir", "out", "--network_dim", "8", "--max_train_steps", "500"]);
 * ```
 */
export async function trainCommand(args: string[]): Promise<number> {
  const normalized = normalizeTrainArgs(args);
  if (normalized.includes("--help") || normalized.includes("-h")) {
    console.log(TRAIN_HELP);
    return 0;
  }
  if (args.length === 0 || normalized.some((a) => a.startsWith("--demo-"))) {
    return await trainDemo(args);
  }
  const values = parseOptions(await withConfig(normalized), TRAIN_OPTIONS, "train");
  const options = trainOptions(values);
  await getDevice();
  const enc = new TextEncoder();
  const r = await train(options, {
    progress: (line) => Deno.stderr.writeSync(enc.encode(`${line}\n`)),
    message: (m) => Deno.stderr.writeSync(enc.encode(`${escapeControls(m)}\n`)),
  });
  r.network.dispose();
  for (const m of [r.models.unet, r.models.vae, r.models.textEncoder]) m.dispose();
  console.log(`wrote ${escapeControls(r.output)} (${r.steps} steps)`);
  return 0;
}
