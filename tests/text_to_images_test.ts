// textToImages(): a batch of prompts, each with its own seed, sampled in one loop must give the
// very images textToImage() makes one at a time (each row draws its noise from its own seed),
// in request order, also when prompts of different encoded lengths split the batch.
import { deepEqual, equal, notDeepEqual, rejects } from "node:assert/strict";
import { loadDiffusersFolder, saveDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { textToImage, textToImages } from "../src/cli/text_to_image.ts";
import { tinyModels } from "./_sd_fixture.ts";
import "./_helpers.ts"; // acquires the GPU device

const dir = await Deno.makeTempDir({ prefix: "denoise_t2is_" });
const m = tinyModels(4);
await saveDiffusersFolder(dir, m);
[m.unet, m.vae, m.textEncoder].forEach((x) => x.dispose());
const models = await loadDiffusersFolder(dir);
await Deno.remove(dir, { recursive: true });

const requests = [
  { prompt: "a cat", seed: 5 },
  { prompt: "a dog", seed: 1 },
  // over the tiny encoder's 6 tokens per chunk: a longer context, so a batch of its own
  { prompt: "a blurry photo of a cat dog photo of a dog", seed: 2 },
  { prompt: "a cat", seed: 9 },
];

for (const sampler of ["euler_a", "dpmpp_2m"]) {
  Deno.test(`textToImages() equals textToImage() per prompt and seed (${sampler})`, async () => {
    const o = { steps: 3, cfg: 4, sampler, width: 16, height: 16 };
    const batch = await textToImages(models, requests, o);
    equal(batch.length, requests.length);
    for (const [i, r] of requests.entries()) {
      const alone = await textToImage(models, { ...o, ...r });
      // rows are independent in every kernel and draw from their own streams: bit-identical
      deepEqual(batch[i]!.rgb, alone.rgb, `image ${i} (${r.prompt}, seed ${r.seed})`);
    }
    // the same prompt with another seed is another image: the seeds reach the rows
    notDeepEqual(batch[0]!.rgb, batch[3]!.rgb);
  });
}

Deno.test("textToImages() img2img: each request's own init image, as textToImage() with it", async () => {
  const o = { steps: 4, cfg: 4, sampler: "euler_a", width: 16, height: 16, strength: 0.6 };
  const inits = [11, 200].map((v) => ({
    width: 16,
    height: 16,
    rgb: Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => (v + i * 7) % 256),
  }));
  const rows = inits.map((initImage, i) => ({ prompt: "a cat", seed: i, initImage }));
  const batch = await textToImages(models, rows, o);
  for (const [i, r] of rows.entries()) {
    deepEqual(batch[i]!.rgb, (await textToImage(models, { ...o, ...r })).rgb, `image ${i}`);
  }
  await rejects(
    () => textToImages(models, [rows[0]!, { prompt: "a dog", seed: 3 }], o),
    /1 of the 2 images of this batch have an init image; give every image its own init image/,
  );
});
