/**
 * Measures of generated images against the scenes their prompts describe (issue 11): object
 * and background colour from pixel statistics; shape, count and fill from the attribute
 * classifier; and the classifier's features, for the Fréchet stand-in. `mod.ts eval` and the
 * `mod.ts train` demo both score images with these.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { scope } from "../ops/scope.ts";
import type { StableDiffusionModels } from "../nn/loaders_fs.ts";
import type { SamplerOptions } from "../schedule/sampler.ts";
import { type AttributeClassifier, CLASSIFIER_CLASSES } from "../eval/classifier.ts";
import { measureColours } from "../eval/colour_measure.ts";
import { coverageMap } from "../eval/coverage.ts";
import type { ColourName } from "../eval/palette.ts";
import type { Count, Scene } from "../eval/scene.ts";
import type { FillName, ShapeName } from "../eval/shapes.ts";
import { ProceduralWorld, type WorldOptions } from "../eval/world.ts";
import { textToImages } from "./text_to_image.ts";

/** One prompt to generate from, the scene it describes and the noise seed. */
export interface GenerationCase {
  /** The prompt. */
  prompt: string;
  /** The attributes the prompt asks for. */
  scene: Scene;
  /** The noise seed. */
  seed: number;
}

/** What the measures read off one image. */
export interface ImageReading {
  /** The dominant non-background palette colour (null when no pixel votes). */
  colour: ColourName | null;
  /** The background's palette colour. */
  background: ColourName;
  /** The classifier's shape. */
  shape: ShapeName;
  /** The classifier's object count. */
  count: Count;
  /** The classifier's fill style. */
  fill: FillName;
}

/** Shares of images whose reading matches the prompt's scene, in [0, 1]. */
export interface AttributeScores {
  /** Images scored. */
  n: number;
  /** Object colour. */
  colour: number;
  /** Background colour. */
  background: number;
  /** Shape. */
  shape: number;
  /** Count. */
  count: number;
  /** Fill style. */
  fill: number;
}

/** The five attributes an `AttributeScores` scores, in table order. */
export const ATTRIBUTES: readonly (keyof Omit<AttributeScores, "n">)[] = [
  "colour",
  "background",
  "shape",
  "count",
  "fill",
];

/** The mean of the five attribute accuracies. */
export function meanAttributeAccuracy(s: AttributeScores): number {
  return ATTRIBUTES.reduce((a, k) => a + s[k], 0) / ATTRIBUTES.length;
}

/** Readings, scores and classifier features of a set of images. */
export interface ScoredImages {
  /** One reading per image. */
  readings: ImageReading[];
  /** Shares matching the scenes. */
  scores: AttributeScores;
  /** The classifier's penultimate features, `[n, featureDim]` row-major. */
  features: Float32Array;
  /** Width of a feature vector. */
  featureDim: number;
}

function argmax(v: Float32Array, row: number, k: number): number {
  let best = 0;
  for (let c = 1; c < k; c++) if (v[row * k + c]! > v[row * k + best]!) best = c;
  return best;
}

// images: n RGB byte arrays [side, side, 3]
/**
 * Reads colours and classifier attributes off square RGB images and scores them against the
 * scenes they should show.
 *
 * @example
 * ```ts ignore
 * const net = await loadClassifier("models/attribute_classifier.safetensors");
 * const items = new ProceduralWorld({ seed: 3 }).items(0, 8);
 * const r = await scoreImages(net, items.map((i) => i.rgb), items.map((i) => i.scene), 32);
 * console.log(r.scores.shape);
 * ```
 */
export async function scoreImages(
  classifier: AttributeClassifier,
  images: readonly Uint8Array[],
  scenes: readonly Scene[],
  side: number,
  batchSize = 64,
): Promise<ScoredImages> {
  if (images.length !== scenes.length) {
    throw new RangeError(`${images.length} images but ${scenes.length} scenes; pass one each`);
  }
  const n = images.length, hw = side * side;
  const readings: ImageReading[] = [];
  let featureDim = 0;
  const chunks: Float32Array[] = [];
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const maps = new Float32Array(b * hw);
    for (let i = 0; i < b; i++) maps.set(coverageMap(images[start + i]!, side, side), i * hw);
    const out = scope(() => noGrad(() => classifier.forward(tensor(maps, [b, 1, side, side]))));
    try {
      const [shape, count, fill, feats] = await Promise.all([
        out.shape.toArray(),
        out.count.toArray(),
        out.fill.toArray(),
        out.features.toArray(),
      ]);
      featureDim = out.features.shape[1]!;
      chunks.push(feats);
      for (let i = 0; i < b; i++) {
        const c = measureColours(images[start + i]!, side, side);
        readings.push({
          colour: c.object,
          background: c.background,
          shape: CLASSIFIER_CLASSES.shape[argmax(shape, i, CLASSIFIER_CLASSES.shape.length)]!,
          count: CLASSIFIER_CLASSES.count[argmax(count, i, CLASSIFIER_CLASSES.count.length)]!,
          fill: CLASSIFIER_CLASSES.fill[argmax(fill, i, CLASSIFIER_CLASSES.fill.length)]!,
        });
      }
    } finally {
      for (const t of Object.values(out)) t.dispose();
    }
  }
  const share = (f: (r: ImageReading, s: Scene) => boolean) =>
    n === 0 ? 0 : readings.filter((r, i) => f(r, scenes[i]!)).length / n;
  const features = new Float32Array(n * featureDim);
  let o = 0;
  for (const c of chunks) {
    features.set(c, o);
    o += c.length;
  }
  return {
    readings,
    scores: {
      n,
      colour: share((r, s) => r.colour === s.colour),
      background: share((r, s) => r.background === s.background),
      shape: share((r, s) => r.shape === s.shape),
      count: share((r, s) => r.count === s.objects.length),
      fill: share((r, s) => r.fill === s.fill),
    },
    features,
    featureDim,
  };
}

/**
 * `count` cases from a procedural world: item `i`'s caption as the prompt, its scene as the
 * expected attributes, `i` as the noise seed.
 *
 * @example
 * ```ts
 * import { evaluationCases } from "./_generation_measures.ts";
 * console.log(evaluationCases({ seed: 7 }, 2)[1]!.seed); // 1
 * ```
 */
export function evaluationCases(world: WorldOptions, count: number, first = 0): GenerationCase[] {
  const w = new ProceduralWorld(world);
  return w.items(first, count).map((it, i) => ({ prompt: it.caption, scene: it.scene, seed: i }));
}

/** Sampling settings of {@link generateAndScore}. */
export interface GenerationSettings {
  /** Sampling steps (default 20). */
  steps?: number;
  /** Guidance scale (default 5). */
  cfg?: number;
  /** Sampler (default euler_a). */
  sampler?: string;
  /** Image side (default 32). */
  side?: number;
  /** The model's noise schedule and prediction type (default SD 1.x: epsilon). */
  scheduler?: SamplerOptions;
  /** Images sampled together in one batch (default 16; the images do not depend on it). */
  batch?: number;
  /** Called after each batch of images. */
  onImage?: (done: number, total: number) => void;
}

/**
 * Generates one image per case (in batches; every image as if made alone) and scores them.
 *
 * @example
 * ```ts ignore
 * const models = await loadDiffusersFolder("models/mini_sd");
 * const r = await generateAndScore(models, net, evaluationCases({ seed: 99 }, 16));
 * console.log(r.scores.colour);
 * ```
 */
export async function generateAndScore(
  models: StableDiffusionModels,
  classifier: AttributeClassifier,
  cases: readonly GenerationCase[],
  settings: GenerationSettings = {},
): Promise<ScoredImages & { images: Uint8Array[] }> {
  const side = settings.side ?? 32, batch = settings.batch ?? 16;
  const images: Uint8Array[] = [];
  for (let i = 0; i < cases.length; i += batch) {
    const rows = cases.slice(i, i + batch);
    const made = await textToImages(models, rows, {
      steps: settings.steps ?? 20,
      cfg: settings.cfg ?? 5,
      sampler: settings.sampler ?? "euler_a",
      width: side,
      height: side,
      ...(settings.scheduler ? { scheduler: settings.scheduler } : {}),
    });
    images.push(...made.map((m) => m.rgb));
    settings.onImage?.(images.length, cases.length);
  }
  const scored = await scoreImages(classifier, images, cases.map((c) => c.scene), side);
  return { ...scored, images };
}
