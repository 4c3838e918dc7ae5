/**
 * The two concept sets that pretraining never shows, for LoRA fine-tuning: an identity (a new
 * shape, the five-pointed star, called by a trigger word) and a style (a striped fill on the
 * known shapes, tagged by a trigger word). Each is 20 seeded items of the procedural world,
 * shipped as a kohya-style folder `datasets/<name>/<repeats>_<trigger>/NNN.png` with `NNN.txt`
 * captions (see `write_concepts_fs.ts`). The folder name leaves out the class word that kohya
 * also allows after the trigger, because JSR package paths may not contain spaces.
 *
 * @module
 */
import { BASE_SHAPES } from "./shapes.ts";
import { ProceduralWorld, type WorldItem, type WorldOptions } from "./world.ts";

/** A concept set: its trigger word, class word, folder layout and the world it draws from. */
export interface ConceptSet {
  /** Folder name under `datasets/`. */
  name: string;
  /** What the trigger word names: a new shape or a fill style. */
  kind: "identity" | "style";
  /** The trigger word (a rare made-up word, not in the pretraining captions). */
  trigger: string;
  /** The class word of class (regularization) prompts. */
  classWord: string;
  /** kohya repeats per epoch (the folder name's number). */
  repeats: number;
  /** Number of images. */
  count: number;
  /** The world the images and captions come from (seed, shapes, fills, trigger). */
  world: WorldOptions;
}

/** The identity concept: five-pointed stars of any colour, size and count, "zqstar shape". */
export const IDENTITY_CONCEPT: ConceptSet = {
  name: "zqstar",
  kind: "identity",
  trigger: "zqstar",
  classWord: "shape",
  repeats: 10,
  count: 20,
  world: { seed: 1001, shapes: ["star"], shapeTrigger: "zqstar" },
};

/** The style concept: the base shapes with a diagonal striped fill, tagged "vxstripe style". */
export const STYLE_CONCEPT: ConceptSet = {
  name: "vxstripe",
  kind: "style",
  trigger: "vxstripe",
  classWord: "style",
  repeats: 10,
  count: 20,
  world: { seed: 1002, shapes: BASE_SHAPES, fills: ["striped"], styleTrigger: "vxstripe" },
};

/** Both shipped concept sets. */
export const CONCEPTS: readonly ConceptSet[] = [IDENTITY_CONCEPT, STYLE_CONCEPT];

/**
 * The kohya subfolder name of a concept: `<repeats>_<trigger>`.
 *
 * @example
 * ```ts
 * import { conceptFolder, IDENTITY_CONCEPT } from "./concepts.ts";
 * console.log(conceptFolder(IDENTITY_CONCEPT)); // "10_zqstar"
 * ```
 */
export function conceptFolder(concept: ConceptSet): string {
  return `${concept.repeats}_${concept.trigger}`;
}

/**
 * The concept's items (scene, caption, class caption, pixels), the same on every call.
 *
 * @example
 * ```ts
 * import { conceptItems, STYLE_CONCEPT } from "./concepts.ts";
 * console.log(conceptItems(STYLE_CONCEPT)[0]!.caption.includes("vxstripe")); // true
 * ```
 */
export function conceptItems(concept: ConceptSet): WorldItem[] {
  return new ProceduralWorld(concept.world).items(0, concept.count);
}

/**
 * The image file stem of item `i` in a concept folder: `001`, `002`, ...
 *
 * @example
 * ```ts
 * import { conceptFileStem } from "./concepts.ts";
 * console.log(conceptFileStem(0)); // "001"
 * ```
 */
export function conceptFileStem(i: number): string {
  return String(i + 1).padStart(3, "0");
}
