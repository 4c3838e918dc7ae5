/**
 * `mod.ts eval --ablation blockwise` (issue 12, seed 002's claim): per seed, trains the identity
 * and style adapters on all blocks and on each block-wise preset, as LoRA and LoCon, measures
 * each alone and their compositions with the attribute classifier, and writes the table, JSON,
 * chart and a page with every sample grid and one line per claim into the run folder.
 *
 * @module
 */
import { join } from "node:path";
import { getDevice } from "../ops/device.ts";
import { loadStableDiffusion, type StableDiffusionModels } from "../nn/loaders_fs.ts";
import { escapeControls } from "../nn/_untrusted.ts";
import type { AttributeClassifier } from "../eval/classifier.ts";
import { loadClassifier } from "../eval/classifier_fs.ts";
import { ensureWritableDir, writeFileAtomic } from "../train/atomic_fs.ts";
import { formatDuration } from "../train/progress.ts";
import { train } from "../train/trainer_fs.ts";
import { parseOptions } from "./_args.ts";
import {
  ablationJson,
  ablationMarkdown,
  type AblationResults,
  ablationSvg,
} from "./_ablation_report.ts";
import { blockwiseClaims } from "./_blockwise_claims.ts";
import {
  blockwiseAdapters,
  type BlockwiseCondition,
  blockwiseConditions,
  type PromptSet,
} from "./_blockwise_conditions.ts";
import { type BlockwiseFigure, blockwiseHtml } from "./_blockwise_html.ts";
import {
  BLOCKWISE_MEASURES,
  type BlockwiseCases,
  blockwiseCases,
  measureCondition,
} from "./_blockwise_measure.ts";
import {
  BLOCKWISE_OPTIONS,
  blockwiseHelp,
  type BlockwiseSettings,
  readBlockwiseSettings,
} from "./_blockwise_options.ts";
import {
  adapterLabel,
  adapterName,
  adapterTrainOptions,
  presetMapping,
} from "./_blockwise_plan.ts";
import { gridJpeg } from "./_demo_outputs.ts";
import { vaeCeiling } from "./_demo_measure.ts";
import { bundledClassifierPath, recordedPath } from "./bundled.ts";
import { readSchedulerOptions } from "./scheduler_config.ts";
import { DEMO } from "./train_demo.ts";

/** Nearest-neighbour scale of the grids (32x32 images -> 128 px cells). */
const GRID_SCALE = 4;
/**
 * Cost of a training step in sampling steps, for the ETA only: the `train` demo on llvmpipe took
 * ~2.5 s per training step (batch 4, forward and backward) and ~0.3 s per sampling step.
 */
const TRAIN_STEP_COST = 8;
/** A training's own progress line is shown every this many steps. */
const TRAIN_PROGRESS_EVERY = 25;

const SET_LABEL: Record<PromptSet, string> = {
  identity: "ID trigger",
  style: "style trigger",
  both: "both triggers",
  plain: "no trigger",
};

/** Everything one run holds while it goes. */
interface Run {
  settings: BlockwiseSettings;
  models: StableDiffusionModels;
  classifier: AttributeClassifier;
  cases: BlockwiseCases;
  conditions: BlockwiseCondition[];
  results: AblationResults;
  figures: Map<string, BlockwiseFigure[]>;
  say: (line: string) => void;
  /** Work done and in all (sampling-step units), and the start time, for the ETA. */
  work: { done: number; total: number; started: number };
  /** Wall seconds of each training and each condition's measurement. */
  seconds: { training: number[]; measuring: number[] };
  /** What the base's VAE lets any adapter reach (see {@link ceilingLine}). */
  ceiling: { identity: number; style: number };
}

/**
 * The VAE ceiling of both measures: the share of the identity prompts' exact renders read as
 * stars, and of the style prompts' read as striped, after the VAE's encode and decode. Every
 * generation comes out of that decoder, so no adapter on the U-Net can score higher.
 */
function ceilingLine(c: { identity: number; style: number }): string {
  const pct = (v: number) => `${Math.round(100 * v)}%`;
  return `VAE ceiling: ${pct(c.identity)} of the identity prompts' exact renders read as ` +
    `stars after the VAE's encode and decode, ${pct(c.style)} of the style prompts' as ` +
    "striped: no adapter on this base can score higher";
}

function elapsed(run: Run): string {
  const { done, total, started } = run.work;
  const s = (performance.now() - started) / 1000;
  return `${Math.round((100 * done) / total)}% done, ${formatDuration(s)} elapsed, ETA ${
    done > 0 ? formatDuration((s * (total - done)) / done) : "?"
  }`;
}

/** Trains every adapter of one seed; returns the LoRA file of each by name. */
async function trainSeed(run: Run, seed: number): Promise<Map<string, string>> {
  const { settings: s, models } = run;
  const adapters = blockwiseAdapters(s.presets, s.types);
  const files = new Map<string, string>();
  for (const [i, spec] of adapters.entries()) {
    const t0 = performance.now(), before = run.work.done;
    const options = adapterTrainOptions(spec, {
      model: s.model,
      config: models.unet.config,
      outputDir: join(s.outputDir, `seed${seed}`, "loras"),
      steps: s.steps,
      seed,
    });
    const r = await train(options, {
      progress: (line, info) => {
        run.work.done = before + info.step * TRAIN_STEP_COST;
        if (info.step % TRAIN_PROGRESS_EVERY === 0 && info.step < info.totalSteps) {
          run.say(`seed ${seed}: ${adapterLabel(spec)}: ${line}; all: ${elapsed(run)}`);
        }
      },
    });
    r.network.dispose();
    for (const m of [r.models.unet, r.models.vae, r.models.textEncoder]) m.dispose();
    files.set(adapterName(spec), r.output);
    const sec = (performance.now() - t0) / 1000;
    run.seconds.training.push(sec);
    run.work.done = before + s.steps * TRAIN_STEP_COST;
    run.say(
      `seed ${seed}: trained ${adapterLabel(spec)} (${i + 1}/${adapters.length}, ${s.steps} ` +
        `steps, ${sec.toFixed(1)} s, last logged loss ${r.losses.at(-1)?.toFixed(4) ?? "-"}); ` +
        elapsed(run),
    );
  }
  return files;
}

/** Measures every condition with one seed's files and adds the values and grids. */
async function measureSeed(run: Run, seed: number, files: Map<string, string>): Promise<void> {
  const { settings: s, results } = run;
  const scheduler = await readSchedulerOptions(s.model);
  const dir = join(s.outputDir, `seed${seed}`);
  for (const [k, c] of run.conditions.entries()) {
    const t0 = performance.now();
    const m = await measureCondition(
      run.models,
      run.classifier,
      c.adapters.map((a) => files.get(adapterName(a))!),
      c.sets,
      run.cases,
      { steps: s.sampleSteps, cfg: DEMO.cfg, sampler: DEMO.sampler, side: 32, scheduler },
    );
    for (const measure of BLOCKWISE_MEASURES) {
      results.conditions[k]!.values[measure.key]!.push(m.values[measure.key] ?? NaN);
    }
    for (const set of c.sets) {
      const file = `${c.slug}_${set}.jpg`;
      await writeFileAtomic(join(dir, file), gridJpeg(m.images[set]!, 32, GRID_SCALE));
      run.figures.get(c.name)!.push({
        label: `seed ${seed}, ${SET_LABEL[set]}`,
        src: `seed${seed}/${file}`,
      });
    }
    const sec = (performance.now() - t0) / 1000;
    run.seconds.measuring.push(sec);
    run.work.done += c.sets.length * s.images * s.sampleSteps;
    const read = Object.entries(m.values).map(([key, v]) => `${key} ${v.toFixed(2)}`).join(", ");
    run.say(
      `seed ${seed}: measured ${c.name} (${k + 1}/${run.conditions.length}: ${read}; ` +
        `${sec.toFixed(1)} s); ${elapsed(run)}`,
    );
  }
}

/** Writes table.md, results.json, chart.svg and index.html (after each seed: partial results). */
async function writeOutputs(run: Run, seedsDone: number): Promise<string> {
  const { settings: s } = run;
  const r = { ...run.results, seeds: s.seeds.slice(0, seedsDone) };
  const table = ablationMarkdown(r);
  const claims = [ceilingLine(run.ceiling), ...blockwiseClaims(r, s.presets, s.types)];
  const mapping = presetMapping(run.models.unet.config);
  const settings = [
    `seeds ${r.seeds.join(", ")}${
      seedsDone < s.seeds.length ? ` (of ${s.seeds.join(", ")})` : ""
    }; ` +
    `${s.steps} training steps per adapter (rank = alpha = ${DEMO.rank}, batch ${DEMO.batchSize}, ` +
    `learning rate ${DEMO.learningRate}); ${s.images} prompts per set, ${s.sampleSteps} ` +
    `${DEMO.sampler} steps at cfg ${DEMO.cfg}, prompt i with noise seed i`,
    `model ${recordedPath(s.model)}; presets as kohya block_dims / conv_block_dims (in<i> = ` +
    "down_blocks.<i>, out<i> = up_blocks.<i>):",
    ...mapping,
    `wall time: ${formatDuration((performance.now() - run.work.started) / 1000)}`,
  ];
  const json = {
    ...ablationJson(r),
    settings: {
      ...s,
      model: recordedPath(s.model),
      seeds: r.seeds,
      sampler: DEMO.sampler,
      cfg: DEMO.cfg,
      rank: DEMO.rank,
    },
    presetMapping: mapping,
    vaeCeiling: run.ceiling,
    claims,
    seconds: run.seconds,
  };
  const out = s.outputDir;
  await writeFileAtomic(join(out, "table.md"), table);
  await writeFileAtomic(join(out, "results.json"), JSON.stringify(json, null, 2) + "\n");
  await writeFileAtomic(join(out, "chart.svg"), ablationSvg(r));
  const page = blockwiseHtml({
    title: r.title,
    settings,
    claims,
    table,
    chart: "chart.svg",
    rows: run.conditions.map((c) => ({ name: c.name, figures: run.figures.get(c.name)! })),
  });
  await writeFileAtomic(join(out, "index.html"), page);
  return [table, ...claims.map((c) => `- ${c}`)].join("\n");
}

/**
 * Runs `eval --ablation blockwise` with its arguments; returns the exit code. Bad options throw
 * `UsageError` before anything runs. Progress goes to stderr, the table, the claims and the
 * files to stdout.
 *
 * @example
 * ```ts ignore
 * import { blockwiseAblationCommand } from "./ablation_blockwise.ts";
 * await blockwiseAblationCommand(["--seeds", "1", "--steps", "2", "--presets", "upper"]);
 * ```
 */
export async function blockwiseAblationCommand(args: string[]): Promise<number> {
  const v = parseOptions(args, BLOCKWISE_OPTIONS, "eval --ablation blockwise");
  if (v.help) {
    console.log(await blockwiseHelp());
    return 0;
  }
  const settings = readBlockwiseSettings(v);
  await ensureWritableDir(settings.outputDir);
  const enc = new TextEncoder();
  const say = (line: string) =>
    Deno.stderr.writeSync(enc.encode(`blockwise: ${escapeControls(line)}\n`));
  await getDevice();
  const models = await loadStableDiffusion(settings.model);
  let classifier: AttributeClassifier | undefined;
  try {
    classifier = await loadClassifier(bundledClassifierPath());
    const conditions = blockwiseConditions(settings.presets, settings.types);
    const cases = blockwiseCases(settings.images);
    const ceiling = {
      identity: await vaeCeiling(models, classifier, cases.identity, 32),
      style: await vaeCeiling(models, classifier, cases.style, 32, "fill"),
    };
    const adapters = blockwiseAdapters(settings.presets, settings.types).length;
    const images = conditions.reduce((a, c) => a + c.sets.length, 0) * settings.images;
    const perSeed = adapters * settings.steps * TRAIN_STEP_COST + images * settings.sampleSteps;
    const run: Run = {
      settings,
      models,
      classifier,
      cases,
      conditions,
      results: {
        title: "Block-wise LoRA / LoCon: identity and style alone and composed (issue 12)",
        seeds: settings.seeds,
        measures: BLOCKWISE_MEASURES,
        conditions: conditions.map((c) => ({
          name: c.name,
          values: Object.fromEntries(BLOCKWISE_MEASURES.map((m) => [m.key, [] as number[]])),
        })),
      },
      figures: new Map(conditions.map((c) => [c.name, []])),
      say,
      work: { done: 0, total: perSeed * settings.seeds.length, started: performance.now() },
      seconds: { training: [], measuring: [] },
      ceiling,
    };
    say(
      `${settings.seeds.length} seed(s) x ${adapters} adapters, ${conditions.length} ` +
        `conditions, ${images} images per seed; into ${settings.outputDir}/`,
    );
    for (const l of presetMapping(models.unet.config)) say(l);
    say(ceilingLine(ceiling));
    let summary = "";
    for (const [i, seed] of settings.seeds.entries()) {
      const files = await trainSeed(run, seed);
      await measureSeed(run, seed, files);
      summary = await writeOutputs(run, i + 1);
    }
    const out = settings.outputDir;
    console.log(
      [
        summary,
        "",
        ...["table.md", "results.json", "chart.svg", "index.html"].map((f) =>
          `wrote ${join(out, f)}`
        ),
        `LoRA files and sample grids: ${join(out, "seed<k>")}/`,
      ].join("\n").split("\n").map(escapeControls).join("\n"),
    );
    return 0;
  } finally {
    for (const m of [models.unet, models.vae, models.textEncoder, classifier]) m?.dispose();
  }
}
