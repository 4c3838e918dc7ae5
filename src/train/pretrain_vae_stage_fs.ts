/**
 * The first pretraining stage: the VAE on the image stream (or, with `stage: "decoder"`, only
 * its decoder), then LDM's `scale_by_std` latent scale, the trained VAE written to
 * `<out>/vae_stage.safetensors` for the second stage, and the stage's report.
 *
 * @module
 */
import { join } from "node:path";
import { AdamW } from "../ops/adamw.ts";
import { noGrad } from "../ops/autograd.ts";
import { Generator } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { serializeSafetensors, toSafetensorsInputs } from "../nn/safetensors.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import { writeFileAtomic } from "./atomic_fs.ts";
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
import { VaeStepper } from "./pretrain_vae_step.ts";
import { RunLog, writeReport } from "./run_log_fs.ts";

/** The trained VAE the U-Net stage reads (f32, with its scaling factor in the metadata). */
export function vaeStageFile(run: PretrainRun): string {
  return join(run.options.out, "vae_stage.safetensors");
}

/**
 * Trains the VAE for the run's VAE steps (continuing a resumed VAE state), then writes the
 * stage's file, report and, when the U-Net stage follows, its starting state.
 *
 * @example
 * ```ts ignore
 * const losses = await runVaeStage(run);
 * console.log(losses.last);
 * ```
 */
export async function runVaeStage(run: PretrainRun): Promise<StageLosses> {
  const o = run.options, vae = run.models.vae;
  const steps = o.vaeSteps ?? o.steps, source = o.vaeSource ?? run.source;
  const decoderOnly = o.stage === "decoder";
  const resumed = run.resumed?.extra.stage === "vae" ? run.resumed.state : null;
  if (resumed) adopt({ vae }, resumed.weights);
  if (decoderOnly) { for (const m of ["encoder", "quant_conv"]) vae.child(m).freeze(); }
  const gen = new Generator(o.seed);
  const lr = o.vaeLr ?? 1e-3;
  const opt = new AdamW(vae.trainableParameters().map((p) => p.value), { lr });
  const lrAt = stageLr(lr, steps, 50);
  const stepper = new VaeStepper(vae, opt, gen, lrAt);
  if (resumed) {
    opt.loadState(resumed.optimizer);
    stepper.loadState({
      step: resumed.state.current_step,
      generatorOffset: resumed.state.stepper.generatorOffset,
    });
  }
  const log = await RunLog.open(
    join(o.out, "logs", "vae"),
    resumed ? { resumeStep: stepper.step } : {},
  );
  const batch = (step: number) =>
    imagesTensor(source(step * o.batchSize, o.batchSize).rgb, run.side);
  const losses = await runStage(run, "vae", steps, lrAt, log, stepper, (step) => {
    scope(() => stepper.run(batch(step)));
  }, () =>
    saveStageState(run, "vae", trainableByName(vae, "vae"), opt, {
      step: stepper.step,
      micro: 0,
      generatorOffset: gen.offset,
    }));
  // LDM's scale_by_std: latents are scaled to unit standard deviation for the diffusion stage
  // (a decoder-only stage keeps the encoder, so the factor the U-Net learned with stays)
  if (!decoderOnly) vae.config.scalingFactor = await latentScale(vae, batch(0), o.seed);
  await writeFileAtomic(
    vaeStageFile(run),
    serializeSafetensors(await toSafetensorsInputs(vae.stateDict()), {
      scaling_factor: String(vae.scalingFactor),
    }),
  );
  stepper.dispose();
  opt.dispose();
  if (o.stage === "all" || o.stage === "vae") {
    await saveStageState(run, "unet", new Map(), new AdamW([]), {
      step: 0,
      micro: 0,
      generatorOffset: 0,
    });
  }
  await writeReport(log, {
    title: "mini SD: VAE stage",
    settings: reportSettings(run, steps),
    prompts: [],
    samples: [],
  });
  return losses;
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
