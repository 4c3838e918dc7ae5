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
import { deviceInfo, getDevice } from "../ops/device.ts";
import { manualSeed } from "../ops/rng.ts";
import { CLIPTextModel } from "../nn/clip.ts";
import { UNet2DConditionModel } from "../nn/unet.ts";
import { AutoencoderKL } from "../nn/vae.ts";
import { ensureWritableDir } from "./atomic_fs.ts";
import { ConfigError } from "./errors.ts";
import { miniSdConfig } from "./pretrain_config.ts";
import { folderUnetNorm, initFromFolder, type TrainingPiece } from "./pretrain_init_fs.ts";
import type {
  PretrainItems,
  PretrainOptions,
  PretrainResult,
  PretrainSource,
} from "./pretrain_options.ts";
import { readPretrainResume } from "./pretrain_resume_fs.ts";
import { writeMiniSdFolder } from "./pretrain_save_fs.ts";
import type { PretrainRun, StageLosses } from "./pretrain_stage_fs.ts";
import { runUnetStage } from "./pretrain_unet_stage_fs.ts";
import { runVaeStage } from "./pretrain_vae_stage_fs.ts";

export type { PretrainItems, PretrainOptions, PretrainResult, PretrainSource };

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
  const norm = o.norm ?? "group";
  const decoderOnly = o.stage === "decoder";
  checkOptions(o);
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
  const initNorm = o.init ? await folderUnetNorm(o.init) : null;
  if (initNorm === "batch" && norm === "group") {
    throw new ConfigError(`${o.init} has a batch-norm U-Net; pass --norm batch to continue it`);
  }
  const convertNorms = initNorm === "group" && norm === "batch";
  manualSeed(o.seed);
  const vae = new AutoencoderKL(cfg.vae);
  const te = new CLIPTextModel(cfg.textEncoder);
  const unet = new UNet2DConditionModel({ ...cfg.unet, norm });
  const history = o.init
    ? await initFromFolder(o.init, { vae, textEncoder: te, unet }, { convertNorms })
    : [];
  const resumed = await readPretrainResume(o, size, side);
  if (resumed) vae.config.scalingFactor = resumed.extra.scalingFactor;
  const priorWall = resumed?.extra.wallSeconds ?? 0;
  const run: PretrainRun = {
    options: o,
    source,
    size,
    side,
    models: { vae, textEncoder: te, unet },
    resumed,
    wall: () => priorWall + (performance.now() - t0) / 1000,
  };
  const losses: StageLosses[] = [];
  if (o.stage !== "unet" && resumed?.extra.stage !== "unet") losses.push(await runVaeStage(run));
  const unetStage = o.stage !== "vae" && !decoderOnly
    ? await runUnetStage(run, convertNorms)
    : null;
  if (unetStage) losses.push(unetStage.losses);
  let model: string | null = null;
  if (o.stage !== "vae") {
    model = join(o.out, "model");
    const emaDecay = unetStage?.emaDecay ?? 0;
    const piece: TrainingPiece = {
      command: o.command,
      adapter: deviceInfo().description,
      vae_steps: o.stage === "unet" && o.init ? 0 : vaeSteps,
      unet_steps: decoderOnly ? 0 : o.steps,
      batch_size: o.batchSize,
      wall_time_s: Number(run.wall().toFixed(1)),
      ...(norm === "batch" ? { norm } : {}),
      ...(unetStage?.normInit ? { init: unetStage.normInit } : {}),
      ...(emaDecay > 0 ? { ema_decay: emaDecay } : {}),
    };
    await writeMiniSdFolder(model, run.models, o.tokenizerFiles, {
      denoise_command: o.command,
      denoise_adapter: piece.adapter,
      denoise_history: JSON.stringify([...history, piece]),
      denoise_seed: String(o.seed),
      denoise_vae_steps: String(piece.vae_steps),
      denoise_unet_steps: String(piece.unet_steps),
      denoise_batch_size: String(o.batchSize),
      denoise_caption_dropout: String(unetStage?.captionDropout ?? 0),
      denoise_min_snr_gamma: unetStage ? String(unetStage.minSnrGamma) : "",
      ...(emaDecay > 0 ? { denoise_ema_decay: String(emaDecay) } : {}),
      denoise_lr_schedule: "cosine",
      denoise_wall_time_s: run.wall().toFixed(1),
      ...(norm === "batch"
        ? { denoise_norm: norm, denoise_norm_statistics: unetStage?.normStatistics ?? "" }
        : {}),
    });
  }
  for (const m of [vae, te, unet]) m.dispose();
  return { model, losses, wallSeconds: (performance.now() - t0) / 1000 };
}

/** The combinations of options no run accepts, as errors that say what to pass. */
function checkOptions(o: PretrainOptions): void {
  const vaeSteps = o.vaeSteps ?? o.steps;
  const counts = [["steps", o.steps], ["vae steps", vaeSteps], ["batch size", o.batchSize]];
  for (const [k, v] of counts as [string, number][]) {
    if (!Number.isInteger(v) || v < 1) {
      throw new ConfigError(`The ${k} is ${v}; use a whole number >= 1`);
    }
  }
  if (o.init && o.resume) {
    throw new ConfigError("Pass --init or --resume, not both: --resume continues a run exactly");
  }
  const decoderOnly = o.stage === "decoder";
  if (o.norm === "batch" && (o.stage === "vae" || decoderOnly)) {
    throw new ConfigError(
      `--norm batch changes the U-Net, which --stage ${o.stage} does not train; use --stage unet ` +
        "or all",
    );
  }
  if (o.norm === "batch" && o.resume) {
    throw new ConfigError(
      "--resume does not restore batch-norm running statistics yet (the state holds trainable " +
        "weights only); rerun the --norm batch stage without --resume",
    );
  }
  const ema = o.emaDecay ?? 0;
  if (!(ema >= 0 && ema < 1)) {
    throw new ConfigError(`The EMA decay is ${ema}; use a number in (0, 1) such as 0.9999, or 0`);
  }
  if (ema > 0 && (o.stage === "vae" || decoderOnly)) {
    throw new ConfigError(
      `--ema averages the U-Net stage's weights, which --stage ${o.stage} does not train; use ` +
        "--stage unet or all",
    );
  }
  if (decoderOnly && !o.init) {
    throw new ConfigError("--stage decoder fine-tunes a trained VAE; pass --init <model folder>");
  }
}
