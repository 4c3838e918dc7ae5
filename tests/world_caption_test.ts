// The caption grammar: every caption states the scene's attributes in the order "count size
// [fill] colour noun" plus the background, uses only the grammar's words, and varies its
// pattern; concept captions carry their trigger word and class captions drop it.
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  ALL_FILLS,
  ALL_SHAPES,
  captionScene,
  captionWords,
  CounterRandom,
  generateScene,
  IDENTITY_CONCEPT,
  ProceduralWorld,
  type Scene,
  STYLE_CONCEPT,
} from "../src/eval/mod.ts";

const PLURALS: Record<string, string> = { cross: "crosses" };

// The noun phrase a caption must contain for a scene (fill named unless solid).
function phrases(s: Scene): string[] {
  const n = s.objects.length;
  const counts = n === 1 ? ["a", "one"] : n === 2 ? ["two"] : ["three"];
  const nouns = n === 1 ? [s.shape, "shape"] : [PLURALS[s.shape] ?? `${s.shape}s`, "shapes"];
  const fill = s.fill === "solid" ? "" : `${s.fill} `;
  return counts.flatMap((c) => nouns.map((w) => `${c} ${s.size} ${fill}${s.colour} ${w}`));
}

Deno.test("captions state count, size, fill, colour, shape and background", () => {
  const world = new ProceduralWorld({ seed: 3, shapes: ALL_SHAPES, fills: ALL_FILLS });
  const vocabulary = new Set(captionWords());
  let generic = 0;
  for (let i = 0; i < 2000; i++) {
    const { scene, caption, classCaption } = world.describe(i);
    equal(classCaption, caption, "no trigger, so the class caption is the caption");
    ok(phrases(scene).some((p) => caption.includes(p)), `"${caption}" misses its noun phrase`);
    const bg = scene.background;
    ok(
      caption.includes(`on a ${bg} background`) || caption.endsWith(`on ${bg}`) ||
        caption.includes(`a ${bg} background with`) || caption.endsWith(`, ${bg} background`),
      `"${caption}" misses its background`,
    );
    for (const word of caption.replaceAll(",", "").split(" ")) {
      ok(vocabulary.has(word), `"${word}" of "${caption}" is not in captionWords()`);
    }
    if (/ shapes?( |,|$)/.test(caption)) generic++;
  }
  // About 10% generic nouns (200 of 2000; binomial sd 13), and all four sentence patterns.
  ok(generic > 140 && generic < 260, `${generic} captions say "shape"`);
  const world2 = new ProceduralWorld({ seed: 4 });
  const kinds = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const c = world2.describe(i).caption;
    kinds.add(
      c.endsWith(" background") && c.includes(" on a ")
        ? 0
        : c.includes(" background with ")
        ? 2
        : c.includes(", ")
        ? 3
        : 1,
    );
  }
  deepEqual([...kinds].sort(), [0, 1, 2, 3]);
});

Deno.test("captions are a pure function of the scene and the random stream", () => {
  const scene = generateScene(9, 1);
  deepEqual(
    captionScene(scene, new CounterRandom(1, 2)),
    captionScene(scene, new CounterRandom(1, 2)),
  );
  const texts = new Set<string>();
  for (let k = 0; k < 50; k++) texts.add(captionScene(scene, new CounterRandom(1, k)).text);
  ok(texts.size >= 8, `only ${texts.size} different captions of one scene`);
});

Deno.test("concept captions carry the trigger; class captions do not", () => {
  for (const concept of [IDENTITY_CONCEPT, STYLE_CONCEPT]) {
    const world = new ProceduralWorld(concept.world);
    for (let i = 0; i < 100; i++) {
      const { scene, caption, classCaption } = world.describe(i);
      const words = caption.replaceAll(",", "").split(" ");
      equal(words.filter((w) => w === concept.trigger).length, 1, caption);
      ok(!classCaption.includes(concept.trigger), classCaption);
      if (concept.kind === "identity") {
        equal(scene.shape, "star");
        ok(/ zqstar shapes?( |,|$)/.test(caption), caption);
        equal(classCaption, caption.replace("zqstar ", ""));
      } else {
        equal(scene.fill, "striped");
        ok(caption.startsWith("vxstripe style, ") || caption.endsWith(", vxstripe style"), caption);
        ok(!caption.includes("striped"), "the trigger replaces the fill word");
        equal(
          classCaption,
          caption.replace("vxstripe style, ", "").replace(", vxstripe style", ""),
        );
      }
    }
  }
  // Pretraining captions never use a trigger word or name a star or a fill.
  const base = new ProceduralWorld({ seed: 0 });
  for (let i = 0; i < 2000; i++) {
    const c = base.describe(i).caption;
    ok(!/zqstar|vxstripe|star|striped|dotted/.test(c), c);
  }
});
