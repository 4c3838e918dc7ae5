/**
 * The AdaBN ablation's run: every condition of every seed (train, estimate, measure), with
 * progress lines and an estimate of the time left, into a {@link RunState}.
 *
 * @module
 */
import { join } from "node:path";
import { escapeControls } from "../nn/_untrusted.ts";
import type { AttributeClassifier } from "../eval/classifier.ts";
import { formatDuration } from "../train/progress.ts";
import type { AblationMeasure } from "./_ablation_report.ts";
import { readSchedulerOptions } from "./scheduler_config.ts";
import {
  heldOutSets,
  targetTrainingSet,
  writeTargetTrainingFolder,
} from "./_adabn_ablation_domain.ts";
import {
  type DomainMeasures,
  measureDomain,
  type MeasureSettings,
  type ScoredDomain,
  scoreDomain,
} from "./_adabn_ablation_measure.ts";
import {
  CONDITIONS,
  type ConditionSpec,
  estimateAdabnOnly,
  heldOutCurve,
  type LoadedModels,
  loadForMeasure,
  type ModelFamily,
  stepsToThreshold,
  trainCondition,
} from "./_adabn_ablation_conditions.ts";

/** Fixed settings of every run (the train demo's where they overlap). */
export const FIXED = {
  /** Image side: the world's, the classifier's and the mini model's. */
  side: 32,
  /** Training batch size. */
  batchSize: 4,
  /** Sampler of the reconstructions and generations. */
  sampler: "dpmpp_2m",
  /** Guidance scale. */
  cfg: 5,
  /** img2img strength of the reconstructions. */
  strength: 0.5,
} as const;

/** The table's columns. */
export const MEASURES: readonly AblationMeasure[] = [
  { key: "loss_target", label: "target loss", higherIsBetter: false },
  { key: "psnr_target", label: "target PSNR (dB)", higherIsBetter: true },
  { key: "ssim_target", label: "target SSIM", higherIsBetter: true },
  { key: "fd_target", label: "target FD", higherIsBetter: false },
  { key: "steps", label: "steps to threshold", higherIsBetter: false },
  { key: "loss_source", label: "source loss", higherIsBetter: false },
  { key: "psnr_source", label: "source PSNR (dB)", higherIsBetter: true },
  { key: "ssim_source", label: "source SSIM", higherIsBetter: true },
  { key: "fd_source", label: "source FD", higherIsBetter: false },
];

/** The run's settings (the command's options, read and checked). */
export interface Settings {
  /** Group-norm model folder. */
  model: string;
  /** Batch-norm model folder. */
  bnModel: string;
  /** Run seeds. */
  seeds: number[];
  /** LoRA training steps. */
  steps: number;
  /** LoRA rank (alpha equal). */
  rank: number;
  /** Learning rate. */
  lr: number;
  /** Target training images per seed. */
  images: number;
  /** Held-out images per domain. */
  n: number;
  /** Sampling steps of generations and img2img. */
  sampleSteps: number;
  /** Steps between the checkpoints of the held-out curve. */
  evalEvery: number;
  /** Percent below the base's held-out target loss that counts as reached. */
  thresholdDrop: number;
  /** Run folder. */
  outputDir: string;
}

/** Progress lines on stderr with the elapsed time and an estimate of the rest. */
class Progress {
  readonly #start = performance.now();
  #done = 0;
  constructor(readonly total: number) {}
  line(text: string): void {
    const s = (performance.now() - this.#start) / 1000;
    const eta = this.#done > 0 ? formatDuration(s / this.#done * (this.total - this.#done)) : "?";
    const msg = `adabn ablation: ${text} · part ${this.#done + 1}/${this.total} · ` +
      `${formatDuration(s)} elapsed · ETA ${eta}`;
    console.error(escapeControls(msg));
  }
  partDone(): void {
    this.#done++;
  }
}

/** Per-condition, per-seed record of a LoRA's training, for the JSON. */
export interface TrainingRecord {
  seed: number;
  file: string;
  threshold: number;
  steps: number;
  reached: boolean;
  seconds: number;
  /** Held-out target loss of each checkpoint. */
  heldOut: { step: number; loss: number }[];
  /** The trainer's smoothed training loss after each step. */
  smoothedLoss: number[];
}

/** What the run gathers: the table's values and the training records. */
export interface RunState {
  /** Condition key -> measure key -> one value per seed. */
  values: Record<string, Record<string, number[]>>;
  /** Condition key -> one training record per seed (LoRA conditions). */
  training: Record<string, TrainingRecord[]>;
  /** Condition key -> wall seconds per seed. */
  seconds: Record<string, number[]>;
  /** The base models' measures (the same for every seed). */
  bases: Map<ModelFamily, { target: DomainMeasures; source: DomainMeasures }>;
}

function record(
  st: RunState,
  c: ConditionSpec,
  m: { target: DomainMeasures; source: DomainMeasures },
  steps: number,
): void {
  const row = st.values[c.key] ??= Object.fromEntries(MEASURES.map((x) => [x.key, []]));
  for (const d of ["target", "source"] as const) {
    for (const k of ["loss", "psnr", "ssim", "fd"] as const) row[`${k}_${d}`]!.push(m[d][k]);
  }
  row.steps!.push(steps);
}

/**
 * Runs every condition of every seed and fills `st`: the target's training images of each seed
 * go to a kohya folder under `dataRoot`, the LoRA files under `<outputDir>/loras/seed<N>/`.
 *
 * @example
 * ```ts ignore
 * const st: RunState = { values: {}, training: {}, seconds: {}, bases: new Map() };
 * await runAblation(settings, classifier, st, await Deno.makeTempDir());
 * ```
 */
export async function runAblation(
  o: Settings,
  classifier: AttributeClassifier,
  st: RunState,
  dataRoot: string,
): Promise<void> {
  const sets = heldOutSets(o.n);
  const domains: { target: ScoredDomain; source: ScoredDomain } = {
    target: await scoreDomain(classifier, sets.target),
    source: await scoreDomain(classifier, sets.source),
  };
  const modelOf = (c: ConditionSpec) => c.family === "bn" ? o.bnModel : o.model;
  const settingsOf = new Map<ModelFamily, MeasureSettings>();
  for (const f of ["bn", "gn"] as const) {
    settingsOf.set(f, {
      steps: o.sampleSteps,
      cfg: FIXED.cfg,
      sampler: FIXED.sampler,
      strength: FIXED.strength,
      side: FIXED.side,
      scheduler: await readSchedulerOptions(f === "bn" ? o.bnModel : o.model),
    });
  }
  const trained = CONDITIONS.filter((c) => c.kind === "lora").length;
  const perSeed = CONDITIONS.filter((c) => c.kind !== "base").length + trained;
  const bases = CONDITIONS.length - CONDITIONS.filter((c) => c.kind !== "base").length;
  const progress = new Progress(bases + o.seeds.length * perSeed);
  const measure = async (c: ConditionSpec, loaded: LoadedModels) => {
    const s = settingsOf.get(c.family)!;
    return {
      target: await measureDomain(loaded.models, classifier, domains.target, s),
      source: await measureDomain(loaded.models, classifier, domains.source, s),
    };
  };
  for (const [si, seed] of o.seeds.entries()) {
    const where = `seed ${seed} (${si + 1}/${o.seeds.length})`;
    const dataDir = await writeTargetTrainingFolder(join(dataRoot, `seed${seed}`), seed, o.images);
    for (const c of CONDITIONS) {
      const t0 = performance.now();
      let m = c.kind === "base" ? st.bases.get(c.family) : undefined;
      let steps = NaN;
      if (c.kind === "base" && !m) {
        progress.line(`${where} · ${c.name}: measuring`);
        using loaded = await loadForMeasure(modelOf(c));
        m = await measure(c, loaded);
        st.bases.set(c.family, m);
        progress.partDone();
      } else if (c.kind === "adabn") {
        progress.line(`${where} · ${c.name}: estimating and measuring`);
        const { images, cases } = targetTrainingSet(seed, o.images);
        using loaded = await loadForMeasure(modelOf(c));
        using _adabn = estimateAdabnOnly(loaded.models, images, cases.map((x) => x.prompt), {
          side: FIXED.side,
          seed,
          batchSize: FIXED.batchSize,
        });
        m = await measure(c, loaded);
        progress.partDone();
      } else if (c.kind === "lora") {
        progress.line(`${where} · ${c.name}: training ${o.steps} steps`);
        const every = Math.max(1, Math.round(o.steps / 10));
        const t = await trainCondition(c, {
          model: modelOf(c),
          dataDir,
          outputDir: join(o.outputDir, "loras", `seed${seed}`),
          steps: o.steps,
          rank: o.rank,
          learningRate: o.lr,
          batchSize: FIXED.batchSize,
          seed,
          side: FIXED.side,
          evalEvery: o.evalEvery,
        }, (line, info) => {
          if (info.step % every === 0) console.error(escapeControls(`  ${c.name}: ${line}`));
        });
        progress.partDone();
        progress.line(`${where} · ${c.name}: measuring, held-out curve`);
        {
          using loaded = await loadForMeasure(modelOf(c), t.file);
          m = await measure(c, loaded);
        }
        // the final file's held-out target loss is the measure's; the checkpoints before it
        const losses = [
          ...await heldOutCurve(
            modelOf(c),
            t.checkpoints.slice(0, -1).map((x) => x.file),
            domains.target.images,
            domains.target.cases.map((x) => x.prompt),
            FIXED.side,
          ),
          m.target.loss,
        ];
        progress.partDone();
        const threshold = (1 - o.thresholdDrop / 100) * st.bases.get(c.family)!.target.loss;
        const at = t.checkpoints.map((x) => x.step);
        const reach = stepsToThreshold(at, losses, threshold, o.steps);
        steps = reach.steps;
        (st.training[c.key] ??= []).push({
          seed,
          file: t.file,
          threshold,
          steps: reach.steps,
          reached: reach.reached,
          seconds: (performance.now() - t0) / 1000,
          heldOut: at.map((step, i) => ({ step, loss: losses[i]! })),
          smoothedLoss: t.curve,
        });
      }
      record(st, c, m!, steps);
      (st.seconds[c.key] ??= []).push((performance.now() - t0) / 1000);
    }
  }
}
