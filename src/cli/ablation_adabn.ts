/**
 * `mod.ts eval --ablation adabn` (issue 12): does AdaBN (or norm adaptation) help a LoRA adapt
 * the mini SD to a domain it has not seen? Eight conditions on two base models (batch norm and
 * group norm), measured on the target domain and on the source domain over several seeds, with
 * means and 95% intervals in a markdown table, JSON and an SVG chart, and one plain line per
 * claim of seed 000 saying whether it held.
 *
 * @module
 */
import { join } from "node:path";
import { getDevice } from "../ops/device.ts";
import { escapeControls, quote } from "../nn/_untrusted.ts";
import { loadClassifier } from "../eval/classifier_fs.ts";
import { ensureWritableDir, writeFileAtomic } from "../train/atomic_fs.ts";
import { formatDuration } from "../train/progress.ts";
import {
  formatOptions,
  intOption,
  listOption,
  numberOption,
  type OptionTable,
  parseOptions,
  UsageError,
} from "./_args.ts";
import {
  ablationJson,
  ablationMarkdown,
  type AblationResults,
  ablationSvg,
} from "./_ablation_report.ts";
import {
  bundledBatchNormModelDir,
  bundledClassifierPath,
  bundledModelDir,
  recordedPath,
} from "./bundled.ts";
import { HELD_OUT_TIMESTEPS } from "./_demo_measure.ts";
import { SOURCE_DOMAIN, TARGET_DOMAIN } from "./_adabn_ablation_domain.ts";
import { CONDITIONS, type ModelFamily } from "./_adabn_ablation_conditions.ts";
import {
  FIXED,
  MEASURES,
  runAblation,
  type RunState,
  type Settings,
} from "./_adabn_ablation_run.ts";
import { claimLines } from "./_adabn_ablation_claims.ts";

/** The options of `eval --ablation adabn`. */
export const ADABN_ABLATION_OPTIONS = {
  model: {
    type: "string",
    value: "<folder>",
    help: "group-norm diffusers folder of the norm-delta conditions (default: the shipped " +
      "models/mini_sd)",
  },
  "bn-model": {
    type: "string",
    value: "<folder>",
    help: "batch-norm diffusers folder (U-Net norm: batch) of the AdaBN conditions (default: " +
      "models/mini_sd_bn)",
  },
  seeds: {
    type: "string",
    value: "<a,b,...>",
    help: "run seeds, 1 to 20 of them, each 0 to 998: training data, order, noise and adapter " +
      "init (default 1,2,3)",
  },
  steps: { type: "string", value: "<n>", help: "LoRA training steps, 1 to 100000 (default 100)" },
  rank: { type: "string", value: "<n>", help: "LoRA rank, alpha equal, 1 to 64 (default 8)" },
  lr: { type: "string", value: "<x>", help: "learning rate, 0 to 1 (default 0.001)" },
  images: {
    type: "string",
    value: "<n>",
    help: "target training images per seed, 1 to 1000 (default 20)",
  },
  n: {
    type: "string",
    value: "<images>",
    help: "held-out images per domain, 2 to 1000 (default 16)",
  },
  "sample-steps": {
    type: "string",
    value: "<n>",
    help: "sampling steps of generations and img2img, 1 to 1000 (default 10)",
  },
  "eval-every": {
    type: "string",
    value: "<n>",
    help: "steps between the LoRA checkpoints whose held-out target loss gives the steps " +
      "measure, 1 to --steps (default a tenth of --steps)",
  },
  "threshold-drop": {
    type: "string",
    value: "<percent>",
    help: "the loss threshold of the steps measure: this many percent below the base model's " +
      "held-out target loss, 0 to 99 (default 10)",
  },
  "output-dir": {
    type: "string",
    value: "<dir>",
    help: "run folder (default runs/ablation_adabn)",
  },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionTable;

/** Help text of `eval --ablation adabn`. */
export const ADABN_ABLATION_HELP: string =
  `Usage: deno run -A mod.ts eval --ablation adabn [options]

Measures whether AdaBN with LoRA adapts the mini SD to an unseen domain better than LoRA alone
(seed 000's claims), and norm deltas on the group-norm model likewise.

Target domain: ${TARGET_DOMAIN}.
Source domain: ${SOURCE_DOMAIN}.

Conditions per seed: base (BN); AdaBN only (statistics estimated on the target's training
images); LoRA (BN); LoRA + AdaBN before (estimated, then frozen); LoRA + AdaBN during (adapting
at every step); base (GN); LoRA (GN); LoRA + norm deltas (GN). Every LoRA: same rank, steps,
learning rate, batch ${FIXED.batchSize}, U-Net and text encoder, and is measured loaded from its
file onto a fresh base (U-Net in eval mode), as a user loads it.

Measures on both domains: held-out denoising loss at timesteps ${HELD_OUT_TIMESTEPS.join(", ")}
(fixed noise); PSNR and SSIM of img2img reconstructions (strength ${FIXED.strength}, the caption as
prompt); the classifier Fréchet distance of generations against the real images; and the steps
a LoRA needs to bring the held-out target loss --threshold-drop percent below its base model's,
read off checkpoints every --eval-every steps (--steps when never reached).
Means with 95% t-intervals over seeds; the base rows do not depend on the seed.

Writes <output-dir>/table.md, results.json, chart.svg and the LoRA files (loras/seed<N>/).

Options:
${formatOptions(ADABN_ABLATION_OPTIONS)}`;

function seedList(raw: string | undefined): number[] {
  const seeds = listOption(
    "seeds",
    raw,
    [1, 2, 3],
    (p) => intOption("seeds", p, 0, { min: 0, max: 998 }),
  );
  if (seeds.length > 20) {
    throw new UsageError(`--seeds takes at most 20 seeds, got ${seeds.length}`);
  }
  return seeds;
}

function readSettings(args: string[]): Settings | null {
  const v = parseOptions(args, ADABN_ABLATION_OPTIONS, "eval --ablation adabn");
  if (v.help) return null;
  const steps = intOption("steps", v.steps, 100, { min: 1, max: 100_000 });
  return {
    model: v.model ?? bundledModelDir(),
    bnModel: v["bn-model"] ?? bundledBatchNormModelDir(),
    seeds: seedList(v.seeds),
    steps,
    rank: intOption("rank", v.rank, 8, { min: 1, max: 64 }),
    lr: numberOption("lr", v.lr, 1e-3, { min: 0, max: 1 }),
    images: intOption("images", v.images, 20, { min: 1, max: 1000 }),
    n: intOption("n", v.n, 16, { min: 2, max: 1000, why: "the Fréchet distance needs two" }),
    sampleSteps: intOption("sample-steps", v["sample-steps"], 10, { min: 1, max: 1000 }),
    evalEvery: intOption("eval-every", v["eval-every"], Math.max(1, Math.round(steps / 10)), {
      min: 1,
      max: steps,
      why: "--steps",
    }),
    thresholdDrop: numberOption("threshold-drop", v["threshold-drop"], 10, { min: 0, max: 99 }),
    outputDir: v["output-dir"] ?? "runs/ablation_adabn",
  };
}

/** Checks a model folder's U-Net norm before any long work; the errors say what to pass. */
async function checkNorm(path: string, option: string, want: "batch" | "group"): Promise<void> {
  const file = join(path, "unet", "config.json");
  let norm: unknown;
  try {
    norm = (JSON.parse(await Deno.readTextFile(file)) as { norm?: unknown }).norm ?? "group";
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound;
    if (missing && option === "bn-model" && path === bundledBatchNormModelDir()) {
      throw new UsageError(
        `The batch-norm mini model is not at ${quote(path)} yet; build it with mod.ts ` +
          "pretrain --init models/mini_sd --stage unet --norm batch (then copy <out>/model " +
          "there), or pass --bn-model <folder>",
      );
    }
    throw new UsageError(
      `--${option} ${quote(path)} is not a diffusers model folder (${
        missing ? "no unet/config.json" : quote((e as Error).message)
      }); pass the folder that holds unet/, vae/, text_encoder/ and tokenizer/`,
    );
  }
  if (norm !== want) {
    throw new UsageError(
      `--${option} ${quote(path)} has a U-Net with ${quote(String(norm))} norm; this option ` +
        `takes a ${want}-norm model`,
    );
  }
}

/** The table, the domains, the threshold and the claim lines as markdown. */
function tableMarkdown(r: AblationResults, o: Settings, claims: string[], st: RunState): string {
  const never = Object.entries(st.training).flatMap(([key, runs]) =>
    runs.filter((x) => !x.reached).map((x) =>
      `${CONDITIONS.find((c) => c.key === key)!.name} seed ${x.seed}`
    )
  );
  return [
    ablationMarkdown(r),
    `Target domain: ${TARGET_DOMAIN}; ${o.images} training images per seed, ${o.n} held out.`,
    `Source domain: ${SOURCE_DOMAIN}; ${o.n} images.`,
    `LoRA: rank ${o.rank} (alpha ${o.rank}), ${o.steps} steps, lr ${o.lr}, batch ` +
    `${FIXED.batchSize}; sampling: ${FIXED.sampler}, ${o.sampleSteps} steps, cfg ${FIXED.cfg}, ` +
    `img2img strength ${FIXED.strength}.`,
    `Steps to threshold: the first checkpoint (every ${o.evalEvery} steps) whose held-out ` +
    `target loss is ${o.thresholdDrop}% below its base model's (threshold BN: ` +
    `${thresholdText(st, "bn", o)}, GN: ${thresholdText(st, "gn", o)}); never reached ` +
    `(counted as ${o.steps}): ${never.length ? never.join(", ") : "none"}.`,
    "",
    "Claims of seed 000 (paired differences, treated minus plain LoRA, mean ± 95% interval):",
    "",
    ...claims.map((l) => `- ${l}`),
    "",
  ].join("\n");
}

function thresholdText(st: RunState, f: ModelFamily, o: Settings): string {
  const base = st.bases.get(f);
  return base ? ((1 - o.thresholdDrop / 100) * base.target.loss).toPrecision(4) : "-";
}

/**
 * Runs `eval --ablation adabn` with its arguments (after `--ablation adabn` is taken out);
 * returns the exit code. Bad arguments throw `UsageError` before any work starts.
 *
 * @example
 * ```ts ignore
 * import { adabnAblationCommand } from "./ablation_adabn.ts";
 * await adabnAblationCommand(["--seeds", "1", "--steps", "2", "--output-dir", "/tmp/ab"]);
 * ```
 */
export async function adabnAblationCommand(args: string[]): Promise<number> {
  const o = readSettings(args);
  if (!o) {
    console.log(ADABN_ABLATION_HELP);
    return 0;
  }
  await checkNorm(o.bnModel, "bn-model", "batch");
  await checkNorm(o.model, "model", "group");
  await ensureWritableDir(o.outputDir);
  const started = performance.now();
  await getDevice();
  const classifier = await loadClassifier(bundledClassifierPath());
  const dataRoot = await Deno.makeTempDir({ prefix: "denoise_adabn_ablation_" });
  const st: RunState = { values: {}, training: {}, seconds: {}, bases: new Map() };
  try {
    await runAblation(o, classifier, st, dataRoot);
  } finally {
    classifier.dispose();
    await Deno.remove(dataRoot, { recursive: true }).catch(() => {});
  }
  const r: AblationResults = {
    title: "AdaBN and norm deltas with LoRA on an unseen domain (mini SD)",
    seeds: o.seeds,
    measures: [...MEASURES],
    conditions: CONDITIONS.map((c) => ({ name: c.name, values: st.values[c.key]! })),
  };
  const claims = claimLines(r, Object.fromEntries(CONDITIONS.map((c) => [c.key, c.name])));
  const table = tableMarkdown(r, o, claims, st);
  const json = {
    ...ablationJson(r),
    targetDomain: TARGET_DOMAIN,
    sourceDomain: SOURCE_DOMAIN,
    settings: {
      ...o,
      model: recordedPath(o.model),
      bnModel: recordedPath(o.bnModel),
      ...FIXED,
      heldOutTimesteps: HELD_OUT_TIMESTEPS,
    },
    conditionKeys: CONDITIONS.map((c) => c.key),
    training: st.training,
    conditionSeconds: st.seconds,
    claims,
    seconds: (performance.now() - started) / 1000,
  };
  const files = {
    table: join(o.outputDir, "table.md"),
    json: join(o.outputDir, "results.json"),
    chart: join(o.outputDir, "chart.svg"),
  };
  await writeFileAtomic(files.table, table);
  await writeFileAtomic(files.json, JSON.stringify(json, null, 2) + "\n");
  await writeFileAtomic(files.chart, ablationSvg(r));
  console.log(table.split("\n").map(escapeControls).join("\n"));
  console.log(
    `wrote ${[files.table, files.json, files.chart].map(escapeControls).join(", ")} in ` +
      formatDuration(json.seconds),
  );
  return 0;
}
