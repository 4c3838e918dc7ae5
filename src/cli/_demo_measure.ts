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
  type ATTRIBUTES,
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

// images: n RGB byte arrays [side, side, 3] -> z0 [n, C, side/f, side/f]
/**
 * The latents of images as training sees them: each encoded to the mean of the VAE encoder's
 * distribution, times the scaling factor. The caller disposes the result.
 *
 * @example
 * ```ts ignore
 * using z0 = imageLatents(models, items.map((i) => i.rgb), 32);
 * ```
 */
export function imageLatents(
  models: StableDiffusionModels,
  images: readonly Uint8Array[],
  side: number,
): Tensor {
  const hw = side * side, px = new Float32Array(images.length * 3 * hw);
  images.forEach((rgb, b) => px.set(rgbToChw(rgb, side, side), b * 3 * hw));
  return scope(() =>
    noGrad(() =>
      scale(
        models.vae.encode(tensor(px, [images.length, 3, side, side])).mean,
        models.vae.scalingFactor,
      )
    )
  );
}

// prompts -> [n, T, D]
/**
 * The text encoder's context of each prompt (the tokenizer's ids, padded to the encoder's
 * positions). The caller disposes the result.
 *
 * @example
 * ```ts ignore
 * using context = promptContext(models, ["two red circles on blue"]);
 * ```
 */
export function promptContext(models: StableDiffusionModels, prompts: readonly string[]): Tensor {
  const n = prompts.length, T = models.textEncoder.config.maxPositions;
  const ids = prompts.flatMap((p) => models.tokenizer!.encode(p, { maxLength: T }).ids);
  return scope(() => noGrad(() => models.textEncoder.forward(ids, [n, T])));
}

/** Timesteps of the held-out loss (spread over the training range). */
export const HELD_OUT_TIMESTEPS: readonly number[] = [100, 300, 500, 700, 900];

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
  return await heldOutImageLoss(
    models,
    cases.map((c) => renderScene(c.scene)),
    cases.map((c) => c.prompt),
    side,
  );
}

// images -> z0 [n, C, h, w] (VAE mean, scaled); per timestep t: x_t = sqrt(ab) z0 +
// sqrt(1 - ab) eps, loss = mean (unet(x_t, t, prompt) - eps)^2; mean over the timesteps
/**
 * {@link heldOutLoss} of any images with their prompts (e.g. images the world's renderer does
 * not make, such as a shifted palette): fixed timesteps {@link HELD_OUT_TIMESTEPS}, noise from
 * generator seed 0.
 *
 * @example
 * ```ts ignore
 * const items = new ProceduralWorld({ seed: 9 }).items(0, 16);
 * console.log(await heldOutImageLoss(models, items.map((i) => i.rgb), items.map((i) => i.caption), 32));
 * ```
 */
export async function heldOutImageLoss(
  models: StableDiffusionModels,
  images: readonly Uint8Array[],
  prompts: readonly string[],
  side: number,
): Promise<number> {
  const alphasCumprod = createSchedule().alphasCumprod;
  using z0 = imageLatents(models, images, side);
  using context = promptContext(models, prompts);
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
 * the latent mean, decode), whose `attribute` (default the shape) the classifier reads
 * correctly: the most a LoRA on the U-Net and text encoder can reach, since every generated
 * image comes out of this decoder.
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
  attribute: (typeof ATTRIBUTES)[number] = "shape",
): Promise<number> {
  const recs = await reconstructImages(
    models.vae,
    cases.map((c) => renderScene(c.scene)),
    side,
  );
  return (await scoreImages(classifier, recs, cases.map((c) => c.scene), side)).scores[attribute];
}
