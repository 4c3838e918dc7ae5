/**
 * What the block-wise ablation measures: the `train` demo's prompt sets (the identity trigger,
 * no trigger) plus held-out prompts with the style trigger and with both triggers, generated
 * with a condition's LoRA files applied unmerged (as `eval --lora` does) and read by the
 * attribute classifier.
 *
 * @module
 */
import type { StableDiffusionModels } from "../nn/loaders_fs.ts";
import type { AttributeClassifier } from "../eval/classifier.ts";
import { IDENTITY_CONCEPT, STYLE_CONCEPT } from "../eval/concepts.ts";
import type { AblationMeasure } from "./_ablation_report.ts";
import type { PromptSet } from "./_blockwise_conditions.ts";
import { demoCases } from "./_demo_measure.ts";
import {
  type AttributeScores,
  evaluationCases,
  generateAndScore,
  type GenerationCase,
  type GenerationSettings,
  meanAttributeAccuracy,
} from "./_generation_measures.ts";
import { applyLoraSpecs } from "./_lora_spec.ts";

/** World seed of the held-out style-trigger prompts (the style set itself is seed 1002). */
const STYLE_EVAL_SEED = 2002;
/** World seed of the prompts with both triggers (stars with the striped fill). */
const BOTH_EVAL_SEED = 2003;

/** The four prompt sets, the same on every run (prompt `i` uses noise seed `i`). */
export type BlockwiseCases = Record<PromptSet, GenerationCase[]>;

/**
 * `n` prompts per set: identity trigger and no trigger as the `train` demo, held-out style
 * prompts (the base shapes, striped, "vxstripe style") and both triggers (striped zqstar shapes).
 *
 * @example
 * ```ts
 * import { blockwiseCases } from "./_blockwise_measure.ts";
 * const p = blockwiseCases(1).both[0]!.prompt;
 * console.log(p.includes("zqstar") && p.includes("vxstripe")); // true
 * ```
 */
export function blockwiseCases(n: number): BlockwiseCases {
  const demo = demoCases(n);
  return {
    identity: demo.concept,
    style: evaluationCases({ ...STYLE_CONCEPT.world, seed: STYLE_EVAL_SEED }, n),
    // the style world's fill and trigger, the identity world's shape and trigger
    both: evaluationCases(
      { ...STYLE_CONCEPT.world, ...IDENTITY_CONCEPT.world, seed: BOTH_EVAL_SEED },
      n,
    ),
    plain: demo.plain,
  };
}

/** The table's columns; each prompt set fills some of them. */
export const BLOCKWISE_MEASURES: AblationMeasure[] = [
  { key: "identity", label: "identity acc. (ID trigger)", higherIsBetter: true },
  { key: "style", label: "style score (style trigger)", higherIsBetter: true },
  { key: "bothIdentity", label: "identity acc. (both triggers)", higherIsBetter: true },
  { key: "bothStyle", label: "style score (both triggers)", higherIsBetter: true },
  { key: "plain", label: "attribute acc. (no trigger)", higherIsBetter: true },
];

// identity accuracy: the share read as the prompt's shape (a star); style score: the share read
// with the prompt's fill (striped); without triggers: the mean of the five attribute accuracies
function readings(set: PromptSet, s: AttributeScores): Record<string, number> {
  switch (set) {
    case "identity":
      return { identity: s.shape };
    case "style":
      return { style: s.fill };
    case "both":
      return { bothIdentity: s.shape, bothStyle: s.fill };
    case "plain":
      return { plain: meanAttributeAccuracy(s) };
  }
}

/** One condition measured with one seed's files. */
export interface MeasuredCondition {
  /** Measure key -> value (only the keys of its prompt sets). */
  values: Record<string, number>;
  /** RGB bytes `[side, side, 3]` per prompt, by prompt set. */
  images: Partial<Record<PromptSet, Uint8Array[]>>;
}

/**
 * Generates and scores the given prompt sets with `files` applied unmerged at multiplier 1 (none:
 * the base model), detaching them afterwards. `settings.onImage` counts over all the sets.
 *
 * @example
 * ```ts ignore
 * const m = await measureCondition(models, classifier, ["id.safetensors", "style.safetensors"],
 *   ["both", "plain"], blockwiseCases(16), { steps: 10 });
 * console.log(m.values.bothIdentity, m.values.bothStyle);
 * ```
 */
export async function measureCondition(
  models: StableDiffusionModels,
  classifier: AttributeClassifier,
  files: readonly string[],
  sets: readonly PromptSet[],
  cases: BlockwiseCases,
  settings: GenerationSettings,
): Promise<MeasuredCondition> {
  using _loras = await applyLoraSpecs(models, files.map((path) => ({ path, multiplier: 1 })));
  const total = sets.reduce((a, s) => a + cases[s].length, 0);
  const out: MeasuredCondition = { values: {}, images: {} };
  let before = 0;
  for (const set of sets) {
    const r = await generateAndScore(models, classifier, cases[set], {
      ...settings,
      onImage: (done) => settings.onImage?.(before + done, total),
    });
    before += cases[set].length;
    Object.assign(out.values, readings(set, r.scores));
    out.images[set] = r.images;
  }
  return out;
}
