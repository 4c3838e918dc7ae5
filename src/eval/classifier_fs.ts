/**
 * Saving, loading and training the attribute classifier from the command line (Deno). The file is
 * a safetensors file of f32 weights whose `__metadata__` holds the classifier's config and how it
 * was made (`denoise_classifier_config`, `denoise_command`, steps, seeds, held-out accuracy).
 *
 * Run `deno run -A src/eval/classifier_fs.ts --steps 1000 --out models/attribute_classifier.safetensors`
 * to train one from scratch on the procedural stream and print its held-out accuracy.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getDevice } from "../ops/device.ts";
import { Generator } from "../ops/rng.ts";
import { SafetensorsFile, writeSafetensors } from "../nn/safetensors_fs.ts";
import type { SafetensorsInput } from "../nn/safetensors.ts";
import { AttributeClassifier, type ClassifierConfig } from "./classifier.ts";
import { classifierAccuracy, classifierWorld, trainClassifier } from "./classifier_train.ts";
import { WorldError } from "./errors.ts";

const CONFIG_KEY = "denoise_classifier_config";

/**
 * Writes the classifier's weights and config (plus `metadata`) to `path`, atomically.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { AttributeClassifier } from "./classifier.ts";
 * import { loadClassifier, saveClassifier } from "./classifier_fs.ts";
 * await getDevice();
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveClassifier(path, new AttributeClassifier({ channels: [4, 8, 8, 8] }));
 * console.log((await loadClassifier(path)).featureSize); // 64
 * ```
 */
export async function saveClassifier(
  path: string,
  model: AttributeClassifier,
  metadata: Readonly<Record<string, string>> = {},
): Promise<void> {
  const tensors: Record<string, SafetensorsInput> = {};
  for (const [key, t] of model.stateDict()) {
    tensors[key] = { data: await t.toArray(), shape: [...t.shape] };
  }
  await writeSafetensors(path, tensors, {
    ...metadata,
    [CONFIG_KEY]: JSON.stringify(model.config),
  });
}

/**
 * Reads a classifier written by {@link saveClassifier}.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/device.ts";
 * import { AttributeClassifier } from "./classifier.ts";
 * import { loadClassifier, saveClassifier } from "./classifier_fs.ts";
 * await getDevice();
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await saveClassifier(path, new AttributeClassifier());
 * console.log((await loadClassifier(path)).imageSize); // 32
 * ```
 */
export async function loadClassifier(path: string): Promise<AttributeClassifier> {
  using file = await SafetensorsFile.open(path);
  const text = file.metadata[CONFIG_KEY];
  let config: ClassifierConfig;
  try {
    config = JSON.parse(text ?? "") as ClassifierConfig;
  } catch {
    throw new WorldError(
      `"${path}" has no valid ${CONFIG_KEY} metadata, so it is not an attribute classifier ` +
        "file; write one with saveClassifier()",
    );
  }
  const model = new AttributeClassifier(config);
  await model.loadSafetensors(file);
  return model;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string", default: "1000" },
      "batch-size": { type: "string", default: "32" },
      lr: { type: "string", default: "3e-3" },
      seed: { type: "string", default: "0" },
      out: { type: "string", default: "models/attribute_classifier.safetensors" },
    },
  });
  const steps = Number(values.steps), batchSize = Number(values["batch-size"]);
  const lr = Number(values.lr), seed = Number(values.seed);
  await getDevice();
  const model = new AttributeClassifier({}, { generator: new Generator(seed) });
  const t0 = performance.now();
  await trainClassifier(model, {
    steps,
    batchSize,
    lr,
    seed,
    logEvery: 50,
    onLoss: (s, l) =>
      console.log(
        `step ${s}: loss ${l.toFixed(3)} (${((performance.now() - t0) / 1e3).toFixed(0)} s)`,
      ),
  });
  const seconds = (performance.now() - t0) / 1e3;
  // Held out: seed + 1000's stream, which training (seed's stream) never draws from.
  const acc = await classifierAccuracy(model, classifierWorld(seed + 1000), 0, 1024);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  console.log(
    `held-out accuracy on 1024 fresh images: shape ${pct(acc.shape)}, count ${pct(acc.count)}, ` +
      `fill ${pct(acc.fill)}; trained ${steps} steps in ${seconds.toFixed(0)} s`,
  );
  await saveClassifier(values.out, model, {
    denoise_command: `deno run -A src/eval/classifier_fs.ts ${Deno.args.join(" ")}`.trim(),
    denoise_steps: String(steps),
    denoise_batch_size: String(batchSize),
    denoise_lr: String(lr),
    denoise_seed: String(seed),
    denoise_train_seconds: seconds.toFixed(0),
    denoise_heldout_accuracy: JSON.stringify(acc),
  });
  console.log(`wrote ${values.out}`);
}
