/**
 * `mod.ts train` with no arguments: the bundled demo. Trains a LoRA for the shipped identity
 * concept (`datasets/zqstar`: five-pointed stars, trigger word "zqstar") on the shipped mini SD
 * (`models/mini_sd`) with the kohya-style trainer, then generates fixed prompts with fixed seeds
 * with the base model and with the LoRA, measures the effect with the attribute classifier, and
 * writes everything into one run folder (default `runs/demo`).
 *
 * @module
 */
import { join } from "node:path";
import { getDevice } from "../ops/device.ts";
import { escapeControls } from "../nn/_untrusted.ts";
import { loadClassifier } from "../eval/classifier_fs.ts";
import { IDENTITY_CONCEPT } from "../eval/concepts.ts";
import { writeFileAtomic } from "../train/atomic_fs.ts";
import { train, type TrainOptions } from "../train/trainer_fs.ts";
import { intOption, type OptionTable, parseOptions } from "./_args.ts";
import { bundledClassifierPath, bundledDatasetDir, bundledModelDir } from "./bundled.ts";
import { demoCases, measureDemo, vaeCeiling } from "./_demo_measure.ts";
import { addDemoSection, effectLines, gridJpeg } from "./_demo_outputs.ts";
import { readSchedulerOptions } from "./scheduler_config.ts";
import { normalizeTrainArgs } from "./train_options.ts";

/** The demo's fixed settings (the defaults of its flags). */
export const DEMO = {
  /** Training steps. */
  steps: 100,
  /** Prompts per measured set (with and without the trigger; each made twice). */
  images: 16,
  /** Sampling steps of every generated image. */
  sampleSteps: 10,
  /** Batch size. */
  batchSize: 4,
  /** LoRA rank (alpha equal: scale 1). */
  rank: 8,
  /** Learning rate. */
  learningRate: 1e-3,
  /** Sampler (deterministic, so `mod.ts sample` with the same seed makes the same image). */
  sampler: "dpmpp_2m",
  /** Guidance scale. */
  cfg: 5,
  /** Nearest-neighbour scale factor of the grids. */
  gridScale: 8,
  /** The run folder. */
  outputDir: "runs/demo",
} as const;

/** Flags of the demo (for CI and quick looks: fewer steps and images). */
export const DEMO_OPTIONS = {
  "demo-steps": {
    type: "string",
    value: "<n>",
    help: `demo training steps (default ${DEMO.steps})`,
  },
  "demo-images": {
    type: "string",
    value: "<n>",
    help: `demo prompts per measured set (default ${DEMO.images})`,
  },
  "demo-sample-steps": {
    type: "string",
    value: "<n>",
    help: `demo sampling steps per image (default ${DEMO.sampleSteps})`,
  },
  "output-dir": {
    type: "string",
    value: "<dir>",
    help: `demo run folder (default ${DEMO.outputDir})`,
  },
} as const satisfies OptionTable;

/** The demo's training run, as trainer options. */
function demoTrainOptions(outputDir: string, steps: number): TrainOptions {
  return {
    pretrainedModelNameOrPath: bundledModelDir(),
    trainDataDir: bundledDatasetDir(IDENTITY_CONCEPT.name),
    captionExtension: ".txt",
    outputDir,
    outputName: IDENTITY_CONCEPT.trigger,
    logDir: join(outputDir, "logs"),
    resolution: 32,
    trainBatchSize: DEMO.batchSize,
    networkDim: DEMO.rank,
    networkAlpha: DEMO.rank,
    learningRate: DEMO.learningRate,
    maxTrainSteps: steps,
    cacheLatents: true,
    logEvery: Math.min(5, steps),
    seed: 42,
  };
}

/**
 * The demo's training run as a kohya-style command line.
 *
 * @example
 * ```ts
 * import { demoCommand } from "./train_demo.ts";
 * console.log(demoCommand(120, "runs/demo").includes("--max_train_steps 120")); // true
 * ```
 */
export function demoCommand(steps: number, outputDir: string): string {
  return `deno run -A mod.ts train --pretrained_model_name_or_path models/mini_sd \\
    --train_data_dir datasets/zqstar --caption_extension .txt --output_dir ${outputDir} \\
    --output_name zqstar --logging_dir ${outputDir}/logs --resolution 32 \\
    --train_batch_size ${DEMO.batchSize} --network_dim ${DEMO.rank} --network_alpha ${DEMO.rank} \\
    --learning_rate ${DEMO.learningRate} --max_train_steps ${steps} --cache_latents --seed 42`;
}

/**
 * Runs the demo with its flags (none: the full demo); returns the exit code. Progress goes to
 * stderr, the written files and the measured effect to stdout.
 *
 * @example
 * ```ts ignore
 * import { trainDemo } from "./train_demo.ts";
 * await trainDemo(["--demo-steps", "2", "--demo-images", "2", "--output-dir", "/tmp/demo"]);
 * ```
 */
export async function trainDemo(args: string[]): Promise<number> {
  const v = parseOptions(normalizeTrainArgs(args), DEMO_OPTIONS, "train");
  const range = { min: 1, max: 100_000 };
  const steps = intOption("demo-steps", v["demo-steps"], DEMO.steps, range);
  const n = intOption("demo-images", v["demo-images"], DEMO.images, { min: 1, max: 1000 });
  const sampleSteps = intOption(
    "demo-sample-steps",
    v["demo-sample-steps"],
    DEMO.sampleSteps,
    { min: 1, max: 1000 },
  );
  const out = v["output-dir"] ?? DEMO.outputDir;
  const started = performance.now();
  const enc = new TextEncoder();
  const err = (text: string) => {
    for (const line of text.split("\n")) {
      Deno.stderr.writeSync(enc.encode(`${escapeControls(line)}\n`));
    }
  };
  await getDevice();
  const classifier = await loadClassifier(bundledClassifierPath());
  err(
    `demo: a LoRA for "${IDENTITY_CONCEPT.trigger}" (five-pointed stars) on the bundled mini SD: ` +
      `${steps} steps, batch ${DEMO.batchSize}, rank ${DEMO.rank}, 32x32, into ${out}/; the ` +
      `same run, kohya style:\n${demoCommand(steps, out)}`,
  );
  const r = await train(demoTrainOptions(out, steps), { progress: err, message: err });
  try {
    const trained = performance.now();
    const cases = demoCases(n);
    const m = await measureDemo(r.models, r.network, classifier, cases, {
      steps: sampleSteps,
      cfg: DEMO.cfg,
      sampler: DEMO.sampler,
      side: 32,
      scheduler: await readSchedulerOptions(bundledModelDir()),
      onImage: (done, total) => {
        if (done % 8 === 0 || done === total) err(`demo: generated ${done}/${total} images`);
      },
    });
    const ceiling = await vaeCeiling(r.models, classifier, cases.concept, 32);
    const grids = [
      { file: "zqstar_base.jpg", label: "with the trigger, base model", set: m.conceptBase },
      { file: "zqstar_lora.jpg", label: "with the trigger, with the LoRA", set: m.conceptLora },
      { file: "plain_base.jpg", label: "without the trigger, base model", set: m.plainBase },
      { file: "plain_lora.jpg", label: "without the trigger, with the LoRA", set: m.plainLora },
    ].map((g) => ({ ...g, jpeg: gridJpeg(g.set.images, 32, DEMO.gridScale) }));
    for (const g of grids) await writeFileAtomic(join(out, g.file), g.jpeg);
    const seconds = (t: number) => ((t - started) / 1000).toFixed(0);
    const lines = [
      ...effectLines(m, ceiling, IDENTITY_CONCEPT.trigger, "star"),
      `${n} prompts per set, ${sampleSteps} ${DEMO.sampler} steps at cfg ${DEMO.cfg}, ` +
      `prompt i with seed i; training took ${seconds(trained)} s, the whole demo ` +
      `${seconds(performance.now())} s`,
    ];
    const report = join(out, "logs", "report.html");
    await addDemoSection(report, lines, grids);
    console.log(
      [
        `LoRA:       ${r.output}`,
        `grids:      ${grids.map((g) => join(out, g.file)).join(", ")}`,
        `loss curve: ${join(out, "logs", "loss_curve.svg")}`,
        `report:     ${report}`,
        ...lines,
        `try it: deno run -A mod.ts sample --model models/mini_sd --width 32 --height 32 ` +
        `--sampler ${DEMO.sampler} --steps ${sampleSteps} --cfg ${DEMO.cfg} --seed 0 ` +
        `--prompt "${cases.concept[0]!.prompt}" --lora ${r.output} --out star.png`,
      ].map(escapeControls).join("\n"),
    );
    return 0;
  } finally {
    r.network.dispose();
    for (const x of [r.models.unet, r.models.vae, r.models.textEncoder, classifier]) x.dispose();
  }
}
