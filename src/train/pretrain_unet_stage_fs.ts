/**
 * The second pretraining stage: the text encoder with the U-Net on the captioned stream (the
 * VAE frozen), captions dropped for classifier-free guidance, Min-SNR weighting, an optional EMA
 * of the weights (then in place for the norm statistics, the samples and the written model),
 * batch norms' running statistics estimated exactly when the U-Net has them, and the stage's
 * report with samples.
 *
 * @module
 */
import { join } from "node:path";
import { AdamW } from "../ops/adamw.ts";
import { Generator } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import { EmaWeights } from "./ema.ts";
import { loadVae } from "./pretrain_init_fs.ts";
import {
  estimateNormStatistics,
  NORM_ESTIMATE_BATCHES,
  type NormEstimateBatch,
} from "./pretrain_norm_stats.ts";
import {
  adopt,
  imagesTensor,
  type PretrainRun,
  reportSettings,
  runStage,
  saveStageState,
  type StageLosses,
  stageLr,
  trainableByName,
} from "./pretrain_stage_fs.ts";
import { UnetStageStepper } from "./pretrain_unet_step.ts";
import { vaeStageFile } from "./pretrain_vae_stage_fs.ts";
import { Rng } from "./random.ts";
import type { ReportSample } from "./report_html.ts";
import { RunLog, writeReport } from "./run_log_fs.ts";
import { sampleJpeg } from "./sample_jpeg_fs.ts";

/** What the U-Net stage reports for the weights' metadata. */
export interface UnetStageResult {
  /** Its losses. */
  losses: StageLosses;
  /** The share of empty captions. */
  captionDropout: number;
  /** The Min-SNR gamma (0: off). */
  minSnrGamma: number;
  /** The EMA decay of the weights written (0: no EMA, the trained weights). */
  emaDecay: number;
  /** How a converted initial model's batch norms started ("" when none was converted). */
  normInit: string;
  /** How the batch norms' running statistics were set ("" for group norms). */
  normStatistics: string;
}

/**
 * Trains the text encoder and U-Net for `steps` (continuing a resumed U-Net state). With
 * `convertNorms` the U-Net's batch norms, just converted from group norms, get their running
 * statistics estimated before the first step. With `emaDecay` the models end holding the EMA of
 * the trained weights.
 *
 * @example
 * ```ts ignore
 * const r = await runUnetStage(run, false);
 * console.log(r.losses.last);
 * ```
 */
export async function runUnetStage(
  run: PretrainRun,
  convertNorms: boolean,
): Promise<UnetStageResult> {
  const o = run.options, { vae, textEncoder: te, unet } = run.models;
  const models = run.models;
  if (!(o.init && o.stage === "unet")) await loadVae(vae, vaeStageFile(run));
  vae.freeze();
  // the variant of an initial model shares its text encoder (see PretrainOptions.norm)
  const batchNorm = (o.norm ?? "group") === "batch";
  if (batchNorm && o.init) te.freeze();
  const r = run.resumed;
  const resumed = r?.extra.stage === "unet" && r.state.state.current_step > 0 ? r.state : null;
  if (resumed) adopt({ text_encoder: te, unet }, resumed.weights);
  const gen = new Generator(o.seed + 1);
  const params = [...trainableByName(te, "text_encoder"), ...trainableByName(unet, "unet")];
  const lr = o.unetLr ?? 3e-4;
  const opt = new AdamW(params.map(([, t]) => t), { lr });
  const emaDecay = o.emaDecay ?? 0;
  const ema = emaDecay > 0 ? new EmaWeights(opt.params, emaDecay) : undefined;
  const lrAt = stageLr(lr, o.steps, 100);
  const gamma = o.minSnrGamma ?? 5;
  const stepper = new UnetStageStepper(
    models,
    opt,
    gen,
    lrAt,
    gamma > 0 ? { minSnrGamma: gamma } : {},
  );
  if (resumed) {
    opt.loadState(resumed.optimizer);
    stepper.loadState(resumed.state.stepper);
    if (ema && r?.ema) ema.loadState(r.ema);
  }
  const log = await RunLog.open(
    join(o.out, "logs", "unet"),
    resumed ? { resumeStep: stepper.step } : {},
  );
  const T = te.config.maxPositions;
  const dropout = o.captionDropout ?? 0.1;
  // batch `step` of the stream: images, and token ids with the dropped captions empty
  const streamBatch = (step: number): NormEstimateBatch => {
    const first = step * o.batchSize;
    const items = run.source(first, o.batchSize);
    const captions = items.captions.map((c, i) =>
      dropsCaption(o.seed, first + i, dropout) ? "" : c
    );
    const ids = captions.flatMap((c) => o.tokenizer.encode(c, { maxLength: T }).ids);
    return { images: imagesTensor(items.rgb, run.side), ids, shape: [captions.length, T] };
  };
  const estimate = () =>
    scope(() =>
      estimateNormStatistics(
        models,
        Array.from({ length: NORM_ESTIMATE_BATCHES }, (_, i) => streamBatch(i)),
        o.seed,
      )
    );
  const normInit = convertNorms
    ? `initialized from ${o.init} with its U-Net's group norms converted to batch ` +
      `norms (GroupNorm weight/bias -> BatchNorm2d weight/bias; running statistics by an ` +
      `exact AdaBN estimate over ${estimate()} samples before the first step); text encoder ` +
      "and VAE frozen"
    : "";
  const losses = await runStage(run, "unet", o.steps, lrAt, log, stepper, (step) => {
    scope(() => {
      const b = streamBatch(step);
      stepper.run(b.images, b.ids, b.shape);
    });
    ema?.update();
  }, () => saveStageState(run, "unet", new Map(params), opt, stepper.state(), ema));
  stepper.dispose();
  opt.dispose();
  // the averaged weights take the trained ones' place for good (the models are written next)
  ema?.swap();
  ema?.dispose();
  const normStatistics = batchNorm
    ? `exact AdaBN estimate over ${estimate()} samples after the last step`
    : "";
  unet.eval(); // batch norm samples with its running statistics
  const prompts = o.samplePrompts ?? [];
  const samples: ReportSample[] = [];
  for (const [i, prompt] of prompts.entries()) {
    const jpeg = await sampleJpeg(models, o.tokenizer, {
      prompt,
      width: run.side,
      height: run.side,
      steps: 20,
      seed: i,
      cfgScale: 5,
      sampler: "euler_a",
    });
    samples.push({ step: stepper.step, prompt: i, jpeg });
  }
  await writeReport(log, {
    title: "mini SD: text encoder + U-Net stage",
    settings: { ...reportSettings(run, o.steps), ...(ema ? { ema_decay: emaDecay } : {}) },
    prompts: [...prompts],
    samples,
  });
  return {
    losses,
    captionDropout: dropout,
    minSnrGamma: gamma,
    emaDecay,
    normInit,
    normStatistics,
  };
}

/** Whether item `index` trains with the empty caption (a pure function of seed and index). */
function dropsCaption(seed: number, index: number, p: number): boolean {
  return p > 0 && new Rng((seed * 1_000_003 + index) >>> 0).next() < p;
}
