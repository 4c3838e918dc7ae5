/**
 * The option table of `mod.ts train`, grouped by topic for its help, and the rewriting of kohya
 * sd-scripts spellings into ours: `--network_dim` is `--network-dim`, `--logging_dir` is
 * `--log-dir`, `--network_args a=1 b=2` (several values after one flag) becomes one flag per
 * value, and a kohya flag this trainer does not have is named as not supported.
 *
 * @module
 */
import { quote } from "../nn/_untrusted.ts";
import { type OptionSpec, type OptionTable, UsageError } from "./_args.ts";
import type { AdabnTrainMode } from "../train/adabn_train.ts";

const S = "string" as const, B = "boolean" as const;

/** The options of `train` by help topic (names in our hyphenated spelling). */
export const TRAIN_OPTION_GROUPS = {
  "Model and output": {
    "pretrained-model-name-or-path": {
      type: S,
      value: "<path>",
      help: "base SD 1.x model: a diffusers folder or a single-file .safetensors (required)",
    },
    "output-dir": { type: S, value: "<dir>", help: "where LoRA files go (required; created)" },
    "output-name": { type: S, value: "<name>", help: 'file name stem (default "last")' },
    "save-model-as": { type: S, value: "safetensors", help: "only safetensors is written" },
    "save-precision": {
      type: S,
      value: "<float|fp16>",
      help: "stored precision of LoRA files (default float)",
    },
    config: {
      type: S,
      value: "<file.toml>",
      help: "run config whose keys are flag names (kohya's config_file); flags given win",
    },
  },
  "Data": {
    "train-data-dir": {
      type: S,
      value: "<dir>",
      help: "kohya layout: <repeats>_<class tokens> subfolders of images and captions",
    },
    "reg-data-dir": { type: S, value: "<dir>", help: "regularization folders, same layout" },
    "dataset-config": {
      type: S,
      value: "<file.toml>",
      help: "kohya dataset TOML ([general], [[datasets]], [[datasets.subsets]]) instead",
    },
    resolution: {
      type: S,
      value: "<px|w,h>",
      help: "base resolution, a multiple of the model's downsampling (64 for SD 1.x; 512)",
    },
    "train-batch-size": { type: S, value: "<n>", help: "images per batch (1)" },
    "enable-bucket": { type: B, help: "aspect-ratio buckets (kohya's make_bucket_resolutions)" },
    "min-bucket-reso": { type: S, value: "<px>", help: "smallest bucket side (256)" },
    "max-bucket-reso": { type: S, value: "<px>", help: "largest bucket side (1024)" },
    "bucket-reso-steps": { type: S, value: "<px>", help: "bucket side step (64)" },
    "bucket-no-upscale": { type: B, help: "buckets no larger than each image" },
    "caption-extension": { type: S, value: "<ext>", help: 'caption file extension (".caption")' },
    "shuffle-caption": { type: B, help: "shuffle comma-separated tags" },
    "keep-tokens": { type: S, value: "<n>", help: "tags kept in front when shuffling (0)" },
    "caption-prefix": { type: S, value: "<text>", help: "text put before every caption" },
    "caption-suffix": { type: S, value: "<text>", help: "text put after every caption" },
    "caption-dropout-rate": { type: S, value: "<p>", help: "probability of an empty caption" },
    "caption-tag-dropout-rate": {
      type: S,
      value: "<p>",
      help: "probability of dropping each tag",
    },
    "flip-aug": { type: B, help: "random horizontal flips" },
    "prior-loss-weight": { type: S, value: "<w>", help: "loss weight of reg images (1)" },
    "cache-latents": { type: B, help: "encode each image once, in memory" },
    "cache-latents-to-disk": {
      type: B,
      help: "keep cached latents next to the images (rewritten when the VAE, size or crop change)",
    },
  },
  "Network": {
    "network-module": { type: S, value: "networks.lora", help: "only kohya's networks.lora" },
    "network-dim": { type: S, value: "<rank>", help: "LoRA rank (4)" },
    "network-alpha": { type: S, value: "<alpha>", help: "LoRA alpha (1)" },
    "network-args": {
      type: S,
      value: "<key=value...>",
      multiple: true,
      help: "conv_dim, conv_alpha, block_dims, block_alphas, conv_block_dims, " +
        "conv_block_alphas, down_lr_weight, mid_lr_weight, up_lr_weight, " +
        "block_lr_zero_threshold, rank_dropout, module_dropout, loraplus_lr_ratio, " +
        "loraplus_unet_lr_ratio, loraplus_text_encoder_lr_ratio, train_norm (LyCORIS: " +
        "trainable norm weight/bias deltas, True or False)",
    },
    "network-dropout": { type: S, value: "<p>", help: "dropout of the rank activations (0)" },
    "network-train-unet-only": { type: B, help: "adapters on the U-Net only" },
    "clip-skip": {
      type: S,
      value: "<n>",
      help: "condition on the CLIP hidden state n layers from the end (1; 2 for anime models)",
    },
    adabn: {
      type: S,
      value: "<before|during>",
      help: "AdaBN (batch-norm U-Nets only): re-estimate the statistics on the training " +
        "images before the first step, then freeze them (before) or keep adapting (during); " +
        "the LoRA files carry them (off; also --adabn_mode)",
    },
    "adabn-bands": {
      type: S,
      value: "<b0,b1,...>",
      help: "AdaBN timestep band boundaries (0,1000: one band)",
    },
  },
  "Optimizer and schedule": {
    "optimizer-type": { type: S, value: "AdamW", help: "only AdamW" },
    "learning-rate": { type: S, value: "<lr>", help: "learning rate (1e-4)" },
    "unet-lr": { type: S, value: "<lr>", help: "U-Net rate (default --learning-rate)" },
    "text-encoder-lr": {
      type: S,
      value: "<lr>",
      help: "text-encoder rate (default --learning-rate)",
    },
    "loraplus-lr-ratio": { type: S, value: "<r>", help: "LoRA+: lora_up rates times r" },
    "loraplus-unet-lr-ratio": { type: S, value: "<r>", help: "LoRA+ ratio of the U-Net" },
    "loraplus-text-encoder-lr-ratio": {
      type: S,
      value: "<r>",
      help: "LoRA+ ratio of the text encoder",
    },
    "lr-scheduler": {
      type: S,
      value: "<name>",
      help: "constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial " +
        "(constant)",
    },
    "lr-warmup-steps": { type: S, value: "<n|ratio>", help: "warm-up steps, or a fraction < 1" },
    "lr-scheduler-num-cycles": { type: S, value: "<n>", help: "cosine_with_restarts cycles (1)" },
    "lr-scheduler-power": { type: S, value: "<p>", help: "polynomial power (1)" },
    "max-grad-norm": { type: S, value: "<n>", help: "gradient norm clip, 0 for none (1)" },
    "gradient-accumulation-steps": { type: S, value: "<n>", help: "batches per step (1)" },
    "max-train-steps": { type: S, value: "<n>", help: "optimizer steps (1600)" },
    "max-train-epochs": { type: S, value: "<n>", help: "epochs (overrides --max-train-steps)" },
    seed: { type: S, value: "<n>", help: "seed of data order, noise and adapters (42)" },
  },
  "Noise and loss": {
    "noise-offset": { type: S, value: "<x>", help: "noise offset (0)" },
    "multires-noise-iterations": { type: S, value: "<n>", help: "pyramid noise levels (0)" },
    "multires-noise-discount": { type: S, value: "<x>", help: "pyramid noise discount (0.3)" },
    "min-snr-gamma": { type: S, value: "<g>", help: "min-SNR weighting gamma (off)" },
    "min-timestep": { type: S, value: "<t>", help: "smallest timestep (0)" },
    "max-timestep": { type: S, value: "<t>", help: "one past the largest timestep (1000)" },
    "v-parameterization": { type: B, help: "v-prediction target (SD 2.x-v style models)" },
  },
  "Memory and precision": {
    "weight-dtype": {
      type: S,
      value: "<auto|f32|f16>",
      help: "base weight storage; auto is f16 where the adapter has shader-f16 (adapters and " +
        "optimizer stay f32)",
    },
    "mixed-precision": {
      type: S,
      value: "<no|fp16|bf16>",
      help: "accepted for kohya configs; precision follows --weight-dtype",
    },
    "gradient-checkpointing": {
      type: B,
      help: "recompute the U-Net's mid and up blocks in the backward pass (less memory)",
    },
    xformers: { type: B, help: "accepted for kohya configs; attention is always our own" },
    sdpa: { type: B, help: "accepted for kohya configs; attention is always our own" },
  },
  "Saving and resuming": {
    "save-every-n-steps": { type: S, value: "<n>", help: "save {name}-step{step:08d}" },
    "save-every-n-epochs": { type: S, value: "<n>", help: "save {name}-{epoch:06d}" },
    "save-last-n-steps": {
      type: S,
      value: "<n>",
      help: "keep step files of the last n steps only (as kohya)",
    },
    "save-last-n-epochs": { type: S, value: "<n>", help: "keep the last n epoch files only" },
    "save-state": { type: B, help: "a state folder with each save, for --resume" },
    resume: { type: S, value: "<dir>", help: "continue exactly from a state folder" },
  },
  "Logs and samples": {
    "log-dir": {
      type: S,
      value: "<dir>",
      help: "losses (JSONL, CSV), loss curve SVG and report.html (kohya: --logging_dir)",
    },
    "log-every": { type: S, value: "<n>", help: "read the loss back every n steps (10)" },
    "sample-prompts": {
      type: S,
      value: "<file>",
      help: "kohya prompt lines: prompt --n neg --w 512 --h 512 --d seed --s steps --l cfg " +
        "--ss sampler",
    },
    "sample-every-n-steps": { type: S, value: "<n>", help: "sample every n steps" },
    "sample-every-n-epochs": { type: S, value: "<n>", help: "sample every n epochs" },
    "sample-at-first": { type: B, help: "sample before training" },
    "sample-sampler": { type: S, value: "<name>", help: "sampler of the prompts (ddim)" },
    help: { type: B, short: "h", help: "show this help" },
  },
} as const satisfies Record<string, OptionTable>;

export type { OptionSpec, OptionTable };
/** The option groups' type. */
export type TrainOptionGroups = typeof TRAIN_OPTION_GROUPS;
/** Any one group's table. */
export type TrainOptionGroup = TrainOptionGroups[keyof TrainOptionGroups];
/** Merges a union of tables into one. */
export type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends
  (x: infer I) => void ? I : never;

/** Every option of `train` in one table. */
export const TRAIN_OPTIONS: UnionToIntersection<TrainOptionGroup> = Object.assign(
  {},
  ...Object.values(TRAIN_OPTION_GROUPS),
);

/** kohya spellings that are another name here. */
const ALIASES: Readonly<Record<string, string>> = {
  "logging-dir": "log-dir",
  "config-file": "config",
  "adabn-mode": "adabn",
};

/**
 * kohya `train_network.py` flags this trainer does not have, with what to do instead where
 * there is something.
 */
const UNSUPPORTED: Readonly<Record<string, string>> = {
  "v2": "SD 2.x models are not supported yet",
  "sdxl": "SDXL is not supported yet",
  "network-weights": "start from a fresh LoRA",
  "dim-from-weights": "give --network-dim",
  "scale-weight-norms": "",
  "optimizer-args": "AdamW uses betas 0.9, 0.999 and weight decay 0.01",
  "lr-scheduler-args": "",
  "lr-scheduler-type": "use --lr-scheduler",
  "lowram": "",
  "full-fp16": "use --weight-dtype f16",
  "full-bf16": "",
  "fp8-base": "use --weight-dtype f16",
  "no-half-vae": "",
  "mem-eff-attn": "",
  "vae": "use a model folder with the VAE you want",
  "max-token-length": "captions are 75 tokens",
  "color-aug": "",
  "random-crop": "",
  "face-crop-aug-range": "",
  "weighted-captions": "",
  "token-warmup-min": "",
  "token-warmup-step": "",
  "in-json": "use --train-data-dir or --dataset-config",
  "adaptive-noise-scale": "",
  "noise-offset-random-strength": "",
  "ip-noise-gamma": "",
  "debiased-estimation-loss": "",
  "scale-v-pred-loss-like-noise-pred": "",
  "zero-terminal-snr": "",
  "loss-type": "the loss is L2",
  "huber-c": "",
  "huber-schedule": "",
  "stop-text-encoder-training": "",
  "network-train-text-encoder-only": "",
  "cache-text-encoder-outputs": "a frozen text encoder's outputs are cached on their own",
  "log-with": "losses go to --log-dir",
  "log-prefix": "",
  "log-tracker-name": "",
  "wandb-api-key": "",
  "training-comment": "",
  "output-config": "",
  "save-state-on-train-end": "use --save-state",
  "save-last-n-steps-state": "",
  "save-last-n-epochs-state": "",
  "resume-from-huggingface": "",
  "huggingface-repo-id": "",
  "deepspeed": "",
  "max-data-loader-n-workers": "",
  "persistent-data-loader-workers": "",
  "tokenizer-cache-dir": "",
  "base-weights": "",
};

/** Every flag name `train` recognizes (ours, kohya aliases, and the unsupported kohya ones). */
export const KNOWN_TRAIN_FLAGS: readonly string[] = [
  ...Object.keys(TRAIN_OPTIONS),
  ...Object.keys(ALIASES),
  ...Object.keys(UNSUPPORTED),
];

/**
 * Rewrites kohya spellings into ours and rejects kohya flags that have no counterpart here
 * (naming them). Values are left alone.
 *
 * @example
 * ```ts
 * import { normalizeTrainArgs } from "./train_options.ts";
 * console.log(normalizeTrainArgs(["--network_args", "conv_dim=4", "conv_alpha=1"]));
 * // ["--network-args", "conv_dim=4", "--network-args", "conv_alpha=1"]
 * ```
 */
export function normalizeTrainArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) {
      out.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const raw = (eq < 0 ? a.slice(2) : a.slice(2, eq)).replaceAll("_", "-");
    const flag = ALIASES[raw] ?? raw;
    if (flag in UNSUPPORTED) {
      const hint = UNSUPPORTED[flag];
      throw new UsageError(
        `The kohya option ${quote(`--${raw}`)} is not supported here${hint ? `; ${hint}` : ""}`,
      );
    }
    const rebuilt = `--${flag}${eq < 0 ? "" : a.slice(eq)}`;
    if (flag !== "network-args" || eq >= 0) {
      out.push(rebuilt);
      continue;
    }
    // kohya's nargs="*": every following word up to the next flag is one argument
    let n = 0;
    while (i + 1 < args.length && !args[i + 1]!.startsWith("--")) {
      out.push("--network-args", args[++i]!);
      n++;
    }
    if (n === 0) out.push(rebuilt);
  }
  return out;
}

/** Help text of `train`, with the options grouped by topic. */
export function trainHelp(format: (t: OptionTable) => string): string {
  return `Usage: deno run -A mod.ts train --pretrained-model-name-or-path <model> \\
         --train-data-dir <dir> --output-dir <dir> [options]

Trains a LoRA on a Stable Diffusion 1.x model, kohya sd-scripts style: the same folder layout,
dataset TOML, flags (kohya's underscore spellings work too) and output files.

${
    Object.entries(TRAIN_OPTION_GROUPS).map(([title, table]) => `${title}:\n${format(table)}`)
      .join("\n\n")
  }`;
}

/**
 * The trainer's AdaBN options from the `--adabn` and `--adabn_bands` values (unset: none).
 *
 * @example
 * ```ts
 * import { adabnTrainOptions } from "./train_options.ts";
 * console.log(adabnTrainOptions("during", "0,500,1000")); // { adabn: "during", adabnBands: [0, 500, 1000] }
 * ```
 */
export function adabnTrainOptions(
  mode: string | undefined,
  bands: string | undefined,
): { adabn?: AdabnTrainMode; adabnBands?: number[] } {
  if (mode !== undefined && mode !== "before" && mode !== "during") {
    throw new UsageError(`--adabn is before or during, got ${quote(mode)}`);
  }
  const out: { adabn?: AdabnTrainMode; adabnBands?: number[] } = {};
  if (mode !== undefined) out.adabn = mode;
  if (bands !== undefined) {
    const list = bands.split(",").map((p) => Number(p.trim()));
    if (list.length < 2 || list.some((b) => !Number.isFinite(b))) {
      throw new UsageError(
        `--adabn_bands is ascending boundaries such as 0,500,1000, got ${quote(bands)}`,
      );
    }
    out.adabnBands = list;
  }
  return out;
}
