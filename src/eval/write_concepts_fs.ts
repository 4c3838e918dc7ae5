/**
 * Writes the concept sets as kohya-style folders (Deno): `<root>/<name>/<repeats>_<trigger>/`
 * holding `NNN.png` and `NNN.txt`. Each set is written to a temporary sibling folder first and
 * then renamed into place, so an interrupted run leaves the previous folder intact.
 *
 * Run `deno run -A src/eval/write_concepts_fs.ts [root]` (root defaults to `datasets`).
 *
 * @module
 */
import {
  conceptFileStem,
  conceptFolder,
  conceptItems,
  CONCEPTS,
  type ConceptSet,
} from "./concepts.ts";
import { encodePng } from "./png.ts";

/**
 * Writes a kohya image folder `<root>/<name>/<subfolder>/` of `NNN.png` + `NNN.txt` pairs,
 * replacing any previous `<root>/<name>`: the files go to a hidden sibling first, which is then
 * renamed into place, so an interrupted run leaves the previous folder intact. `images` yields
 * each image's RGB bytes, side and caption (it may generate them one by one). Returns the folder.
 *
 * @example
 * ```ts
 * import { writeImageFolder } from "./write_concepts_fs.ts";
 * const root = await Deno.makeTempDir();
 * const dot = { rgb: new Uint8Array(3 * 4), width: 2, height: 2, caption: "black" };
 * console.log(await writeImageFolder(root, "blank", "1_blank", [dot])); // ".../blank"
 * ```
 */
export async function writeImageFolder(
  root: string,
  name: string,
  subfolder: string,
  images:
    | Iterable<CaptionedImage>
    | AsyncIterable<CaptionedImage>,
): Promise<string> {
  const target = `${root}/${name}`;
  await Deno.mkdir(root, { recursive: true });
  const temp = await Deno.makeTempDir({ dir: root, prefix: `.${name}.` });
  try {
    const sub = `${temp}/${subfolder}`;
    await Deno.mkdir(sub);
    let i = 0;
    for await (const img of images) {
      const stem = `${sub}/${conceptFileStem(i++)}`;
      await Deno.writeFile(`${stem}.png`, await encodePng(img.rgb, img.width, img.height));
      await Deno.writeTextFile(`${stem}.txt`, `${img.caption}\n`);
    }
    const old = `${temp}.old`;
    let hadOld = true;
    try {
      await Deno.rename(target, old);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      hadOld = false;
    }
    await Deno.rename(temp, target);
    if (hadOld) await Deno.remove(old, { recursive: true });
    return target;
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** One image of {@link writeImageFolder}: row-major RGB bytes, its size and its caption. */
export interface CaptionedImage {
  /** RGB bytes, `[height, width, 3]`. */
  rgb: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The caption written beside it. */
  caption: string;
}

/**
 * Writes one concept set under `root`, replacing any previous copy; returns its folder.
 *
 * @example
 * ```ts
 * import { IDENTITY_CONCEPT } from "./concepts.ts";
 * import { writeConceptSet } from "./write_concepts_fs.ts";
 * const root = await Deno.makeTempDir();
 * console.log(await writeConceptSet(IDENTITY_CONCEPT, root)); // ".../zqstar"
 * ```
 */
export async function writeConceptSet(concept: ConceptSet, root: string): Promise<string> {
  // drawn lazily, inside the folder write: a failure part-way leaves the previous folder
  function* images(): Generator<CaptionedImage> {
    for (const item of conceptItems(concept)) {
      yield { ...item.scene, rgb: item.rgb, caption: item.caption };
    }
  }
  return await writeImageFolder(root, concept.name, conceptFolder(concept), images());
}

/**
 * Writes every shipped concept set under `root` (default `datasets`); returns their folders.
 *
 * @example
 * ```ts
 * import { writeConceptSets } from "./write_concepts_fs.ts";
 * console.log(await writeConceptSets(await Deno.makeTempDir())); // [".../zqstar", ".../vxstripe"]
 * ```
 */
export async function writeConceptSets(root = "datasets"): Promise<string[]> {
  const out: string[] = [];
  for (const c of CONCEPTS) out.push(await writeConceptSet(c, root));
  return out;
}

if (import.meta.main) {
  for (const dir of await writeConceptSets(Deno.args[0])) console.log(`wrote ${dir}`);
}
