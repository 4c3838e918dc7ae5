/**
 * What the AdaBN ablation measures on one domain with one model: the held-out denoising loss at
 * fixed timesteps, PSNR and SSIM of img2img reconstructions, and the classifier Fréchet distance
 * of generations against the real images.
 *
 * @module
 */
import type { StableDiffusionModels } from "../nn/loaders_fs.ts";
import type { SamplerOptions } from "../schedule/sampler.ts";
import type { AttributeClassifier } from "../eval/classifier.ts";
import { featureStats, frechetDistance } from "../eval/frechet.ts";
import { heldOutImageLoss } from "./_demo_measure.ts";
import { reconstructionScores } from "./_eval_vae.ts";
import { generateAndScore, scoreImages } from "./_generation_measures.ts";
import { textToImages } from "./text_to_image.ts";
import type { DomainSet } from "./_adabn_ablation_domain.ts";

/** A domain's held-out set with the classifier's features of its real images. */
export interface ScoredDomain extends DomainSet {
  /** Classifier features of the real images, `[n, featureDim]` row-major. */
  realFeatures: Float32Array;
  /** Width of a feature vector. */
  featureDim: number;
}

/** The four measures of one domain. */
export interface DomainMeasures {
  /** Held-out denoising loss (epsilon MSE), mean over the fixed timesteps. */
  loss: number;
  /** Mean PSNR (dB) of img2img reconstructions against the originals. */
  psnr: number;
  /** Mean SSIM of the same reconstructions. */
  ssim: number;
  /** Classifier Fréchet distance of generations (the held-out prompts) against the real images. */
  fd: number;
}

/** Sampling settings of the reconstructions and generations. */
export interface MeasureSettings {
  /** Sampling steps (img2img runs the last `strength` of them). */
  steps: number;
  /** Guidance scale. */
  cfg: number;
  /** Sampler name. */
  sampler: string;
  /** img2img strength: the share of the schedule the image is noised to, then denoised. */
  strength: number;
  /** Image side (the classifier's). */
  side: number;
  /** The model's noise schedule and prediction type. */
  scheduler: SamplerOptions;
  /** Called after each reconstructed or generated image. */
  onImage?: () => void;
}

/**
 * The classifier's features of a domain's real images (computed once, shared by every model).
 *
 * @example
 * ```ts ignore
 * const target = await scoreDomain(classifier, heldOutSets(16).target);
 * ```
 */
export async function scoreDomain(
  classifier: AttributeClassifier,
  set: DomainSet,
): Promise<ScoredDomain> {
  const r = await scoreImages(
    classifier,
    set.images,
    set.cases.map((c) => c.scene),
    classifier.imageSize,
  );
  return { ...set, realFeatures: r.features, featureDim: r.featureDim };
}

// images [side, side, 3] -> latents -> noised to `strength` -> denoised -> decoded [side, side, 3]
/** img2img reconstructions sampled together (the images do not depend on it). */
const RECONSTRUCTION_BATCH = 16;

/**
 * img2img reconstructions: each held-out image encoded, noised to `strength` of the schedule,
 * denoised with its own caption as the prompt (noise seed i) and decoded.
 */
async function reconstructions(
  models: StableDiffusionModels,
  set: DomainSet,
  s: MeasureSettings,
): Promise<Uint8Array[]> {
  const side = s.side, out: Uint8Array[] = [];
  const rows = set.cases.map((c, i) => ({
    prompt: c.prompt,
    seed: c.seed,
    initImage: { width: side, height: side, rgb: set.images[i]! },
  }));
  for (let i = 0; i < rows.length; i += RECONSTRUCTION_BATCH) {
    const made = await textToImages(models, rows.slice(i, i + RECONSTRUCTION_BATCH), {
      strength: s.strength,
      steps: s.steps,
      cfg: s.cfg,
      sampler: s.sampler,
      width: side,
      height: side,
      scheduler: s.scheduler,
    });
    for (const img of made) {
      out.push(img.rgb);
      s.onImage?.();
    }
  }
  return out;
}

/**
 * Every measure of one domain with the models as they are (adapters and statistics attached by
 * the caller, U-Net in eval mode).
 *
 * @example
 * ```ts ignore
 * const m = await measureDomain(models, classifier, target, {
 *   steps: 10, cfg: 5, sampler: "dpmpp_2m", strength: 0.5, side: 32, scheduler: {},
 * });
 * console.log(m.loss, m.psnr, m.ssim, m.fd);
 * ```
 */
export async function measureDomain(
  models: StableDiffusionModels,
  classifier: AttributeClassifier,
  set: ScoredDomain,
  s: MeasureSettings,
): Promise<DomainMeasures> {
  const n = set.images.length, d = set.featureDim;
  const loss = await heldOutImageLoss(models, set.images, set.cases.map((c) => c.prompt), s.side);
  const recs = await reconstructions(models, set, s);
  const { psnr, ssim } = reconstructionScores(set.images, recs, s.side);
  const generated = await generateAndScore(models, classifier, set.cases, {
    steps: s.steps,
    cfg: s.cfg,
    sampler: s.sampler,
    side: s.side,
    scheduler: s.scheduler,
    onImage: () => s.onImage?.(),
  });
  const fd = frechetDistance(
    featureStats(generated.features, n, d),
    featureStats(set.realFeatures, n, d),
  );
  return { loss, psnr, ssim, fd };
}
