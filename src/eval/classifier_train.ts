/**
 * Training and scoring the attribute classifier on the procedural stream (every shape and fill,
 * so it knows the two concepts as well), with AdamW on our tensor layer.
 *
 * @module
 */
import { AdamW } from "../ops/adamw.ts";
import { backward, noGrad } from "../ops/autograd.ts";
import { tensor } from "../ops/creation.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { ProceduralWorld } from "./world.ts";
import { coverageMap } from "./coverage.ts";
import { ALL_FILLS, ALL_SHAPES } from "./shapes.ts";
import {
  type AttributeClassifier,
  CLASSIFIER_HEADS,
  type ClassifierHead,
  type ClassifierLabels,
  classifierLoss,
  sceneLabels,
} from "./classifier.ts";
import { WorldError } from "./errors.ts";

/** A batch of world items as classifier input. */
export interface ClassifierBatch {
  /** Coverage maps of the images, [B, 1, H, W], row-major. */
  images: Float32Array;
  /** Their class indices. */
  labels: ClassifierLabels[];
}

/**
 * The world the classifier learns from: every shape and fill, 32x32, seeded.
 *
 * @example
 * ```ts
 * import { classifierWorld } from "./classifier_train.ts";
 * console.log(classifierWorld(1).sceneOptions.shapes.includes("star")); // true
 * ```
 */
export function classifierWorld(seed: number): ProceduralWorld {
  return new ProceduralWorld({ seed, shapes: ALL_SHAPES, fills: ALL_FILLS });
}

/**
 * Items `start .. start + count - 1` of `world` as one batch.
 *
 * @example
 * ```ts
 * import { classifierBatch, classifierWorld } from "./classifier_train.ts";
 * console.log(classifierBatch(classifierWorld(1), 0, 4).images.length); // 4 * 32 * 32
 * ```
 */
export function classifierBatch(
  world: ProceduralWorld,
  start: number,
  count: number,
): ClassifierBatch {
  const { width, height } = world.sceneOptions;
  const n = width * height;
  const images = new Float32Array(count * n);
  const labels: ClassifierLabels[] = [];
  for (let i = 0; i < count; i++) {
    const item = world.item(start + i);
    images.set(coverageMap(item.rgb, width, height), i * n);
    labels.push(sceneLabels(item.scene));
  }
  return { images, labels };
}

/** Options of {@link trainClassifier}. */
export interface TrainClassifierOptions {
  /** Optimizer steps. */
  steps: number;
  /** Images per step (default 32). */
  batchSize?: number;
  /** Peak AdamW learning rate (default 3e-3), decayed to 0 along a half cosine. */
  lr?: number;
  /** Seed of the training stream (default 0); step s uses items s B .. s B + B - 1. */
  seed?: number;
  /** Read the loss back every this many steps (default 10; readback costs ~10 ms). */
  logEvery?: number;
  /** Called with each loss read back. */
  onLoss?: (step: number, loss: number) => void;
}

/**
 * Trains `model` in place; returns the losses read back (one per `logEvery` steps).
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/mod.ts";
 * import { AttributeClassifier } from "./classifier.ts";
 * import { trainClassifier } from "./classifier_train.ts";
 * await getDevice();
 * const losses = await trainClassifier(new AttributeClassifier(), { steps: 2, logEvery: 1 });
 * console.log(losses.length); // 2
 * ```
 */
export async function trainClassifier(
  model: AttributeClassifier,
  options: TrainClassifierOptions,
): Promise<number[]> {
  const b = options.batchSize ?? 32, every = options.logEvery ?? 10;
  if (!Number.isInteger(options.steps) || options.steps < 0 || !Number.isInteger(b) || b < 1) {
    throw new WorldError(
      `Training needs whole steps >= 0 and batchSize >= 1, got ${options.steps} and ${b}`,
    );
  }
  const world = classifierWorld(options.seed ?? 0);
  const s = model.imageSize;
  const opt = new AdamW(model.trainableParameters().map((p) => p.value), {
    lr: options.lr ?? 3e-3,
  });
  const losses: number[] = [];
  for (let step = 0; step < options.steps; step++) {
    const batch = classifierBatch(world, step * b, b);
    const loss: Tensor = scope(() => {
      const l = classifierLoss(
        model.forward(tensor(batch.images, [b, 1, s, s])),
        batch.labels,
      );
      backward(l);
      return l;
    });
    opt.step(opt.options.lr * 0.5 * (1 + Math.cos((Math.PI * step) / options.steps)));
    opt.zeroGrad();
    if ((step + 1) % every === 0 || step === options.steps - 1) {
      const v = await loss.item();
      losses.push(v);
      options.onLoss?.(step + 1, v);
    }
    loss.dispose();
  }
  opt.dispose();
  return losses;
}

/**
 * Share of correct predictions per head on items `start .. start + count - 1` of `world`.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/mod.ts";
 * import { AttributeClassifier } from "./classifier.ts";
 * import { classifierAccuracy, classifierWorld } from "./classifier_train.ts";
 * await getDevice();
 * const acc = await classifierAccuracy(new AttributeClassifier(), classifierWorld(9), 0, 8);
 * console.log(acc.shape >= 0 && acc.shape <= 1); // true
 * ```
 */
export async function classifierAccuracy(
  model: AttributeClassifier,
  world: ProceduralWorld,
  start: number,
  count: number,
  batchSize = 64,
): Promise<Record<ClassifierHead, number>> {
  const right: Record<ClassifierHead, number> = { shape: 0, count: 0, fill: 0 };
  const s = model.imageSize;
  for (let i = 0; i < count; i += batchSize) {
    const n = Math.min(batchSize, count - i);
    const batch = classifierBatch(world, start + i, n);
    const out = scope(() => noGrad(() => model.forward(tensor(batch.images, [n, 1, s, s]))));
    for (const h of CLASSIFIER_HEADS) {
      const logits = await out[h].toArray();
      const k = out[h].shape[1]!;
      for (let j = 0; j < n; j++) {
        let best = 0;
        for (let c = 1; c < k; c++) if (logits[j * k + c]! > logits[j * k + best]!) best = c;
        if (best === batch.labels[j]![h]) right[h]++;
      }
    }
    for (const t of Object.values(out)) t.dispose();
  }
  return { shape: right.shape / count, count: right.count / count, fill: right.fill / count };
}
