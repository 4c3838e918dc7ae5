/**
 * Writes the regularization images of the identity concept: the base model's own images for the
 * class prompts of the zqstar captions (the trigger word left out: "two small green shapes,
 * white background"), as a kohya reg folder `<root>/reg_shape/1_shape/NNN.png` with `NNN.txt`
 * captions. Image `i` is the mini SD's generation for class prompt `i` with seed `i`, so the set
 * is the same on every machine (up to float rounding of the adapter). The folder is written
 * beside its target first and renamed into place, so an interrupted run leaves the old one.
 *
 * Run `deno run -A src/cli/write_reg_images_fs.ts [root]` (root defaults to `datasets`); train
 * with it by `--reg_data_dir datasets/reg_shape --prior_loss_weight 1`.
 *
 * @module
 */
import { getDevice } from "../ops/device.ts";
import { loadStableDiffusion } from "../nn/loaders_fs.ts";
import { conceptItems, IDENTITY_CONCEPT } from "../eval/concepts.ts";
import { writeImageFolder } from "../eval/write_concepts_fs.ts";
import { bundledModelDir } from "./bundled.ts";
import { readSchedulerOptions } from "./scheduler_config.ts";
import { textToImage } from "./text_to_image.ts";

/** How the reg images are sampled. */
export const REG_SAMPLING = { steps: 20, cfg: 5, sampler: "dpmpp_2m", side: 32 } as const;

/**
 * The class prompts: each zqstar caption without its trigger word, in the concept set's order.
 *
 * @example
 * ```ts
 * import { regPrompts } from "./write_reg_images_fs.ts";
 * console.log(regPrompts()[0]); // "two small green shapes, white background"
 * ```
 */
export function regPrompts(): string[] {
  return conceptItems(IDENTITY_CONCEPT).map((item) => item.classCaption);
}

/**
 * Generates the reg images with the model at `modelDir` and writes the folder
 * `<root>/reg_shape/1_shape`, replacing any previous one; returns the `reg_shape` folder.
 *
 * @example
 * ```ts ignore
 * import { writeRegImages } from "./write_reg_images_fs.ts";
 * console.log(await writeRegImages("models/mini_sd", "datasets")); // "datasets/reg_shape"
 * ```
 */
export async function writeRegImages(modelDir: string, root: string): Promise<string> {
  await getDevice();
  const models = await loadStableDiffusion(modelDir);
  const scheduler = await readSchedulerOptions(modelDir);
  const { side, ...sampling } = REG_SAMPLING;
  async function* images() {
    for (const [i, prompt] of regPrompts().entries()) {
      const img = await textToImage(models, {
        ...sampling,
        prompt,
        seed: i,
        width: side,
        height: side,
        scheduler,
      });
      yield { ...img, caption: prompt };
    }
  }
  try {
    const c = IDENTITY_CONCEPT.classWord;
    return await writeImageFolder(root, `reg_${c}`, `1_${c}`, images());
  } finally {
    for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
  }
}

if (import.meta.main) {
  console.log(`wrote ${await writeRegImages(bundledModelDir(), Deno.args[0] ?? "datasets")}`);
}
