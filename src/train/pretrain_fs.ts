/**
 * `mod.ts pretrain`'s engine (Deno): trains the mini SD from scratch in two stages on a
 * deterministic stream of captioned images: the VAE, then the text encoder with the U-Net. Each
 * stage prints the trainer's progress line, logs losses (JSONL, CSV, SVG curve, HTML report),
 * saves resumable state folders, and the run ends with an f16 diffusers folder.
 *
 * Layout of `out`: `logs/vae/`, `logs/unet/` (losses and report), `state/` (the latest
 * resumable state), `vae_stage.safetensors` (the trained VAE, f32, read by the second stage) and
 * `model/` (the diffusers folder).
 *
 * @module
 */
import { join } from "node:path";
import { AdamW } from "../ops/adamw.ts";
import { noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { deviceInfo, getDevice } from "../ops/device.ts";
import { Generator, manualSeed } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { CLIPTextModel } from "../nn/clip.ts";
import type { NormKind } from "../nn/layers/_norm.ts";
import type { Module } from "../nn/module.ts";
import { serializeSafetensors, toSafetensorsInputs } from "../nn/safetensors.ts";
import type { ClipTokenizer } from "../nn/tokenizer.ts";
import { UNet2DConditionModel } from "../nn/unet.ts";
import { AutoencoderKL } from "../nn/vae.ts";
import { ensureWritableDir, writeFileAtomic } from "./atomic_fs.ts";
import { ConfigError } from "./errors.ts";
import { miniSdConfig } from "./pretrain_config.ts";
import { writeMiniSdFolder } from "./pretrain_save_fs.ts";
import { UnetStageStepper } from "./pretrain_unet_step.ts";
import { VaeStepper } from "./pretrain_vae_step.ts";
import { formatProgress, LossSmoother, RateMeter } from "./progress.ts";
import type { ReportSample } from "./report_html.ts";
import { RunLog, writeReport } from "./run_log_fs.ts";
import { sampleJpeg } from "./sample_jpeg_fs.ts";
import { folderUnetNorm, initFromFolder, loadVae, type TrainingPiece } from "./pretrain_init_fs.ts";
import {
  estimateNormStatistics,
  NORM_ESTIMATE_BATCHES,
  type NormEstimateBatch,
} from "./pretrain_norm_stats.ts";
import { lrSchedule } from "./lr_schedule.ts";
import { Rng } from "./random.ts";
import { readTrainState, saveTrainState } from "./train_state_fs.ts";

/** Items of the training stream: RGB bytes `[H, W, 3]` and a caption each. */
export interface PretrainItems {
  /** One image per item, row-major RGB bytes. */
  rgb: Uint8Array[];
  /** One caption per item. */
  captions: string[];
}

/** The stream: items `start .. start + count - 1`, the same on every call. */
export type PretrainSource = (start: number, count: number) => PretrainItems;

/** Settings of {@link pretrain}. */
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

/** What {@link pretrain} returns. */
export interface PretrainResult {
  /** The diffusers folder (when the U-Net stage finished). */
  model: string | null;
  /** Mean loss of the first and last logged interval of each stage run now. */
  losses: { stage: "vae" | "unet"; first: number; last: number }[];
  /** Wall time of this invocation in seconds. */
  wallSeconds: number;
}

interface Extra {
  stage: "vae" | "unet";
  seed: number;
  size: "mini" | "tiny";
  batchSize: number;
  imageSize: number;
  scalingFactor: number;
  wallSeconds: number;
}

/** Images in [-1, 1] as a `[B, 3, H, W]` tensor. */
function imagesTensor(rgb: readonly Uint8Array[], side: number): Tensor {
  const B = rgb.length, hw = side * side;
  const out = new Float32Array(B * 3 * hw);
  rgb.forEach((img, b) => {
    if (img.length !== 3 * hw) {
      throw new ConfigError(`Item ${b} of a batch has ${img.length} bytes; expected ${3 * hw}`);
    }
    for (let p = 0; p < hw; p++) {
      for (let c = 0; c < 3; c++) out[(b * 3 + c) * hw + p] = img[p * 3 + c]! / 127.5 - 1;
    }
  });
  return tensor(out, [B, 3, side, side]);
}

function named(m: Module, prefix: string): Map<string, Tensor> {
  return new Map(
    m.namedParameters().filter(([, p]) => p.trainable).map(([k, p]) => [
      `${prefix}.${k}`,
      p.value,
    ]),
  );
}

/** Puts saved weights in place (before an optimizer takes the parameters' tensors). */
function adopt(models: Record<string, Module>, weights: Map<string, Tensor>): void {
  for (const [prefix, m] of Object.entries(models)) {
    const mine = new Map<string, Tensor>();
    for (const [k, t] of weights) {
      if (k.startsWith(prefix + ".")) mine.set(k.slice(prefix.length + 1), t);
    }
    m.loadStateDict(mine, { strict: false, copy: true });
  }
}

/**
 * Pretrains the mini SD (see the module doc for the folder layout).
 *
 * @example
 * ```ts ignore
 * const r = await pretrain(world, { stage: "all", steps: 2000, batchSize: 16, out: "runs/mini", seed: 1, ... });
 * console.log(r.model);
 * ```
 */
export async function pretrain(
  source: PretrainSource,
  options: PretrainOptions,
): Promise<PretrainResult> {
  const t0 = performance.now();
  const o = options;
  const size = o.size ?? "mini";
  const side = o.imageSize ?? 32;
  const vaeSteps = o.vaeSteps ?? o.steps;
  const vaeSource = o.vaeSource ?? source;
  const logEvery = o.logEvery ?? 10;
  const norm = o.norm ?? "group";
  const print = o.print ?? ((l: string) => console.log(l));
  for (
    const [k, v] of [["steps", o.steps], ["vae steps", vaeSteps], [
      "batch size",
      o.batchSize,
    ]] as const
  ) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ConfigError(`The ${k} is ${v}; use a whole number >= 1`);
    }
  }
  await ensureWritableDir(o.out);
  await getDevice();
  const cfg = miniSdConfig(size, o.tokenizer.vocabSize);
  if (o.vaeChannels) {
    const groups = cfg.vae.normNumGroups ?? 32;
    if (o.vaeChannels.some((c) => c % groups !== 0)) {
      throw new ConfigError(
        `The VAE widths ${o.vaeChannels.join(",")} must be multiples of the ${size} size's ` +
          `${groups} norm groups; pass e.g. ${
            o.vaeChannels.map((c) => Math.ceil(c / groups) * groups).join(",")
          }`,
      );
    }
    cfg.vae.blockOutChannels = [...o.vaeChannels];
  }
  manualSeed(o.seed);
  const vae = new AutoencoderKL(cfg.vae);
  const te = new CLIPTextModel(cfg.textEncoder);
  const unet = new UNet2DConditionModel({ ...cfg.unet, norm });
  const losses: PretrainResult["losses"] = [];
  if (o.init && o.resume) {
    throw new ConfigError("Pass --init or --resume, not both: --resume continues a run exactly");
  }
  const decoderOnly = o.stage === "decoder";
  if (norm === "batch" && (o.stage === "vae" || decoderOnly)) {
    throw new ConfigError(
      `--norm batch changes the U-Net, which --stage ${o.stage} does not train; use --stage unet ` +
        "or all",
    );
  }
  if (norm === "batch" && o.resume) {
    throw new ConfigError(
      "--resume does not restore batch-norm running statistics yet (the state holds trainable " +
        "weights only); rerun the --norm batch stage without --resume",
    );
  }
  if (decoderOnly && !o.init) {
    throw new ConfigError("--stage decoder fine-tunes a trained VAE; pass --init <model folder>");
  }
  const initNorm = o.init ? await folderUnetNorm(o.init) : null;
  if (initNorm === "batch" && norm === "group") {
    throw new ConfigError(`${o.init} has a batch-norm U-Net; pass --norm batch to continue it`);
  }
  const convertNorms = initNorm === "group" && norm === "batch";
  const history = o.init
    ? await initFromFolder(o.init, { vae, textEncoder: te, unet }, { convertNorms })
    : [];
  let priorWall = 0;
  let resumeStage: "vae" | "unet" | null = null;
  let resumed: Awaited<ReturnType<typeof readTrainState>> | null = null;
  if (o.resume) {
    resumed = await readTrainState(o.resume);
    const e = resumed.state.extra as unknown as Extra | undefined;
    if (!e || (e.stage !== "vae" && e.stage !== "unet")) {
      throw new ConfigError(
        `${o.resume} is not a pretraining state; pass a folder from mod.ts pretrain`,
      );
    }
    for (const k of ["seed", "size", "batchSize", "imageSize"] as const) {
      const want = k === "seed"
        ? o.seed
        : k === "size"
        ? size
        : k === "batchSize"
        ? o.batchSize
        : side;
      if (e[k] !== want) {
        throw new ConfigError(
          `The state in ${o.resume} was saved with ${k} ${
            e[k]
          }, not ${want}; resume with the same ${k}`,
        );
      }
    }
    resumeStage = e.stage;
    priorWall = e.wallSeconds;
    vae.config.scalingFactor = e.scalingFactor;
  }
  const wall = () => priorWall + (performance.now() - t0) / 1000;
  const extra = (stage: "vae" | "unet"): Extra => ({
    stage,
    seed: o.seed,
    size,
    batchSize: o.batchSize,
    imageSize: side,
    scalingFactor: vae.scalingFactor,
    wallSeconds: wall(),
  });
  const stateDir = join(o.out, "state");
  const vaeFile = join(o.out, "vae_stage.safetensors");

  const runVae = o.stage !== "unet" && resumeStage !== "unet";
  if (runVae) {
    const resuming = resumed !== null && resumeStage === "vae";
    if (resuming) adopt({ vae }, resumed!.weights);
    if (decoderOnly) { for (const m of ["encoder", "quant_conv"]) vae.child(m).freeze(); }
    const gen = new Generator(o.seed);
    const opt = new AdamW(vae.trainableParameters().map((p) => p.value), { lr: o.vaeLr ?? 1e-3 });
    const lrAt = stageLr(o.vaeLr ?? 1e-3, vaeSteps, 50);
    const stepper = new VaeStepper(vae, opt, gen, lrAt);
    if (resuming) {
      opt.loadState(resumed!.optimizer);
      stepper.loadState({
        step: resumed!.state.current_step,
        generatorOffset: resumed!.state.stepper.generatorOffset,
      });
    }
    const log = await RunLog.open(
      join(o.out, "logs", "vae"),
      resumed && resumeStage === "vae" ? { resumeStep: stepper.step } : {},
    );
    const r = await runStage("vae", vaeSteps, lrAt, log, stepper, (step) => {
      const items = vaeSource(step * o.batchSize, o.batchSize);
      scope(() => stepper.run(imagesTensor(items.rgb, side)));
    }, async () => {
      await saveTrainState(stateDir, named(vae, "vae"), opt, {
        current_epoch: 1,
        current_step: stepper.step,
        stepper: { step: stepper.step, micro: 0, generatorOffset: gen.offset },
        loader: { epoch: 1, batch: stepper.step, rngOffset: 0 },
        extra: { ...extra("vae") },
      });
    });
    losses.push(r);
    // LDM's scale_by_std: latents are scaled to unit standard deviation for the diffusion stage
    // (a decoder-only stage keeps the encoder, so the factor the U-Net learned with stays)
    if (!decoderOnly) {
      vae.config.scalingFactor = await latentScale(
        vae,
        imagesTensor(vaeSource(0, o.batchSize).rgb, side),
        o.seed,
      );
    }
    await writeFileAtomic(
      vaeFile,
      serializeSafetensors(await toSafetensorsInputs(vae.stateDict()), {
        scaling_factor: String(vae.scalingFactor),
      }),
    );
    stepper.dispose();
    opt.dispose();
    if (o.stage === "all" || o.stage === "vae") {
      await saveTrainState(stateDir, new Map(), new AdamW([]), {
        current_epoch: 1,
        current_step: 0,
        stepper: { step: 0, micro: 0, generatorOffset: 0 },
        loader: { epoch: 1, batch: 0, rngOffset: 0 },
        extra: { ...extra("unet") },
      });
    }
    await writeReport(log, {
      title: "mini SD: VAE stage",
      settings: settings(o, size, vaeSteps),
      prompts: [],
      samples: [],
    });
  }
  let model: string | null = null;
  let dropout = 0, minSnr = "", normNote = "", normStatistics = "";
  if (o.stage !== "vae" && !decoderOnly) {
    if (!(o.init && o.stage === "unet")) await loadVae(vae, vaeFile);
    vae.freeze();
    // the variant of an initial model shares its text encoder (see PretrainOptions.norm)
    if (norm === "batch" && o.init) te.freeze();
    const resuming = resumed !== null && resumeStage === "unet" && resumed.state.current_step > 0;
    if (resuming) adopt({ text_encoder: te, unet }, resumed!.weights);
    const gen = new Generator(o.seed + 1);
    const params = [...named(te, "text_encoder"), ...named(unet, "unet")];
    const opt = new AdamW(params.map(([, t]) => t), { lr: o.unetLr ?? 3e-4 });
    const lrAt = stageLr(o.unetLr ?? 3e-4, o.steps, 100);
    const gamma = o.minSnrGamma ?? 5;
    const stepper = new UnetStageStepper(
      { vae, textEncoder: te, unet },
      opt,
      gen,
      lrAt,
      gamma > 0 ? { minSnrGamma: gamma } : {},
    );
    minSnr = String(gamma);
    if (resuming) {
      opt.loadState(resumed!.optimizer);
      stepper.loadState(resumed!.state.stepper);
    }
    const log = await RunLog.open(
      join(o.out, "logs", "unet"),
      resuming ? { resumeStep: stepper.step } : {},
    );
    const T = te.config.maxPositions;
    dropout = o.captionDropout ?? 0.1;
    // batch `step` of the stream: images, and token ids with the dropped captions empty
    const streamBatch = (step: number): NormEstimateBatch => {
      const first = step * o.batchSize;
      const items = source(first, o.batchSize);
      const captions = items.captions.map((c, i) =>
        dropsCaption(o.seed, first + i, dropout) ? "" : c
      );
      const ids = captions.flatMap((c) => o.tokenizer.encode(c, { maxLength: T }).ids);
      return { images: imagesTensor(items.rgb, side), ids, shape: [captions.length, T] };
    };
    const estimate = () =>
      scope(() =>
        estimateNormStatistics(
          { vae, textEncoder: te, unet },
          Array.from({ length: NORM_ESTIMATE_BATCHES }, (_, i) => streamBatch(i)),
          o.seed,
        )
      );
    if (convertNorms) {
      normNote = `initialized from ${o.init} with its U-Net's group norms converted to batch ` +
        `norms (GroupNorm weight/bias -> BatchNorm2d weight/bias; running statistics by an ` +
        `exact AdaBN estimate over ${estimate()} samples before the first step); text encoder ` +
        "and VAE frozen";
    }
    const r = await runStage("unet", o.steps, lrAt, log, stepper, (step) => {
      scope(() => {
        const b = streamBatch(step);
        stepper.run(b.images, b.ids, b.shape);
      });
    }, async () => {
      await saveTrainState(stateDir, new Map(params), opt, {
        current_epoch: 1,
        current_step: stepper.step,
        stepper: stepper.state(),
        loader: { epoch: 1, batch: stepper.step, rngOffset: 0 },
        extra: { ...extra("unet") },
      });
    });
    losses.push(r);
    stepper.dispose();
    opt.dispose();
    if (norm === "batch") {
      normStatistics = `exact AdaBN estimate over ${estimate()} samples after the last step`;
    }
    unet.eval(); // batch norm samples with its running statistics
    const prompts = o.samplePrompts ?? [];
    const samples: ReportSample[] = [];
    for (const [i, prompt] of prompts.entries()) {
      const jpeg = await sampleJpeg({ vae, textEncoder: te, unet }, o.tokenizer, {
        prompt,
        width: side,
        height: side,
        steps: 20,
        seed: i,
        cfgScale: 5,
        sampler: "euler_a",
      });
      samples.push({ step: stepper.step, prompt: i, jpeg });
    }
    await writeReport(log, {
      title: "mini SD: text encoder + U-Net stage",
      settings: settings(o, size, o.steps),
      prompts: [...prompts],
      samples,
    });
  }
  if (o.stage !== "vae") {
    model = join(o.out, "model");
    const piece: TrainingPiece = {
      command: o.command,
      adapter: deviceInfo().description,
      vae_steps: o.stage === "unet" && o.init ? 0 : vaeSteps,
      unet_steps: decoderOnly ? 0 : o.steps,
      batch_size: o.batchSize,
      wall_time_s: Number(wall().toFixed(1)),
      ...(norm === "batch" ? { norm } : {}),
      ...(normNote ? { init: normNote } : {}),
    };
    await writeMiniSdFolder(model, { unet, vae, textEncoder: te }, o.tokenizerFiles, {
      denoise_command: o.command,
      denoise_adapter: piece.adapter,
      denoise_history: JSON.stringify([...history, piece]),
      denoise_seed: String(o.seed),
      denoise_vae_steps: String(piece.vae_steps),
      denoise_unet_steps: String(piece.unet_steps),
      denoise_batch_size: String(o.batchSize),
      denoise_caption_dropout: String(dropout),
      denoise_min_snr_gamma: minSnr,
      denoise_lr_schedule: "cosine",
      denoise_wall_time_s: wall().toFixed(1),
      ...(norm === "batch" ? { denoise_norm: norm, denoise_norm_statistics: normStatistics } : {}),
    });
  }
  for (const m of [vae, te, unet]) m.dispose();
  return { model, losses, wallSeconds: (performance.now() - t0) / 1000 };

  async function runStage(
    stage: "vae" | "unet",
    total: number,
    lrAt: (step: number) => number,
    log: RunLog,
    stepper: { step: number; drainLoss(): Promise<{ mean: number; finite: boolean }> },
    step: (i: number) => void,
    save: () => Promise<void>,
  ): Promise<{ stage: "vae" | "unet"; first: number; last: number }> {
    const smooth = new LossSmoother();
    const rate = new RateMeter();
    let first = NaN, last = NaN;
    rate.tick();
    while (stepper.step < total) {
      step(stepper.step);
      rate.tick();
      const s = stepper.step;
      const saveNow = (o.saveEveryNSteps ?? 0) > 0 && s % o.saveEveryNSteps! === 0;
      if (s % logEvery === 0 || s === total || saveNow) {
        const l = await stepper.drainLoss();
        if (!l.finite) {
          throw new ConfigError(
            `The ${stage} stage's loss became ${l.mean} at step ${s}; lower the learning rate`,
          );
        }
        if (Number.isNaN(first)) first = l.mean;
        last = l.mean;
        smooth.add(l.mean);
        const lr = lrAt(s - 1);
        await log.add({
          step: s,
          epoch: 1,
          loss: l.mean,
          smoothed: smooth.value,
          lr,
          elapsed: wall(),
        });
        print(
          `${stage} ${
            formatProgress({
              step: s,
              totalSteps: total,
              epoch: 1,
              totalEpochs: 1,
              itPerSec: rate.perSecond,
              loss: smooth.value,
              lr,
            })
          }`,
        );
      }
      if (saveNow && s < total) await save();
    }
    await save();
    return { stage, first, last };
  }
}

/** Base learning rate times a cosine decay to 0 after `warmup` steps (a tenth of short runs). */
function stageLr(base: number, total: number, warmup: number): (step: number) => number {
  const f = lrSchedule({
    name: "cosine",
    totalSteps: total,
    warmup: Math.min(warmup, Math.floor(total / 10)),
  });
  return (s) => base * f(s);
}

/** Whether item `index` trains with the empty caption (a pure function of seed and index). */
function dropsCaption(seed: number, index: number, p: number): boolean {
  return p > 0 && new Rng((seed * 1_000_003 + index) >>> 0).next() < p;
}

function settings(
  o: PretrainOptions,
  size: string,
  steps: number,
): Record<string, string | number> {
  return { command: o.command, size, steps, batch_size: o.batchSize, seed: o.seed };
}

// x: [B, 3, H, W] -> 1 / std of the latents drawn for x
async function latentScale(vae: AutoencoderKL, x: Tensor, seed: number): Promise<number> {
  const z = noGrad(() =>
    scope(() => vae.sample(vae.encode(x), { generator: new Generator(seed + 2) }))
  );
  const v = await z.toArray();
  z.dispose();
  x.dispose();
  let m = 0;
  for (const a of v) m += a;
  m /= v.length;
  let s = 0;
  for (const a of v) s += (a - m) ** 2;
  return 1 / Math.sqrt(s / v.length);
}
