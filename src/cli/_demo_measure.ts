/**
 * What the `train` demo measures: held-out prompts with the trigger word (does the concept show
 * up?) and prompts without it (does the LoRA leave the rest of the model alone?), generated with
 * the base model and with the LoRA from the same seeds, and scored by the attribute classifier.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { Generator, randn } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import type { StableDiffusionModels } from "../nn/loaders_fs.ts";
import type { LoraNetwork } from "../lora/network.ts";
import { createSchedule } from "../schedule/schedules.ts";
import type { AttributeClassifier } from "../eval/classifier.ts";
import { IDENTITY_CONCEPT } from "../eval/concepts.ts";
import { renderScene, rgbToChw } from "../eval/render.ts";
import { reconstructImages } from "./_eval_vae.ts";
import {
  type AttributeScores,
  evaluationCases,
  generateAndScore,
  type GenerationCase,
  type GenerationSettings,
  scoreImages,
} from "./_generation_measures.ts";

/** World seed of the held-out trigger prompts (the concept set itself is seed 1001). */
const CONCEPT_EVAL_SEED = 2001;
/** World seed of the prompts without the trigger. */
const PLAIN_EVAL_SEED = 9001;

/** The demo's two prompt sets: with the trigger word and without it. */
export interface DemoCases {
  /** Held-out star scenes captioned with the trigger ("two large white zqstar shapes on blue"). */
  concept: GenerationCase[];
  /** Scenes of the pretraining world, captioned without the trigger. */
  plain: GenerationCase[];
}

/**
 * `n` prompts of each set, the same on every run (prompt `i` uses noise seed `i`).
 *
 * @example
 * ```ts
 * import { demoCases } from "./_demo_measure.ts";
 * console.log(demoCases(2).concept[0]!.prompt.includes("zqstar")); // true
 * ```
 */
export function demoCases(n: number): DemoCases {
  return {
    concept: evaluationCases({ ...IDENTITY_CONCEPT.world, seed: CONCEPT_EVAL_SEED }, n),
    plain: evaluationCases({ seed: PLAIN_EVAL_SEED }, n),
  };
}

/** One prompt set generated and scored with one model. */
export interface ScoredSet {
  /** RGB bytes `[side, side, 3]` per prompt. */
  images: Uint8Array[];
  /** Shares matching the prompts' scenes. */
  scores: AttributeScores;
}

/** Both prompt sets, base model and LoRA. */
export interface DemoMeasures {
  /** With the trigger, base model. */
  conceptBase: ScoredSet;
  /** With the trigger, with the LoRA. */
  conceptLora: ScoredSet;
  /** Without the trigger, base model. */
  plainBase: ScoredSet;
  /** Without the trigger, with the LoRA. */
  plainLora: ScoredSet;
  /** Held-out denoising loss of the trigger set's scenes, base model. */
  lossBase: number;
  /** The same with the LoRA. */
  lossLora: number;
}

/**
 * Generates and scores both sets with the LoRA detached (the base model) and attached, and takes
 * the held-out denoising loss of the trigger set's scenes with each. The trigger set's shape
 * score is the share of images the classifier calls a star. `onImage` counts images over all
 * four sets.
 *
 * @example
 * ```ts ignore
 * const m = await measureDemo(r.models, r.network, classifier, demoCases(16), { steps: 12 });
 * console.log(m.conceptBase.scores.shape, m.conceptLora.scores.shape);
 * ```
 */
export async function measureDemo(
  models: StableDiffusionModels,
  network: LoraNetwork,
  classifier: AttributeClassifier,
  cases: DemoCases,
  settings: GenerationSettings,
): Promise<DemoMeasures> {
  // settings.onImage counts over all four sets
  const total = 2 * (cases.concept.length + cases.plain.length);
  let before = 0;
  const run = async (set: GenerationCase[]): Promise<ScoredSet> => {
    const r = await generateAndScore(models, classifier, set, {
      ...settings,
      onImage: (done) => settings.onImage?.(before + done, total),
    });
    before += set.length;
    return { images: r.images, scores: r.scores };
  };
  const side = settings.side ?? 32;
  network.train(false);
  network.detach();
  const lossBase = await heldOutLoss(models, cases.concept, side);
  const conceptBase = await run(cases.concept);
  const plainBase = await run(cases.plain);
  network.attach();
  const lossLora = await heldOutLoss(models, cases.concept, side);
  const conceptLora = await run(cases.concept);
  const plainLora = await run(cases.plain);
  return { conceptBase, conceptLora, plainBase, plainLora, lossBase, lossLora };
}

// cases' scenes -> [n, 3, side, side] in [-1, 1]
function scenePixels(cases: readonly GenerationCase[], side: number): Tensor {
  const hw = side * side, px = new Float32Array(cases.length * 3 * hw);
  cases.forEach((c, b) => px.set(rgbToChw(renderScene(c.scene), side, side), b * 3 * hw));
  return tensor(px, [cases.length, 3, side, side]);
}

/** Timesteps of the held-out loss (spread over the training range). */
const HELD_OUT_TIMESTEPS = [100, 300, 500, 700, 900];

// scenes -> z0 [n, C, h, w] (VAE mean, scaled); per timestep t: x_t = sqrt(ab) z0 +
// sqrt(1 - ab) eps, loss = mean (unet(x_t, t, prompt) - eps)^2; mean over the timesteps
/**
 * The denoising loss (epsilon MSE, what training minimizes) on the cases' scenes with their
 * prompts, at fixed timesteps with fixed noise: the same numbers for the same weights, so base
 * and LoRA compare directly. The scenes are held out from training (another world seed).
 *
 * @example
 * ```ts ignore
 * console.log(await heldOutLoss(models, demoCases(16).concept, 32));
 * ```
 */
export async function heldOutLoss(
  models: StableDiffusionModels,
  cases: readonly GenerationCase[],
  side: number,
): Promise<number> {
  const n = cases.length, T = models.textEncoder.config.maxPositions;
  const alphasCumprod = createSchedule().alphasCumprod;
  const ids = cases.flatMap((c) => models.tokenizer!.encode(c.prompt, { maxLength: T }).ids);
  using z0 = scope(() =>
    noGrad(() => scale(models.vae.encode(scenePixels(cases, side)).mean, models.vae.scalingFactor))
  );
  using context = scope(() => noGrad(() => models.textEncoder.forward(ids, [n, T])));
  const z = await z0.toArray(), generator = new Generator(0);
  let total = 0;
  for (const t of HELD_OUT_TIMESTEPS) {
    using noise = randn(z0.shape, { generator });
    const eps = await noise.toArray(), ab = alphasCumprod[t]!;
    const xt = z.map((v, i) => Math.sqrt(ab) * v + Math.sqrt(1 - ab) * eps[i]!);
    using pred = scope(() => noGrad(() => models.unet.forward(tensor(xt, z0.shape), t, context)));
    const p = await pred.toArray();
    let se = 0;
    for (let i = 0; i < p.length; i++) se += (p[i]! - eps[i]!) ** 2;
    total += se / p.length;
  }
  return total / HELD_OUT_TIMESTEPS.length;
}

// scenes rendered -> VAE mean latents -> decoded -> RGB bytes
/**
 * The share of the cases' own scenes, rendered exactly and passed through the VAE (encode to
 * the latent mean, decode), whose shape the classifier reads correctly: the most a LoRA on the
 * U-Net and text encoder can reach, since every generated image comes out of this decoder.
 *
 * @example
 * ```ts ignore
 * console.log(await vaeCeiling(models, classifier, demoCases(16).concept, 32));
 * ```
 */
export async function vaeCeiling(
  models: StableDiffusionModels,
  classifier: AttributeClassifier,
  cases: readonly GenerationCase[],
  side: number,
): Promise<number> {
  const recs = await reconstructImages(
    models.vae,
    cases.map((c) => renderScene(c.scene)),
    side,
  );
  return (await scoreImages(classifier, recs, cases.map((c) => c.scene), side)).scores.shape;
}
