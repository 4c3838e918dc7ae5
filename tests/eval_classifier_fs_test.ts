// Saving and loading the attribute classifier: the reloaded model gives the same outputs, its
// metadata is kept, and a safetensors file that is not a classifier gets a clear error.
import { deepEqual, equal, rejects } from "node:assert/strict";
import { Generator, getDevice, noGrad, scope, tensor } from "../mod.ts";
import { SafetensorsFile, writeSafetensors } from "../src/nn/safetensors_fs.ts";
import {
  AttributeClassifier,
  classifierBatch,
  classifierWorld,
  WorldError,
} from "../src/eval/mod.ts";
import { loadClassifier, saveClassifier } from "../src/eval/classifier_fs.ts";

await getDevice();

Deno.test("saveClassifier() then loadClassifier() gives the same outputs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/c.safetensors`;
    const config = { channels: [4, 8, 8, 8] as const, features: 16 };
    const net = new AttributeClassifier({ ...config, channels: [...config.channels] }, {
      generator: new Generator(3),
    });
    await saveClassifier(path, net, { denoise_command: "test" });
    const back = await loadClassifier(path);
    deepEqual(back.config, net.config);
    const batch = classifierBatch(classifierWorld(2), 0, 2);
    const run = (m: AttributeClassifier) =>
      scope(() => noGrad(() => m.forward(tensor(batch.images, [2, 1, 32, 32])).features));
    const a = run(net), b = run(back);
    deepEqual(await b.toArray(), await a.toArray());
    using f = await SafetensorsFile.open(path);
    equal(f.metadata.denoise_command, "test");
    for (const t of [a, b]) t.dispose();
    net.dispose();
    back.dispose();
    await writeSafetensors(`${dir}/other.safetensors`, {
      w: { data: new Float32Array(2), shape: [2] },
    });
    await rejects(() => loadClassifier(`${dir}/other.safetensors`), WorldError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
