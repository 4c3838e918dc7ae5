/**
 * The AdaBN ablation's two domains. Target: the vxstripe style concept (striped fills, captions
 * with the trigger) on a faded palette; pretraining saw neither the fill nor the colours. Source:
 * the pretraining world as it is. Held-out sets of both, and the target's training images.
 *
 * @module
 */
import { STYLE_CONCEPT } from "../eval/concepts.ts";
import { ProceduralWorld, type WorldOptions } from "../eval/world.ts";
import { writeImageFolder } from "../eval/write_concepts_fs.ts";
import { evaluationCases, type GenerationCase } from "./_generation_measures.ts";

/** World seed of the target's training images: this plus the run's seed. */
const TARGET_TRAIN_SEED = 3000;
/** World seed of the held-out target images (no run seed reaches it: seeds stop below 999). */
const TARGET_HELD_OUT_SEED = 3999;
/** World seed of the held-out source images (`mod.ts eval`'s default; pretraining used 1). */
const SOURCE_HELD_OUT_SEED = 99;

/** The target domain, in words (for the help and the outputs). */
export const TARGET_DOMAIN: string = "the vxstripe style (diagonal striped fills, captions " +
  'with the trigger "vxstripe") on a faded palette (every RGB value v becomes 64 + floor(v / 2)); ' +
  "pretraining saw solid fills in the full palette only";

/** The source domain, in words. */
export const SOURCE_DOMAIN: string =
  "the pretraining world (solid fills, the full palette), held-out world seed 99";

/**
 * The target's palette shift: every channel value `v` becomes `64 + floor(v / 2)` (contrast
 * halved, lifted to the middle), so the palette's colours land where pretraining had none.
 *
 * @example
 * ```ts
 * import { fadePalette } from "./_adabn_ablation_domain.ts";
 * console.log(fadePalette(new Uint8Array([0, 255, 100]))); // Uint8Array [64, 191, 114]
 * ```
 */
export function fadePalette(rgb: Uint8Array): Uint8Array {
  return rgb.map((v) => 64 + (v >> 1));
}

/** Held-out images of one domain with the prompts and scenes they show (prompt i, seed i). */
export interface DomainSet {
  /** "target" or "source". */
  name: "target" | "source";
  /** RGB bytes `[side, side, 3]` per image. */
  images: Uint8Array[];
  /** The images' captions as prompts, their scenes, noise seed i. */
  cases: GenerationCase[];
}

function targetWorld(seed: number): WorldOptions {
  return { ...STYLE_CONCEPT.world, seed };
}

function domainSet(name: DomainSet["name"], world: WorldOptions, n: number): DomainSet {
  const items = new ProceduralWorld(world).items(0, n);
  return {
    name,
    images: items.map((it) => name === "target" ? fadePalette(it.rgb) : it.rgb),
    cases: evaluationCases(world, n),
  };
}

/**
 * The `n` held-out images of each domain, the same on every run.
 *
 * @example
 * ```ts
 * import { heldOutSets } from "./_adabn_ablation_domain.ts";
 * console.log(heldOutSets(2).target.cases[0]!.prompt.includes("vxstripe")); // true
 * ```
 */
export function heldOutSets(n: number): { target: DomainSet; source: DomainSet } {
  return {
    target: domainSet("target", targetWorld(TARGET_HELD_OUT_SEED), n),
    source: domainSet("source", { seed: SOURCE_HELD_OUT_SEED }, n),
  };
}

/**
 * The target's training images of a run seed (world seed 3000 + seed), with their captions.
 *
 * @example
 * ```ts
 * import { targetTrainingSet } from "./_adabn_ablation_domain.ts";
 * console.log(targetTrainingSet(1, 2).images.length); // 2
 * ```
 */
export function targetTrainingSet(
  seed: number,
  count: number,
): DomainSet {
  return domainSet("target", targetWorld(TARGET_TRAIN_SEED + seed), count);
}

/**
 * Writes a run seed's target training images as a kohya folder `<root>/target/1_vxstripe`
 * (PNG + `.txt` captions); returns `<root>/target`, the trainer's data folder.
 *
 * @example
 * ```ts ignore
 * const dir = await writeTargetTrainingFolder(await Deno.makeTempDir(), 1, 20);
 * ```
 */
export async function writeTargetTrainingFolder(
  root: string,
  seed: number,
  count: number,
): Promise<string> {
  const { images, cases } = targetTrainingSet(seed, count);
  return await writeImageFolder(
    root,
    "target",
    `1_${STYLE_CONCEPT.trigger}`,
    cases.map(({ scene, prompt }, i) => ({ ...scene, rgb: images[i]!, caption: prompt })),
  );
}
