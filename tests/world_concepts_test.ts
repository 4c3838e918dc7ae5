// The shipped concept sets: kohya folder layout (`<repeats>_<trigger>/NNN.png` + `.txt`),
// the committed folders equal to what the generator makes now (pixels decoded with pngjs), and
// a failed rewrite leaving the previous folder as it was.
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { PNG } from "pngjs";
import {
  conceptFileStem,
  conceptFolder,
  conceptItems,
  CONCEPTS,
  type ConceptSet,
  IDENTITY_CONCEPT,
  STYLE_CONCEPT,
  WorldError,
} from "../src/eval/mod.ts";
import { writeConceptSet, writeConceptSets } from "../src/eval/write_concepts_fs.ts";

const DATASETS = new URL("../datasets", import.meta.url).pathname;

async function decodeRgb(
  path: string,
): Promise<{ width: number; height: number; rgb: Uint8Array }> {
  const img = PNG.sync.read(Buffer.from(await Deno.readFile(path)));
  const rgb = new Uint8Array(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) {
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = img.data[i * 4 + c]!;
  }
  return { width: img.width, height: img.height, rgb };
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(...(await listFiles(`${dir}/${e.name}`)).map((f) => `${e.name}/${f}`));
    } else out.push(e.name);
  }
  return out.sort();
}

// Every image and caption of `concept` under `root` equals the generator's.
async function assertFolder(root: string, concept: ConceptSet): Promise<void> {
  const sub = conceptFolder(concept);
  const items = conceptItems(concept);
  const want = items.flatMap((
    _,
    i,
  ) => [`${sub}/${conceptFileStem(i)}.png`, `${sub}/${conceptFileStem(i)}.txt`]);
  deepEqual(await listFiles(`${root}/${concept.name}`), want.sort());
  for (const [i, item] of items.entries()) {
    const stem = `${root}/${concept.name}/${sub}/${conceptFileStem(i)}`;
    const png = await decodeRgb(`${stem}.png`);
    equal(png.width, item.scene.width);
    equal(png.height, item.scene.height);
    deepEqual(png.rgb, item.rgb, `${stem}.png differs from the generator's pixels`);
    equal(await Deno.readTextFile(`${stem}.txt`), `${item.caption}\n`);
  }
}

Deno.test("concept sets: 20 items each, kohya folder names, triggers in every caption", () => {
  equal(conceptFolder(IDENTITY_CONCEPT), "10_zqstar");
  equal(conceptFolder(STYLE_CONCEPT), "10_vxstripe");
  for (const c of CONCEPTS) {
    const items = conceptItems(c);
    equal(items.length, 20);
    for (const it of items) ok(it.caption.split(/,? /).includes(c.trigger), it.caption);
    // Variety: several colours, counts and sizes among the 20.
    ok(new Set(items.map((x) => x.scene.colour)).size >= 5);
    ok(new Set(items.map((x) => x.scene.objects.length)).size === 3);
    ok(new Set(items.map((x) => x.scene.size)).size === 2);
  }
  ok(new Set(conceptItems(STYLE_CONCEPT).map((x) => x.scene.shape)).size >= 4);
});

Deno.test("the committed datasets/ folders are what the generator writes", async () => {
  for (const c of CONCEPTS) await assertFolder(DATASETS, c);
});

Deno.test("writeConceptSets() writes the folders, and a failed rewrite keeps the old one", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dirs = await writeConceptSets(root);
    deepEqual(dirs, CONCEPTS.map((c) => `${root}/${c.name}`));
    for (const c of CONCEPTS) await assertFolder(root, c);
    // Rewriting replaces the folder in place (no leftovers)...
    await writeConceptSet(IDENTITY_CONCEPT, root);
    await assertFolder(root, IDENTITY_CONCEPT);
    deepEqual((await listFiles(root)).filter((f) => f.startsWith(".")), []);
    // ...and a rewrite that fails part-way leaves the previous folder and no temporary one.
    const broken: ConceptSet = {
      ...IDENTITY_CONCEPT,
      world: { ...IDENTITY_CONCEPT.world, width: 8 },
    };
    await rejects(() => writeConceptSet(broken, root), WorldError);
    await assertFolder(root, IDENTITY_CONCEPT);
    deepEqual(
      [...Deno.readDirSync(root)].map((e) => e.name).sort(),
      CONCEPTS.map((c) => c.name).sort(),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
