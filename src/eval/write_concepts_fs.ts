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
  const target = `${root}/${concept.name}`;
  await Deno.mkdir(root, { recursive: true });
  const temp = await Deno.makeTempDir({ dir: root, prefix: `.${concept.name}.` });
  try {
    const sub = `${temp}/${conceptFolder(concept)}`;
    await Deno.mkdir(sub);
    const items = conceptItems(concept);
    for (const [i, item] of items.entries()) {
      const stem = `${sub}/${conceptFileStem(i)}`;
      const { width, height } = item.scene;
      await Deno.writeFile(`${stem}.png`, await encodePng(item.rgb, width, height));
      await Deno.writeTextFile(`${stem}.txt`, `${item.caption}\n`);
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
