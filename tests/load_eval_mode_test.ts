// loadStableDiffusion returns models in inference mode, as diffusers' from_pretrained: a
// batch-norm U-Net then normalizes with its running statistics and does not update them.
import { equal } from "node:assert/strict";
import { join } from "node:path";
import { Generator, getDevice, randn, scope } from "../mod.ts";
import { loadStableDiffusion } from "../src/nn/loaders_fs.ts";
import { writeTinyModel } from "./_cli_fixtures.ts";

Deno.test("a loaded batch-norm U-Net is in eval mode and a forward leaves its running statistics", async () => {
  await getDevice();
  const dir = await Deno.makeTempDir();
  try {
    await writeTinyModel(join(dir, "m"), 4, "batch");
    const { unet, vae, textEncoder } = await loadStableDiffusion(join(dir, "m"));
    equal(unet.training || vae.training || textEncoder.training, false);
    const stats = unet.namedBuffers().filter(([n]) => n.endsWith("running_mean"));
    equal(stats.length > 0, true, "the fixture has batch norms");
    const before = await Promise.all(stats.map(([, t]) => t.value.toArray()));
    const g = new Generator(1);
    const c = unet.config;
    scope(() =>
      unet.forward(
        randn([2, c.inChannels, 8, 8], { generator: g }),
        500,
        randn([2, 4, c.crossAttentionDim], { generator: g }),
      ).dispose()
    );
    const after = await Promise.all(stats.map(([, t]) => t.value.toArray()));
    equal(after.every((a, i) => a.every((v, j) => v === before[i]![j])), true);
    for (const m of [unet, vae, textEncoder]) m.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
