// The generation measures of `mod.ts eval` (src/cli/_generation_measures.ts) on real procedural
// images, where the right answers are known: they read the real images' attributes, score the
// same images against the wrong scenes far lower, and their classifier features give a Fréchet
// distance of ~0 against themselves and a larger one against a different set of images.
import { deepEqual, equal, ok } from "node:assert/strict";
import "./_helpers.ts"; // acquires the GPU device
import { loadClassifier } from "../src/eval/classifier_fs.ts";
import { featureStats, frechetDistance } from "../src/eval/frechet.ts";
import { ProceduralWorld } from "../src/eval/world.ts";
import { PALETTE } from "../src/eval/palette.ts";
import { evaluationCases, scoreImages } from "../src/cli/_generation_measures.ts";

const CLASSIFIER = new URL("../models/attribute_classifier.safetensors", import.meta.url).pathname;
const N = 64;
const net = await loadClassifier(CLASSIFIER);
const items = new ProceduralWorld({ seed: 7 }).items(0, N);
const images = items.map((it) => it.rgb), scenes = items.map((it) => it.scene);
const real = await scoreImages(net, images, scenes, 32, 24); // 24: a batch split across rows

Deno.test("evaluationCases: the world's captions and scenes, noise seed = case index", () => {
  const cases = evaluationCases({ seed: 7 }, 3);
  deepEqual(cases.map((c) => c.seed), [0, 1, 2]);
  deepEqual(cases.map((c) => c.prompt), items.slice(0, 3).map((it) => it.caption));
  deepEqual(cases.map((c) => c.scene), scenes.slice(0, 3));
});

Deno.test("scoreImages reads real procedural images' attributes well above chance", () => {
  console.log(`real images, world seed 7: ${JSON.stringify(real.scores)}`);
  equal(real.readings.length, N);
  equal(real.features.length, N * real.featureDim);
  ok(real.featureDim > 0);
  // Colours come from exact renders of palette colours: a miss needs a tiny object hidden by
  // its anti-aliased edge, so at most 2 of 64. The classifier's recorded held-out accuracy is
  // 0.99 (shape), 0.997 (count), 0.96 (fill); 0.85 is more than 3 binomial sd (0.03 at 0.96
  // over 64 images) below the lowest of them, and far above chance (1/3 to 1/5).
  for (const k of ["colour", "background"] as const) ok(real.scores[k] >= 62 / 64, k);
  for (const k of ["shape", "count", "fill"] as const) ok(real.scores[k] >= 0.85, k);
});

Deno.test("scoreImages keeps each image's features in its own row across batches", async () => {
  const d = real.featureDim, rows = [0, 23, 24, 47, 63]; // batch edges at 24 and 48
  const alone = await scoreImages(
    net,
    rows.map((i) => images[i]!),
    rows.map((i) => scenes[i]!),
    32,
  );
  rows.forEach((row, k) => {
    for (let j = 0; j < d; j++) {
      const a = alone.features[k * d + j]!, b = real.features[row * d + j]!;
      // the same convolutions at another batch size: float32 sums in another order at most
      ok(Math.abs(a - b) <= 1e-4 * (1 + Math.abs(b)), `row ${row}, feature ${j}: ${a} vs ${b}`);
    }
  });
});

Deno.test("scoreImages scores the same images against the wrong scenes far lower", async () => {
  // each image against the next image's scene: it matches only where the two scenes happen to
  // share the attribute (about 1 in 3 to 1 in 8 by attribute)
  const shifted = scenes.map((_, i) => scenes[(i + 1) % N]!);
  const wrong = await scoreImages(net, images, shifted, 32);
  console.log(`against shifted scenes: ${JSON.stringify(wrong.scores)}`);
  deepEqual(wrong.readings, real.readings); // the readings depend on the images only
  for (const k of ["colour", "background", "shape"] as const) {
    ok(wrong.scores[k] <= real.scores[k] - 0.3, `${k}: ${wrong.scores[k]} vs ${real.scores[k]}`);
  }
});

Deno.test("the classifier Fréchet distance is ~0 for a set against itself, larger otherwise", async () => {
  const d = real.featureDim;
  const self = featureStats(real.features, N, d);
  let trace = 0;
  for (let j = 0; j < d; j++) trace += self.cov[j * d + j]!;
  const same = frechetDistance(self, self);
  // the square root of S^2 by Jacobi rotations in float64: a relative error of ~1e-12 per
  // eigenvalue; 1e-6 of the trace leaves a wide margin and is still far below the others
  ok(Math.abs(same) <= 1e-6 * trace, `self: ${same} (trace ${trace})`);
  // another sample of the same world: differs by sampling noise only
  const other = new ProceduralWorld({ seed: 8 }).items(0, N);
  const o = await scoreImages(net, other.map((it) => it.rgb), other.map((it) => it.scene), 32);
  const sampling = frechetDistance(self, featureStats(o.features, N, d));
  // plain backgrounds without objects: a different distribution
  const colours = Object.values(PALETTE);
  const blank = Array.from({ length: N }, (_, i) => {
    const [r, g, b] = colours[i % colours.length]!;
    return new Uint8Array(32 * 32 * 3).map((_, k) => [r, g, b][k % 3]!);
  });
  const p = await scoreImages(net, blank, scenes, 32);
  const different = frechetDistance(self, featureStats(p.features, N, d));
  console.log(`Fréchet: self ${same}, another sample ${sampling}, blank images ${different}`);
  ok(sampling > 0 && sampling > 1e3 * Math.abs(same), `${sampling} vs ${same}`);
  ok(different > 2 * sampling, `blank ${different} vs another sample ${sampling}`);
});
