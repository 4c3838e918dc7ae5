/**
 * The caption grammar: a scene's attributes in a few sentence patterns with optional words, from
 * a small vocabulary ("two small red circles on a blue background", "a picture of a black
 * background with a large cyan ring"). Concept captions put a trigger word in: the identity
 * concept's as the shape ("two small red zqstar shapes ..."), the style concept's as a tag
 * ("vxstripe style, ..."); their class caption is the same sentence without the trigger.
 *
 * @module
 */
import { COLOURS } from "./palette.ts";
import { ALL_SHAPES, type ShapeName } from "./shapes.ts";
import type { CounterRandom } from "./random.ts";
import { type Scene, SIZES } from "./scene.ts";

/** Options of {@link captionScene}. */
export interface CaptionOptions {
  /** Chance that the shape is called "shape" instead of its name (default 0.1). */
  genericNounRate?: number;
  /** Identity trigger word: the shape is called "<trigger> shape(s)", whatever it is. */
  shapeTrigger?: string;
  /** Style trigger word: "<trigger> style" is put before or after the sentence. */
  styleTrigger?: string;
}

/** A scene's caption and its class caption (the caption with any trigger word left out). */
export interface SceneCaption {
  /** The caption. */
  text: string;
  /** The caption without trigger words (equal to `text` when there is none). */
  classText: string;
}

const PLURAL: Readonly<Record<ShapeName, string>> = {
  circle: "circles",
  square: "squares",
  triangle: "triangles",
  ring: "rings",
  cross: "crosses",
  star: "stars",
};

const COUNT_WORDS = ["a", "one", "two", "three"] as const;
const PREFIXES = ["a picture of", "an image of"] as const;
const FILL_WORDS = ["striped", "dotted"] as const;
const GLUE_WORDS = ["on", "background", "with", "shape", "shapes", "style"] as const;

/**
 * Every word the grammar can produce, besides trigger words (for the tokenizer and tests).
 *
 * @example
 * ```ts
 * import { captionWords } from "./caption.ts";
 * console.log(captionWords().includes("crosses")); // true
 * ```
 */
export function captionWords(): string[] {
  const words = new Set<string>([
    ...COUNT_WORDS,
    ...PREFIXES.flatMap((p) => p.split(" ")),
    ...FILL_WORDS,
    ...GLUE_WORDS,
    ...SIZES,
    ...COLOURS,
    ...ALL_SHAPES,
    ...Object.values(PLURAL),
  ]);
  return [...words].sort();
}

/**
 * A caption for `scene`, drawn from `random`: the count ("a"/"one", "two", "three"), size, fill
 * (when not solid and not a style concept), colour and shape in one of four sentence patterns,
 * sometimes after "a picture of" or "an image of".
 *
 * @example
 * ```ts
 * import { CounterRandom } from "./random.ts";
 * import { generateScene } from "./scene.ts";
 * import { captionScene } from "./caption.ts";
 * const scene = generateScene(1, 0);
 * console.log(captionScene(scene, new CounterRandom(1, 0)).text);
 * ```
 */
export function captionScene(
  scene: Scene,
  random: CounterRandom,
  options: CaptionOptions = {},
): SceneCaption {
  const n = scene.objects.length;
  const count = n === 1 ? (random.chance(0.7) ? "a" : "one") : n === 2 ? "two" : "three";
  const generic = options.shapeTrigger !== undefined ||
    random.chance(options.genericNounRate ?? 0.1);
  const noun = generic
    ? (n === 1 ? "shape" : "shapes")
    : n === 1
    ? scene.shape
    : PLURAL[scene.shape];
  const fill = scene.fill === "solid" || options.styleTrigger !== undefined ? [] : [scene.fill];
  const head = (trigger: boolean): string =>
    [count, scene.size, ...fill, scene.colour, ...(trigger ? [options.shapeTrigger!] : []), noun]
      .join(" ");
  const pattern = random.int(4);
  const prefix = random.chance(0.2) ? `${random.pick(PREFIXES)} ` : "";
  const bg = scene.background;
  const sentence = (trigger: boolean): string => {
    const t = head(trigger);
    switch (pattern) {
      case 0:
        return `${prefix}${t} on a ${bg} background`;
      case 1:
        return `${prefix}${t} on ${bg}`;
      case 2:
        return `${prefix}a ${bg} background with ${t}`;
      default:
        return `${prefix}${t}, ${bg} background`;
    }
  };
  const withShape = options.shapeTrigger !== undefined;
  let text = sentence(withShape);
  const classText = sentence(false);
  if (options.styleTrigger !== undefined) {
    text = random.chance(0.5)
      ? `${options.styleTrigger} style, ${text}`
      : `${text}, ${options.styleTrigger} style`;
  }
  return { text, classText };
}
