/**
 * The settings and the result of a pretraining run (`pretrain` in pretrain_fs.ts), and the
 * stream of captioned images it trains on.
 *
 * @module
 */
import type { NormKind } from "../nn/layers/_norm.ts";
import type { ClipTokenizer } from "../nn/tokenizer.ts";

/** Items of the training stream: RGB bytes `[H, W, 3]` and a caption each. */
export interface PretrainItems {
  /** One image per item, row-major RGB bytes. */
  rgb: Uint8Array[];
  /** One caption per item. */
  captions: string[];
}

/** The stream: items `start .. start + count - 1`, the same on every call. */
export type PretrainSource = (start: number, count: number) => PretrainItems;

/** Settings of a pretraining run. */
export interface PretrainOptions {
  /**
   * Which stages to run: `decoder` (with `init`) trains only the VAE's decoder, so the latents
   * the U-Net learned stay exactly as they were, and writes the model folder.
   */
  stage: "vae" | "unet" | "all" | "decoder";
  /** Optimizer steps of the U-Net stage (and of the VAE stage unless `vaeSteps` is given). */
  steps: number;
  /** Optimizer steps of the VAE stage (default `steps`). */
  vaeSteps?: number;
  /** Images per step. */
  batchSize: number;
  /** Run folder. */
  out: string;
  /** Seed of weights, noise and data. */
  seed: number;
  /** A state folder to continue from. */
  resume?: string;
  /**
   * A mini SD folder this command wrote (e.g. the shipped one) whose weights start the run
   * instead of random ones, with a fresh optimizer and learning-rate schedule. With `stage`
   * `unet` its VAE is used frozen as it is. The weights' metadata then lists every piece of
   * the model's training (`denoise_history`).
   */
  init?: string;
  /** Save state every n steps (default 0: only at the end of each stage). */
  saveEveryNSteps?: number;
  /** Model size (default `mini`). */
  size?: "mini" | "tiny";
  /**
   * The U-Net's ResNet and output norms (default `group`, SD's). `batch` trains with batch
   * statistics and sets the running ones by an exact AdaBN estimate after the last step (see
   * `pretrain_norm_stats.ts`). With `init` a group-norm folder is converted: GroupNorm weight
   * and bias become the BatchNorm2d's, the running statistics are estimated before the first
   * step, and the text encoder stays frozen, so the two models share their VAE and text encoder
   * bit for bit and differ only in the U-Net.
   */
  norm?: NormKind;
  /**
   * The VAE's block widths instead of the size's (e.g. `[32, 64, 64]`; the first must divide by
   * the size's norm groups). The folder's config records them, so loaders need nothing else.
   */
  vaeChannels?: readonly number[];
  /** Image side (default 32). */
  imageSize?: number;
  /** Learning rates (defaults 1e-3 for the VAE, 3e-4 for the U-Net stage). */
  vaeLr?: number;
  /** The U-Net stage's learning rate. */
  unetLr?: number;
  /** Share of captions replaced by "" in the U-Net stage, for classifier-free guidance (default 0.1). */
  captionDropout?: number;
  /**
   * Min-SNR loss weighting of the U-Net stage (Hang et al. 2023; kohya's `--min_snr_gamma`),
   * default 5; 0 turns it off. The logged loss is the weighted one.
   */
  minSnrGamma?: number;
  /**
   * An exponential moving average (EMA) of the U-Net stage's trained weights (text encoder and
   * U-Net), in (0, 1); 0 or absent: off. After every optimizer step the average moves toward the
   * weights with diffusers' `EMAModel` rule without warm-up power (`training_utils.py`,
   * `get_decay`): update n uses decay 0 for n = 1, then min(emaDecay, (1 + s) / (10 + s)) with
   * s = n - 1. The stage's report samples, the batch norms' running statistics and the written
   * model use the averaged weights, which give cleaner samples from the same steps (LDM's and
   * diffusers' `--use_ema`; diffusers' default decay 0.9999). The state folder keeps the average
   * for `--resume`, and the weights' metadata records the decay.
   */
  emaDecay?: number;
  /** Prompts drawn into the U-Net stage's report when it ends (20 euler_a steps, CFG 5). */
  samplePrompts?: readonly string[];
  /**
   * The VAE stage's images (default: the stream's). The CLI gives it every shape and fill, the
   * concepts' too: the VAE is an image codec, and a LoRA on the U-Net cannot draw what its
   * decoder cannot show. The text encoder and U-Net still never see the concepts.
   */
  vaeSource?: PretrainSource;
  /** Steps between loss readbacks and progress lines (default 10). */
  logEvery?: number;
  /** The tokenizer and its folder's files (written to `model/tokenizer/`). */
  tokenizer: ClipTokenizer;
  /** The tokenizer folder's files by name. */
  tokenizerFiles: Record<string, string>;
  /** The command line, recorded in the weights' metadata. */
  command: string;
  /** Where progress lines go (default `console.log`). */
  print?: (line: string) => void;
}

/** What a pretraining run returns. */
export interface PretrainResult {
  /** The diffusers folder (when the U-Net stage finished). */
  model: string | null;
  /** Mean loss of the first and last logged interval of each stage run now. */
  losses: { stage: "vae" | "unet"; first: number; last: number }[];
  /** Wall time of this invocation in seconds. */
  wallSeconds: number;
}
