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
import { join } from "node:path";
import { getDevice } from "../ops/device.ts";
import { loadStableDiffusion } from "../nn/loaders_fs.ts";
import { conceptFileStem, conceptItems, IDENTITY_CONCEPT } from "../eval/concepts.ts";
import { encodePng } from "../eval/png.ts";
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
  const target = join(root, `reg_${IDENTITY_CONCEPT.classWord}`);
  await Deno.mkdir(root, { recursive: true });
  const temp = await Deno.makeTempDir({ dir: root, prefix: ".reg_shape." });
  try {
    const sub = join(temp, `1_${IDENTITY_CONCEPT.classWord}`);
    await Deno.mkdir(sub);
    const { side, ...sampling } = REG_SAMPLING;
    for (const [i, prompt] of regPrompts().entries()) {
      const img = await textToImage(models, {
        ...sampling,
        prompt,
        seed: i,
        width: side,
        height: side,
        scheduler,
      });
      const stem = join(sub, conceptFileStem(i));
      await Deno.writeFile(`${stem}.png`, await encodePng(img.rgb, side, side));
      await Deno.writeTextFile(`${stem}.txt`, `${prompt}\n`);
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
  } finally {
    for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
  }
}

if (import.meta.main) {
  console.log(`wrote ${await writeRegImages(bundledModelDir(), Deno.args[0] ?? "datasets")}`);
}
