// Writes the tiny model (tests/_sd_fixture.ts: U-Net [32, 64], VAE [16, 32], 2-layer CLIP) and a
// kohya folder of 8 mixed-aspect PNG images with captions into a folder, for timing `mod.ts train`:
//   deno run -A bench/train_tiny_fixture.ts /tmp/tiny
//   deno run -A mod.ts train --pretrained_model_name_or_path /tmp/tiny/model ...
import { join } from "node:path";
import sharp from "sharp";
import { getDevice } from "../mod.ts";
import { saveDiffusersFolder } from "../src/nn/loaders_fs.ts";
import { tinyModels } from "../tests/_sd_fixture.ts";

const root = Deno.args[0];
if (!root) throw new Error("Usage: deno run -A bench/train_tiny_fixture.ts <folder>");
await getDevice();
const m = tinyModels(1);
await saveDiffusersFolder(join(root, "model"), m);
for (const x of [m.unet, m.vae, m.textEncoder]) x.dispose();
const dir = join(root, "train", "4_cat");
await Deno.mkdir(dir, { recursive: true });
for (let i = 0; i < 8; i++) {
  const [w, h] = i % 2 ? [48, 32] : [32, 48];
  const px = new Uint8Array(w * h * 3).map((_, k) => (k * 31 + i * 67) % 256);
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(
    join(dir, `${i}.png`),
  );
  await Deno.writeTextFile(join(dir, `${i}.txt`), i % 2 ? "a cat" : "a photo of cat");
}
console.log(`wrote ${root}/model and ${root}/train`);
