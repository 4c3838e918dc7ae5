/**
 * `train(options)`: a kohya-style LoRA run from TypeScript. Loads the base model, reads the
 * dataset (kohya folders or dataset TOML), attaches LoRA adapters from a plan, trains with
 * `TrainStepper` inside `runTrainingLoop`, and writes kohya LoRA files, state folders, the log
 * folder, sample images and the HTML report. Options use kohya's flag names in camelCase.
 *
 * @module
 */
import { join } from "node:path";
import { AdamW } from "../ops/adamw.ts";
import { noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { Generator } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import { loadStableDiffusion, type StableDiffusionModels } from "../nn/loaders_fs.ts";
import type { ClipTokenizer } from "../nn/tokenizer.ts";
import { makePlan } from "../lora/plan.ts";
import { LoraNetwork } from "../lora/network.ts";
import { writeLoraFile } from "../lora/formats/write_fs.ts";
import { ensureWritableDir, writeFileAtomic } from "./atomic_fs.ts";
import {
  type BucketChoice,
  BucketSelector,
  checkResolution,
  downsamplingFactor,
  formatBucketTable,
  type Size,
} from "./buckets.ts";
import { type CheckpointAt, checkpointName } from "./checkpoint_names.ts";
import { pruneCheckpoints } from "./checkpoints_fs.ts";
import { DataLoader, type TrainBatch } from "./data_loader.ts";
import type { DatasetConfig, Settings } from "./dataset_config.ts";
import { ConfigError } from "./errors.ts";
import {
  datasetFromFolders,
  datasetsFromToml,
  loadDataset,
  type LoadedDataset,
  readUtf8,
} from "./folders_fs.ts";
import { loadTrainingImage } from "./images_fs.ts";
import { LatentCache, vaeFingerprint } from "./latent_cache.ts";
import { diskLatentStore } from "./latent_cache_fs.ts";
import { runTrainingLoop, stepsForEpochs } from "./loop.ts";
import { lrSchedule } from "./lr_schedule.ts";
import {
  blockLrWeight,
  type BlockLrWeights,
  type LrGroupOptions,
  parameterLr,
  parseBlockLrWeight,
} from "./lr_groups.ts";
import type { ProgressInfo } from "./progress.ts";
import type { ReportSample } from "./report_html.ts";
import { RunLog, writeReport } from "./run_log_fs.ts";
import { encodeText, sampleJpeg } from "./sample_jpeg_fs.ts";
import { parseSamplePrompts, type SamplePrompt } from "./sample_prompts.ts";
import { readTrainState, saveTrainState } from "./train_state_fs.ts";
import {
  type AdabnTrainMode,
  addAdabnToFile,
  attachTrainAdabn,
  checkAdabnOptions,
  estimateOnTrainingImages,
} from "./adabn_train.ts";
import type { AdaBN } from "../adabn/adabn.ts";
import { TrainStepper } from "./train_step.ts";

/** Options of `train` (kohya's flags in camelCase; defaults as kohya unless noted). */
export interface TrainOptions {
  /** The base model: a diffusers folder or a single `.safetensors` checkpoint. */
  pretrainedModelNameOrPath: string;
  /** kohya folder layout: `<repeats>_<class tokens>` subfolders. */
  trainDataDir?: string;
  /** Regularization folders. */
  regDataDir?: string;
  /** kohya dataset TOML (instead of the folders). */
  datasetConfig?: string;
  /** Where LoRA files go (created). */
  outputDir: string;
  /** File name stem (default "last", as kohya). */
  outputName?: string;
  /** Base resolution (default 512). */
  resolution?: number | [number, number];
  /** Batch size (default 1). */
  trainBatchSize?: number;
  /** Aspect buckets. */
  enableBucket?: boolean;
  /** Smallest bucket side (256). */
  minBucketReso?: number;
  /** Largest bucket side (1024). */
  maxBucketReso?: number;
  /** Bucket step (64). */
  bucketResoSteps?: number;
  /** Buckets from image sizes, no upscaling. */
  bucketNoUpscale?: boolean;
  /** Caption file extension (".caption"). */
  captionExtension?: string;
  /** Shuffle tags. */
  shuffleCaption?: boolean;
  /** Tags kept in front. */
  keepTokens?: number;
  /** Random horizontal flips. */
  flipAug?: boolean;
  /** Probability of an empty caption. */
  captionDropoutRate?: number;
  /** Probability of dropping each tag. */
  captionTagDropoutRate?: number;
  /** Loss weight of reg images (1). */
  priorLossWeight?: number;
  /** LoRA rank (4; kohya's network_dim). */
  networkDim?: number;
  /** LoRA alpha (1). */
  networkAlpha?: number;
  /** Rank of 3x3 convs (LoCon); off by default. */
  convDim?: number;
  /** Alpha of 3x3 convs (1). */
  convAlpha?: number;
  /**
   * Norm adapters (LyCORIS's `train_norm` network arg): trainable per-channel deltas of the
   * GroupNorm / LayerNorm weights and biases in the targeted blocks, zero at the start, saved as
   * `w_norm` / `b_norm`. Off by default.
   */
  trainNorm?: boolean;
  /** Adapters on the U-Net only (default false: the text encoder too, as kohya). */
  networkTrainUnetOnly?: boolean;
  /** Learning rate (default 1e-4 here; kohya's 2e-6 suits full fine-tuning). */
  learningRate?: number;
  /** U-Net learning rate (default learningRate). */
  unetLr?: number;
  /** Text-encoder learning rate (default learningRate). */
  textEncoderLr?: number;
  /** kohya's down_lr_weight: 12 block weights of the U-Net's down rates, or a preset name. */
  downLrWeight?: readonly number[] | string;
  /** kohya's mid_lr_weight. */
  midLrWeight?: number;
  /** kohya's up_lr_weight: 12 block weights of the up rates, or a preset name. */
  upLrWeight?: readonly number[] | string;
  /** Block weights below this are 0 (kohya's block_lr_zero_threshold). */
  blockLrZeroThreshold?: number;
  /** LoRA+: `lora_up` rates times this ratio (kohya's loraplus_lr_ratio). */
  loraplusLrRatio?: number;
  /** LoRA+ ratio of the U-Net (default loraplusLrRatio). */
  loraplusUnetLrRatio?: number;
  /** LoRA+ ratio of the text encoder (default loraplusLrRatio). */
  loraplusTextEncoderLrRatio?: number;
  /** Per-layer rank of the 25 U-Net blocks (kohya's block_dims network arg). */
  blockDims?: number[];
  /** Per-layer alpha of the 25 blocks (block_alphas). */
  blockAlphas?: number[];
  /** Per-layer conv rank (conv_block_dims). */
  convBlockDims?: number[];
  /** Per-layer conv alpha (conv_block_alphas). */
  convBlockAlphas?: number[];
  /** Dropout of the rank activations (kohya's --network_dropout). */
  networkDropout?: number;
  /** Per-sample rank dropout (kohya's rank_dropout network arg). */
  rankDropout?: number;
  /** Probability of skipping an adapter for a step (module_dropout network arg). */
  moduleDropout?: number;
  /** Recompute the U-Net's mid and up blocks in the backward pass to save memory. */
  gradientCheckpointing?: boolean;
  /** Condition on the hidden state N layers from the end of CLIP (kohya's --clip_skip; 1). */
  clipSkip?: number;
  /** Text put before every caption. */
  captionPrefix?: string;
  /** Text put after every caption. */
  captionSuffix?: string;
  /** LR schedule ("constant"). */
  lrScheduler?: string;
  /** Warm-up steps, or a fraction of the run. */
  lrWarmupSteps?: number;
  /** Cycles of cosine_with_restarts (1). */
  lrSchedulerNumCycles?: number;
  /** Power of polynomial (1). */
  lrSchedulerPower?: number;
  /** Gradient norm clip (1). */
  maxGradNorm?: number;
  /** Micro-batches per optimizer step (1). */
  gradientAccumulationSteps?: number;
  /** Optimizer steps (1600). */
  maxTrainSteps?: number;
  /** Epochs (overrides maxTrainSteps). */
  maxTrainEpochs?: number;
  /** Seed of the data order, noise and adapters (default 42 here). */
  seed?: number;
  /** Noise offset. */
  noiseOffset?: number;
  /** Multi-resolution noise levels. */
  multiresNoiseIterations?: number;
  /** Multi-resolution noise discount (0.3). */
  multiresNoiseDiscount?: number;
  /** Min-SNR gamma. */
  minSnrGamma?: number;
  /** Smallest timestep (0). */
  minTimestep?: number;
  /** One past the largest timestep (1000). */
  maxTimestep?: number;
  /** v-prediction model. */
  vParameterization?: boolean;
  /** Encode each image once (memory). */
  cacheLatents?: boolean;
  /** Keep cached latents next to the images. */
  cacheLatentsToDisk?: boolean;
  /** Save every N steps. */
  saveEveryNSteps?: number;
  /** Save every N epochs. */
  saveEveryNEpochs?: number;
  /** Keep the newest N step / epoch files (default all). */
  saveLastN?: number;
  /** Keep the newest N step files (overrides saveLastN for them). */
  saveLastNStepFiles?: number;
  /** Keep the newest N epoch files (overrides saveLastN for them). */
  saveLastNEpochFiles?: number;
  /** Write a state folder with each save. */
  saveState?: boolean;
  /** Continue from a state folder. */
  resume?: string;
  /** Stored precision of LoRA files ("float" or "fp16"; default float). */
  savePrecision?: "float" | "fp16";
  /** Log folder (losses JSONL/CSV, loss curve, report). */
  logDir?: string;
  /** Loss readback interval in steps (10). */
  logEvery?: number;
  /** Sample prompts file (kohya's line format). */
  samplePrompts?: string;
  /** Sample every N steps. */
  sampleEveryNSteps?: number;
  /** Sample every N epochs. */
  sampleEveryNEpochs?: number;
  /** Sample before training. */
  sampleAtFirst?: boolean;
  /** Default sampler of the prompts ("ddim", as kohya). */
  sampleSampler?: string;
  /** Base weight storage ("auto": f16 where the adapter has shader-f16). */
  weightDType?: "auto" | "f32" | "f16";
  /**
   * AdaBN (batch-norm U-Nets only): estimate the statistics on the training images before the
   * first step and freeze them ("before"), or then keep adapting at every step ("during"). The
   * LoRA files carry the statistics. Off by default.
   */
  adabn?: AdabnTrainMode;
  /** AdaBN timestep band boundaries (default `[0, 1000]`: one band). */
  adabnBands?: number[];
}

/** What `train` reports as it goes. */
export interface TrainCallbacks {
  /** Each progress line (step/total, epoch, it/s, ETA, smoothed loss, LR). */
  progress?(line: string, info: ProgressInfo): void;
  /** Other messages: the bucket table, warnings, saved files. */
  message?(text: string): void;
}

/** What a run produced. */
export interface TrainResult {
  /** The trained adapters (attached to `models`; dispose both when done). */
  network: LoraNetwork;
  /** The base models. */
  models: StableDiffusionModels;
  /** The final LoRA file. */
  output: string;
  /** Optimizer steps done. */
  steps: number;
  /** Mean loss of each log interval. */
  losses: number[];
  /** The AdaBN attached to `models.unet` with `adabn` (dispose it with the models), else null. */
  adabn: AdaBN | null;
}

function datasetSettings(o: TrainOptions): Settings {
  const s: Settings = {};
  const put = (k: string, v: unknown) => v !== undefined && (s[k] = v);
  if (o.resolution !== undefined) {
    s.resolution = typeof o.resolution === "number" ? [o.resolution, o.resolution] : o.resolution;
  }
  put("batchSize", o.trainBatchSize);
  put("enableBucket", o.enableBucket);
  put("minBucketReso", o.minBucketReso);
  put("maxBucketReso", o.maxBucketReso);
  put("bucketResoSteps", o.bucketResoSteps);
  put("bucketNoUpscale", o.bucketNoUpscale);
  put("priorLossWeight", o.priorLossWeight);
  put("captionExtension", o.captionExtension);
  put("shuffleCaption", o.shuffleCaption);
  put("keepTokens", o.keepTokens);
  put("flipAug", o.flipAug);
  put("captionDropoutRate", o.captionDropoutRate);
  put("captionTagDropoutRate", o.captionTagDropoutRate);
  put("captionPrefix", o.captionPrefix);
  put("captionSuffix", o.captionSuffix);
  return s;
}

/** The tokenizer, after checking that every size fits the model's downsampling. */
function checkModel(
  models: StableDiffusionModels,
  configs: readonly DatasetConfig[],
  prompts: readonly SamplePrompt[],
  clipSkip: number,
): ClipTokenizer {
  if (!models.tokenizer) {
    throw new ConfigError(
      "The base model has no tokenizer folder; use a diffusers folder with tokenizer/",
    );
  }
  const layers = models.textEncoder.config.layers;
  if (clipSkip < 1 || clipSkip > layers || !Number.isInteger(clipSkip)) {
    throw new ConfigError(
      `clip_skip is ${clipSkip}, but this text encoder has ${layers} layers; use 1 to ${layers}`,
    );
  }
  const factor = downsamplingFactor(models.unet.config, models.vae.config);
  for (const c of configs) {
    checkResolution(c.resolution, factor);
    if (c.enableBucket && c.bucketResoSteps % factor !== 0) {
      checkResolution([c.bucketResoSteps, c.bucketResoSteps], factor, "bucket_reso_steps");
    }
  }
  for (const p of prompts) {
    checkResolution([p.width, p.height], factor, `sample size (prompt line ${p.line})`);
  }
  return models.tokenizer;
}

/**
 * Trains a LoRA. Bad input (paths, folders, images, captions, TOML, resolution) fails before
 * anything is written to the output folder; a NaN loss stops with `NonFiniteLossError`.
 *
 * @example
 * ```ts ignore
 * import { train } from "./trainer_fs.ts";
 * const r = await train({
 *   pretrainedModelNameOrPath: "models/sd15",
 *   trainDataDir: "train_images",
 *   outputDir: "out",
 *   networkDim: 8,
 *   maxTrainSteps: 500,
 * }, { progress: (line) => console.log(line) });
 * console.log(r.output);
 * ```
 */
export async function train(
  options: TrainOptions,
  callbacks: TrainCallbacks = {},
): Promise<TrainResult> {
  const say = callbacks.message ?? (() => {});
  if ((options.trainDataDir === undefined) === (options.datasetConfig === undefined)) {
    throw new ConfigError(
      "Give either trainDataDir (kohya folders) or datasetConfig (a dataset TOML)",
    );
  }
  const dropouts = options.networkDropout || options.rankDropout || options.moduleDropout;
  if (options.gradientCheckpointing && dropouts) {
    throw new ConfigError(
      "Gradient checkpointing with network dropouts would draw other dropout masks when it " +
        "recomputes; drop one of them",
    );
  }
  checkAdabnOptions(options.adabn, options.adabnBands);
  // the data first: every bad image or caption is named before the model loads or files appear
  const settings = datasetSettings(options);
  const configs: DatasetConfig[] = options.datasetConfig !== undefined
    ? await datasetsFromToml(options.datasetConfig, settings)
    : [
      await datasetFromFolders(options.trainDataDir!, {
        ...(options.regDataDir !== undefined ? { regDataDir: options.regDataDir } : {}),
        settings,
        warn: say,
      }),
    ];
  const prompts: SamplePrompt[] = options.samplePrompts !== undefined
    ? parseSamplePrompts(
      await readUtf8(options.samplePrompts, "sample prompts file"),
      options.samplePrompts,
    )
    : [];
  const datasets: LoadedDataset[] = [];
  for (const c of configs) datasets.push(await loadDataset(c, say));

  const models = await loadStableDiffusion(options.pretrainedModelNameOrPath, {
    weightDType: options.weightDType ?? "auto",
  });
  // the loader returns inference mode; the networks the adapters train run in training mode,
  // as kohya's unet.train() / text_encoder.train() (batch norms use batch statistics)
  models.unet.train();
  models.textEncoder.train();
  const live: { dispose(): void }[] = [];
  try {
    return await trainLoaded({ options, callbacks, models, configs, datasets, prompts, live });
  } catch (e) {
    for (const x of live.reverse()) x.dispose();
    for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
    throw e;
  }
}

interface Loaded {
  options: TrainOptions;
  callbacks: TrainCallbacks;
  models: StableDiffusionModels;
  configs: DatasetConfig[];
  datasets: LoadedDataset[];
  prompts: SamplePrompt[];
  /** What to dispose when the run fails (besides the models). */
  live: { dispose(): void }[];
}

function blockLrWeights(o: TrainOptions): BlockLrWeights | undefined {
  if (o.downLrWeight === undefined && o.midLrWeight === undefined && o.upLrWeight === undefined) {
    return undefined;
  }
  const list = (v: readonly number[] | string | undefined, flag: string) =>
    v === undefined ? undefined : parseBlockLrWeight(typeof v === "string" ? v : v.join(), flag);
  const down = list(o.downLrWeight, "down_lr_weight"), up = list(o.upLrWeight, "up_lr_weight");
  return {
    ...(down ? { down } : {}),
    ...(up ? { up } : {}),
    ...(o.midLrWeight !== undefined ? { mid: o.midLrWeight } : {}),
    ...(o.blockLrZeroThreshold !== undefined ? { zeroThreshold: o.blockLrZeroThreshold } : {}),
  };
}

/** The run once the data is read and the models are loaded. */
async function trainLoaded(
  { options, callbacks, models, configs, datasets, prompts, live }: Loaded,
): Promise<TrainResult> {
  const say = callbacks.message ?? (() => {});
  const seed = options.seed ?? 42;
  const name = options.outputName ?? "last";
  const clipSkip = options.clipSkip ?? 1;
  const tok = checkModel(models, configs, prompts, clipSkip);
  const adabn = options.adabn
    ? attachTrainAdabn(models.unet, checkAdabnOptions(options.adabn, options.adabnBands))
    : null;
  if (adabn) live.push(adabn);
  await ensureWritableDir(options.outputDir);
  if (options.logDir !== undefined) await ensureWritableDir(options.logDir);
  const vaeFactor = 2 ** (models.vae.config.blockOutChannels.length - 1);
  if (options.gradientCheckpointing) models.unet.gradientCheckpointing = true;

  const blocks = blockLrWeights(options);
  const plan = makePlan(
    models.unet.config,
    options.networkTrainUnetOnly ? null : models.textEncoder.config,
    {
      rank: options.networkDim ?? 4,
      alpha: options.networkAlpha ?? 1,
      ...(options.convDim !== undefined
        ? { convRank: options.convDim, convAlpha: options.convAlpha ?? 1 }
        : {}),
      textEncoder: !options.networkTrainUnetOnly,
      ...(options.trainNorm ? { norms: true } : {}),
      ...(options.blockDims ? { blockDims: options.blockDims } : {}),
      ...(options.blockAlphas ? { blockAlphas: options.blockAlphas } : {}),
      ...(options.convBlockDims ? { convBlockDims: options.convBlockDims } : {}),
      ...(options.convBlockAlphas ? { convBlockAlphas: options.convBlockAlphas } : {}),
    },
  );
  // kohya creates no module in a block whose rate weight is 0, so none is trained or saved.
  if (blocks) {
    plan.entries = plan.entries.filter((e) =>
      e.component !== "unet" || blockLrWeight(e.path, blocks) !== 0
    );
  }
  const network = LoraNetwork.fromPlan(
    options.networkTrainUnetOnly
      ? { unet: models.unet }
      : { unet: models.unet, textEncoder: models.textEncoder },
    plan,
    {
      generator: new Generator(seed + 104729),
      dropout: options.networkDropout ?? 0,
      rankDropout: options.rankDropout ?? 0,
      moduleDropout: options.moduleDropout ?? 0,
    },
  );
  live.push(network);
  const trainTE = !options.networkTrainUnetOnly;
  const saved = options.resume !== undefined ? await readTrainState(options.resume) : undefined;
  if (saved) network.loadStateDict(saved.weights, { strict: false });
  const named = new Map(
    network.namedParameters().filter(([, p]) => p.trainable).map(([n, p]) => [n, p.value]),
  );
  const baseLr = options.learningRate ?? 1e-4;
  const lr = options.unetLr ?? baseLr;
  const groups: LrGroupOptions = {
    unetLr: lr,
    textEncoderLr: options.textEncoderLr ?? baseLr,
    ...(blocks ? { blocks } : {}),
    loraplusUnet: options.loraplusUnetLrRatio ?? options.loraplusLrRatio ?? 1,
    loraplusTextEncoder: options.loraplusTextEncoderLrRatio ?? options.loraplusLrRatio ?? 1,
  };
  const rates = new Map<unknown, number>();
  for (const a of network.adapters) {
    for (const [pname, p] of a.adapter.namedParameters()) {
      rates.set(p.value, parameterLr(a.component, a.path, pname, groups));
    }
  }
  // the optimizer's rate is the schedule's factor; each parameter's own rate is its scale
  const optimizer = new AdamW([...named.values()], {
    lr: 1,
    maxGradNorm: options.maxGradNorm ?? 1,
    lrScales: [...named.values()].map((p) => rates.get(p) ?? lr),
  });
  live.push(optimizer);
  if (saved) optimizer.loadState(saved.optimizer);

  // data: pixels, or latents from the cache
  const vaeGen = new Generator(seed + 7919);
  const encodeLatents = (px: Float32Array, B: number, size: Size, generator = vaeGen): Tensor =>
    scope(() =>
      noGrad(() => {
        const x = tensor(px, [B, 3, size[1], size[0]]);
        const dist = models.vae.encode(x);
        return scale(models.vae.sample(dist, { generator }), models.vae.scalingFactor);
      })
    );
  const cache = options.cacheLatents || options.cacheLatentsToDisk
    ? new LatentCache(
      loadTrainingImage,
      async (px, size) => {
        using z = encodeLatents(px, 1, size);
        return await z.toArray();
      },
      {
        vaeId: await vaeFingerprint(models.vae),
        ...(options.cacheLatentsToDisk
          ? {
            store: diskLatentStore((
              b,
            ) => [models.vae.config.latentChannels, b[1] / vaeFactor, b[0] / vaeFactor]),
          }
          : {}),
      },
    )
    : undefined;
  const loader = new DataLoader(datasets, {
    seed,
    loadImage: cache ? cache.loader : loadTrainingImage,
  });
  loader.plans.forEach((p, i) => say(`dataset ${i + 1}: ${formatBucketTable(p)}`));
  if (cache) {
    say("caching latents");
    await cache.warm(datasets.map((d) => {
      const sel = new BucketSelector({
        resolution: d.config.resolution,
        enableBucket: d.config.enableBucket,
        minBucketReso: d.config.minBucketReso,
        maxBucketReso: d.config.maxBucketReso,
        bucketResoSteps: d.config.bucketResoSteps,
        noUpscale: d.config.bucketNoUpscale,
      });
      return {
        ...d,
        choices: new Map<string, BucketChoice>(d.images.map((i) => [i.path, sel.select(i.size)])),
      };
    }));
  }

  // a batch's clean latents: from the cache, or encoded here
  const batchLatents = (batch: TrainBatch, generator = vaeGen): Tensor => {
    const B = batch.captions.length, [w, h] = batch.size;
    return cache
      ? tensor(batch.pixels, [B, models.vae.config.latentChannels, h / vaeFactor, w / vaeFactor])
      : encodeLatents(batch.pixels, B, batch.size, generator);
  };
  if (adabn) {
    const adabnVae = new Generator(seed + 7727); // the training's VAE draws stay as they are
    network.train(false);
    try {
      const n = await estimateOnTrainingImages(adabn, models.unet, datasets, {
        seed,
        loadImage: cache ? cache.loader : loadTrainingImage,
        data: (batch) => ({
          latents: batchLatents(batch, adabnVae),
          context: noGrad(() => encodeText(models, tok, batch.captions, clipSkip)),
        }),
        minTimestep: options.minTimestep ?? 0,
        maxTimestep: options.maxTimestep ?? 1000,
      });
      say(`AdaBN: statistics estimated on ${n} batches of training images`);
    } finally {
      network.train(true);
    }
    if (options.adabn === "during") adabn.unfreeze();
  }

  const accum = options.gradientAccumulationSteps ?? 1;
  const stepsPerEpoch = stepsForEpochs(1, loader.batchesPerEpoch, accum);
  const total = options.maxTrainEpochs !== undefined
    ? stepsForEpochs(options.maxTrainEpochs, loader.batchesPerEpoch, accum)
    : options.maxTrainSteps ?? 1600;
  const sched = lrSchedule({
    name: options.lrScheduler ?? "constant",
    totalSteps: total,
    warmup: options.lrWarmupSteps ?? 0,
    numCycles: options.lrSchedulerNumCycles ?? 1,
    power: options.lrSchedulerPower ?? 1,
    baseLr: lr,
  });
  const lrAt = (s: number) => lr * sched(s);
  const stepper = new TrainStepper(
    optimizer,
    (x, t, c) => models.unet.forward(x, t, c),
    new Generator(seed),
    sched,
    {
      prediction: options.vParameterization ? "v_prediction" : "epsilon",
      noiseOffset: options.noiseOffset ?? 0,
      multiresNoiseIterations: options.multiresNoiseIterations ?? 0,
      multiresNoiseDiscount: options.multiresNoiseDiscount ?? 0.3,
      ...(options.minSnrGamma !== undefined ? { minSnrGamma: options.minSnrGamma } : {}),
      minTimestep: options.minTimestep ?? 0,
      ...(options.maxTimestep !== undefined ? { maxTimestep: options.maxTimestep } : {}),
      gradientAccumulationSteps: accum,
    },
  );
  live.push(stepper);
  if (saved) {
    stepper.loadState(saved.state.stepper);
    loader.seek(saved.state.loader);
    const extra = saved.state.extra ?? {};
    if (extra.seed !== undefined && extra.seed !== seed) {
      throw new ConfigError(
        `The state folder ${options.resume} was saved with seed ${extra.seed}, not ${seed}; ` +
          "resume with the same seed",
      );
    }
    if (!cache && typeof extra.vaeGeneratorOffset === "number") {
      vaeGen.offset = extra.vaeGeneratorOffset;
    }
  }

  const log = options.logDir !== undefined
    ? await RunLog.open(options.logDir, saved ? { resumeStep: saved.state.current_step } : {})
    : undefined;
  const samples: ReportSample[] = [];
  const settingsTable: Record<string, string | number | boolean> = Object.fromEntries(
    Object.entries(options).filter(([, v]) => ["string", "number", "boolean"].includes(typeof v)),
  );
  const report = async () => {
    if (log) {
      await writeReport(log, {
        title: name,
        settings: settingsTable,
        prompts: prompts.map((p) => p.prompt),
        samples,
      });
    }
  };

  const sampleAt = async (step: number) => {
    if (prompts.length === 0) return;
    const dir = join(options.outputDir, "sample");
    await Deno.mkdir(dir, { recursive: true });
    network.train(false);
    const adapting = adabn !== null && !adabn.frozen;
    adabn?.freeze(); // the samples' forwards must not adapt the statistics
    try {
      for (const [i, p] of prompts.entries()) {
        const jpeg = await sampleJpeg(models, tok, {
          ...p,
          sampler: p.sampler ?? options.sampleSampler ?? "ddim",
          seed: p.seed ?? seed + i,
          clipSkip,
        });
        const file = join(
          dir,
          `${name}_${String(step).padStart(6, "0")}_${String(i).padStart(2, "0")}.jpg`,
        );
        await writeFileAtomic(file, jpeg);
        samples.push({ step, prompt: i, jpeg });
      }
    } finally {
      network.train(true);
      if (adapting) adabn.unfreeze();
    }
    await report();
  };

  const fileMetadata = (at: CheckpointAt) => ({
    networkDim: options.networkDim ?? 4,
    networkAlpha: options.networkAlpha ?? 1,
    outputName: name,
    sdModelName: options.pretrainedModelNameOrPath.split(/[\\/]/).filter(Boolean).at(-1) ?? "",
    resolution: [configs[0]!.resolution[0], configs[0]!.resolution[1]] as [number, number],
    steps: stepper.step,
    epoch: at !== "final" && "epoch" in at ? at.epoch : Math.ceil(stepper.step / stepsPerEpoch),
    seed,
    numTrainImages: datasets.reduce((n, d) => n + d.trainCount, 0),
    predictionType: options.vParameterization ? "v" as const : "epsilon" as const,
    ...(options.convDim !== undefined
      ? { networkArgs: { conv_dim: options.convDim, conv_alpha: options.convAlpha ?? 1 } }
      : {}),
  });
  const kind = (at: CheckpointAt) =>
    at !== "final" && "epoch" in at ? "epoch" as const : "step" as const;
  const keepFor = (at: CheckpointAt): number | undefined =>
    at === "final"
      ? undefined
      : (kind(at) === "epoch" ? options.saveLastNEpochFiles : options.saveLastNStepFiles) ??
        options.saveLastN;

  const result = await runTrainingLoop(stepper, loader, {
    maxTrainSteps: total,
    stepsPerEpoch,
    logEvery: options.logEvery ?? 10,
    ...(options.saveEveryNSteps !== undefined ? { saveEveryNSteps: options.saveEveryNSteps } : {}),
    ...(options.saveEveryNEpochs !== undefined
      ? { saveEveryNEpochs: options.saveEveryNEpochs }
      : {}),
    saveState: options.saveState ?? false,
    ...(options.sampleEveryNSteps !== undefined
      ? { sampleEveryNSteps: options.sampleEveryNSteps }
      : {}),
    ...(options.sampleEveryNEpochs !== undefined
      ? { sampleEveryNEpochs: options.sampleEveryNEpochs }
      : {}),
    sampleAtFirst: options.sampleAtFirst ?? false,
  }, {
    encode: async (batch: TrainBatch): Promise<[Tensor, Tensor]> => {
      const latents = batchLatents(batch);
      const context = trainTE
        ? encodeText(models, tok, batch.captions, clipSkip)
        : noGrad(() => encodeText(models, tok, batch.captions, clipSkip));
      return await Promise.resolve([latents, context]);
    },
    lrAt,
    saveCheckpoint: async (at) => {
      const path = join(options.outputDir, checkpointName(name, at));
      await writeLoraFile(path, await network.entries(), {
        dtype: options.savePrecision === "fp16" ? "F16" : "F32",
        metadata: fileMetadata(at),
      });
      if (adabn) await addAdabnToFile(path, adabn);
      const keep = keepFor(at);
      if (keep !== undefined) await pruneCheckpoints(options.outputDir, name, kind(at), keep);
      say(`saved ${path}`);
      return path;
    },
    saveState: async (at) => {
      const dir = join(options.outputDir, checkpointName(name, at, "-state"));
      await saveTrainState(dir, named, optimizer, {
        current_epoch: loader.epoch,
        current_step: stepper.step,
        stepper: stepper.state(),
        loader: loader.position(),
        extra: { seed, vaeGeneratorOffset: vaeGen.offset },
      });
      const keep = keepFor(at);
      if (keep !== undefined) {
        await pruneCheckpoints(options.outputDir, name, kind(at), keep, "-state");
      }
      return dir;
    },
    sample: sampleAt,
    ...(callbacks.progress ? { progress: callbacks.progress } : {}),
    ...(log ? { log } : {}),
  });
  await report();
  stepper.dispose();
  optimizer.dispose();
  return {
    network,
    models,
    output: join(options.outputDir, checkpointName(name, "final")),
    steps: result.steps,
    losses: result.losses,
    adabn,
  };
}
