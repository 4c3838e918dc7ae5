/**
 * `mod.ts eval`: measures a mini SD (with optional LoRAs) on the procedural world against issue
 * 11's targets: attribute accuracy of generations against their prompts, VAE reconstruction
 * PSNR / SSIM, and a classifier Fréchet distance (a small-scale stand-in for FID).
 *
 * @module
 */
import { getDevice } from "../ops/device.ts";
import { loadStableDiffusion } from "../nn/loaders_fs.ts";
import { escapeControls } from "../nn/_untrusted.ts";
import type { AttributeClassifier } from "../eval/classifier.ts";
import { loadClassifier } from "../eval/classifier_fs.ts";
import { featureStats, frechetDistance } from "../eval/frechet.ts";
import { ProceduralWorld } from "../eval/world.ts";
import {
  formatOptions,
  intOption,
  numberOption,
  type OptionTable,
  parseOptions,
  UsageError,
} from "./_args.ts";
import { checkOutputPath, writeFileAtomic } from "./_output.ts";
import { readSchedulerOptions } from "./scheduler_config.ts";
import { applyLoraSpecs, parseLoraSpec } from "./_lora_spec.ts";
import { evaluationCases, generateAndScore, scoreImages } from "./_generation_measures.ts";
import { type EvalReport, formatEvalTable, targetChecks } from "./_eval_report.ts";
import { reconstructImages, reconstructionScores } from "./_eval_vae.ts";
import { bundledClassifierPath, bundledModelDir } from "./bundled.ts";

/** The sampler of every evaluation (issue 11's setting). */
const SAMPLER = "euler_a";

/** The options of `eval`: parsed from this table, and its help printed from it. */
export const EVAL_OPTIONS = {
  model: {
    type: "string",
    value: "<folder>",
    help: "diffusers folder of the model to measure (default: the shipped models/mini_sd)",
  },
  lora: {
    type: "string",
    value: "<spec>",
    multiple: true,
    help:
      "apply a LoRA unmerged, as mod.ts sample --lora does: file[:m][:te=m][:unet=m][:lbw=w]; " +
      "repeatable",
  },
  n: {
    type: "string",
    value: "<images>",
    help: "prompts to generate from and real images to compare, 2 to 4096 (default 64)",
  },
  seed: {
    type: "string",
    value: "<n>",
    help: "seed of the procedural world the prompts and real images come from, 0 to " +
      "4294967295 (default 99; pretraining used seed 1); image i has noise seed i",
  },
  steps: {
    type: "string",
    value: "<n>",
    help: "sampling steps, 1 to the model's training timesteps (default 20)",
  },
  cfg: {
    type: "string",
    value: "<scale>",
    help: "classifier-free guidance scale, a decimal number from 0 to 100 (default 5)",
  },
  json: {
    type: "string",
    value: "<file|->",
    help: "also write the results as JSON, replaced atomically; - prints the JSON to stdout " +
      "(and the table to stderr)",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** Help text of `eval`. */
export const EVAL_HELP: string = `Usage: deno run -A mod.ts eval [options]

Measures a mini SD on the procedural world against issue 11's targets: object and background
colour (pixel statistics) and shape, count and fill (the attribute classifier) of images
generated from captions (${SAMPLER}), against what the captions ask for; VAE reconstruction
PSNR and SSIM on real procedural images; and the classifier Fréchet distance between generated
and real images (a small-scale stand-in for FID).

Options:
${formatOptions(EVAL_OPTIONS)}
  --ablation <adabn|blockwise>  run one of issue 12's ablations instead (its own options:
                                mod.ts eval --ablation adabn --help)`;

function progress(t0: number): (done: number, total: number) => void {
  return (done, total) => {
    const s = (performance.now() - t0) / 1000;
    const eta = (s / done) * (total - done);
    const line = `\rgenerated ${done}/${total} images, ${(s / done).toFixed(1)} s/image, ` +
      `ETA ${eta.toFixed(0)} s   ${done === total ? "\n" : ""}`;
    Deno.stderr.writeSync(new TextEncoder().encode(line));
  };
}

/** The ablations `--ablation <name>` runs (issue 12), each with its own options and help. */
const ABLATIONS: Record<string, (args: string[]) => Promise<number>> = {
  adabn: async (args) => (await import("./ablation_adabn.ts")).adabnAblationCommand(args),
  blockwise: async (args) =>
    (await import("./ablation_blockwise.ts")).blockwiseAblationCommand(args),
};

/** `--ablation <name>` / `--ablation=<name>` taken out of the arguments, if present. */
function splitAblation(args: string[]): { name: string; rest: string[] } | undefined {
  const i = args.findIndex((a) => a === "--ablation" || a.startsWith("--ablation="));
  const flag = args[i];
  if (flag === undefined) return undefined;
  const inline = flag.startsWith("--ablation=");
  const name = inline ? flag.slice("--ablation=".length) : args[i + 1];
  if (name === undefined || name.startsWith("-")) {
    throw new UsageError(`--ablation needs a name: ${Object.keys(ABLATIONS).join(" or ")}`);
  }
  return { name, rest: [...args.slice(0, i), ...args.slice(i + (inline ? 1 : 2))] };
}

function runAblation(name: string, args: string[]): Promise<number> {
  const run = ABLATIONS[name];
  if (!run) {
    throw new UsageError(
      `Unknown ablation ${JSON.stringify(escapeControls(name))}; choose ` +
        `${Object.keys(ABLATIONS).join(" or ")}`,
    );
  }
  return run(args).catch((e) => {
    // its errors hint at the ablation's own help, which lists its options
    throw e instanceof UsageError && !e.command
      ? new UsageError(e.message, `eval --ablation ${name}`)
      : e;
  });
}

/**
 * Runs `eval` with its arguments (after the command name); returns the exit code. Bad arguments
 * throw `UsageError`, failures other typed errors (the CLI entry prints them).
 *
 * @example
 * ```ts ignore
 * import { evalCommand } from "./eval.ts";
 * await evalCommand(["--n", "16", "--json", "eval.json"]);
 * ```
 */
export async function evalCommand(args: string[]): Promise<number> {
  const ablation = splitAblation(args);
  if (ablation) return await runAblation(ablation.name, ablation.rest);
  const v = parseOptions(args, EVAL_OPTIONS, "eval");
  if (v.help) {
    console.log(EVAL_HELP);
    return 0;
  }
  const model = v.model ?? bundledModelDir();
  const n = intOption("n", v.n, 64, {
    min: 2,
    max: 4096,
    why: "the Fréchet distance needs two images",
  });
  const seed = intOption("seed", v.seed, 99, { min: 0, max: 2 ** 32 - 1 });
  const scheduler = await readSchedulerOptions(model);
  const trainSteps = scheduler.schedule?.trainSteps ?? 1000;
  const steps = intOption("steps", v.steps, 20, {
    min: 1,
    max: trainSteps,
    why: `the model's ${trainSteps} training timesteps`,
  });
  const cfg = numberOption("cfg", v.cfg, 5, { min: 0, max: 100 });
  const loraArgs = v.lora ?? [];
  const loras = loraArgs.map(parseLoraSpec);
  if (v.json !== undefined && v.json !== "-") await checkOutputPath(v.json);

  const t0 = performance.now();
  await getDevice();
  const models = await loadStableDiffusion(model);
  let classifier: AttributeClassifier | undefined;
  let report: EvalReport;
  try {
    classifier = await loadClassifier(bundledClassifierPath());
    const side = classifier.imageSize;
    const cases = evaluationCases({ seed }, n);
    const realImages = new ProceduralWorld({ seed }).items(0, n).map((it) => it.rgb);
    const recs = await reconstructImages(models.vae, realImages, side);
    const vae = reconstructionScores(realImages, recs, side);
    const scenes = cases.map((c) => c.scene);
    const real = await scoreImages(classifier, realImages, scenes, side);
    const reconstructed = (await scoreImages(classifier, recs, scenes, side)).scores;
    const generated = await (async () => {
      using _lora = await applyLoraSpecs(models, loras);
      return await generateAndScore(models, classifier, cases, {
        steps,
        cfg,
        sampler: SAMPLER,
        side,
        scheduler,
        onImage: progress(performance.now()),
      });
    })();
    const d = real.featureDim;
    const classifierFrechet = frechetDistance(
      featureStats(generated.features, n, d),
      featureStats(real.features, n, d),
    );
    report = {
      model,
      loras: loraArgs,
      n,
      seed,
      steps,
      cfg,
      sampler: SAMPLER,
      side,
      generated: generated.scores,
      real: real.scores,
      reconstructed,
      vae,
      classifierFrechet,
      targets: targetChecks(generated.scores, vae),
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const m of [models.unet, models.vae, models.textEncoder, classifier]) m?.dispose();
  }
  const json = JSON.stringify(report, null, 2) + "\n";
  const table = formatEvalTable(report).split("\n").map(escapeControls).join("\n");
  if (v.json === "-") {
    console.error(table);
    console.log(json.trimEnd());
  } else {
    console.log(table);
    if (v.json !== undefined) {
      await writeFileAtomic(v.json, new TextEncoder().encode(json));
      console.log(`wrote ${escapeControls(v.json)}`);
    }
  }
  return 0;
}
