/**
 * The attribute classifier: a small convnet that reads a 32x32 scene's coverage map (see
 * `coverage.ts`: colour-blind, so colour is left to `measureColours`) and predicts its shape
 * (every shape, the identity concept's star included), object count and fill style (the style
 * concept's stripes included). Its 64-wide penultimate features also serve the Fréchet distance
 * between generated and procedural images. Built from `src/nn` layers on our tensor layer.
 *
 * @module
 */
import { Module } from "../nn/module.ts";
import { Conv2d } from "../nn/layers/conv2d.ts";
import { Linear } from "../nn/layers/linear.ts";
import { GroupNorm } from "../nn/layers/group_norm.ts";
import type { InitOptions } from "../nn/layers/_init.ts";
import { affine, log, scale, silu } from "../ops/unary.ts";
import { add, mul } from "../ops/binary.ts";
import { sum } from "../ops/reduce.ts";
import { softmax } from "../ops/softmax.ts";
import { reshape } from "../ops/reshape.ts";
import { tensor } from "../ops/creation.ts";
import type { Tensor } from "../ops/tensor.ts";
import { ALL_FILLS, ALL_SHAPES, type FillName, type ShapeName } from "./shapes.ts";
import type { Count, Scene } from "./scene.ts";
import { WorldError } from "./errors.ts";

/** The classes of each head, in logit order. */
export const CLASSIFIER_CLASSES: {
  readonly shape: readonly ShapeName[];
  readonly count: readonly Count[];
  readonly fill: readonly FillName[];
} = { shape: ALL_SHAPES, count: [1, 2, 3], fill: ALL_FILLS };

/** A head of the classifier. */
export type ClassifierHead = keyof typeof CLASSIFIER_CLASSES;

/** Every head, in output order. */
export const CLASSIFIER_HEADS: readonly ClassifierHead[] = ["shape", "count", "fill"];

/** Sizes of {@link AttributeClassifier}. */
export interface ClassifierConfig {
  /** Input side in pixels, divisible by 8 (default 32). */
  imageSize?: number;
  /** Channels of the four 3x3 convolutions (default [8, 16, 32, 32]); the last three have
   * stride 2. */
  channels?: readonly [number, number, number, number];
  /** Width of the feature vector (default 64). */
  features?: number;
}

/** What {@link AttributeClassifier.forward} returns. */
export interface ClassifierOutput {
  /** Penultimate features after SiLU, [B, features]. */
  features: Tensor;
  /** Shape logits, [B, 6]. */
  shape: Tensor;
  /** Count logits, [B, 3]. */
  count: Tensor;
  /** Fill logits, [B, 3]. */
  fill: Tensor;
}

/** Class indices of one image. */
export type ClassifierLabels = Record<ClassifierHead, number>;

/**
 * The class indices of a scene's attributes.
 *
 * @example
 * ```ts
 * import { generateScene, sceneLabels } from "./mod.ts";
 * console.log(sceneLabels(generateScene(1, 0)));
 * ```
 */
export function sceneLabels(scene: Scene): ClassifierLabels {
  return {
    shape: CLASSIFIER_CLASSES.shape.indexOf(scene.shape),
    count: CLASSIFIER_CLASSES.count.indexOf(scene.objects.length as Count),
    fill: CLASSIFIER_CLASSES.fill.indexOf(scene.fill),
  };
}

/**
 * conv(1 -> c0) GroupNorm SiLU, three stride-2 conv GroupNorm SiLU stages to an 1/8-size map,
 * flatten, Linear SiLU to the features, then one Linear head per attribute. The group norms (4
 * groups) made it learn shapes far faster: 74.5% held-out shape accuracy after 300 steps of 32
 * images, against 47% after 600 steps without them.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { AttributeClassifier } from "./classifier.ts";
 * await getDevice();
 * const net = new AttributeClassifier();
 * console.log(net.forward(randn([2, 1, 32, 32])).shape.shape); // [2, 6]
 * ```
 */
export class AttributeClassifier extends Module {
  /** Input side in pixels. */
  readonly imageSize: number;
  /** Feature width. */
  readonly featureSize: number;
  /** The config with every default filled in (saved with the weights). */
  readonly config: Required<ClassifierConfig>;

  /** A classifier with random weights. */
  constructor(config: ClassifierConfig = {}, init: InitOptions = {}) {
    super();
    const size = config.imageSize ?? 32;
    const [c0, c1, c2, c3] = config.channels ?? [8, 16, 32, 32];
    const f = config.features ?? 64;
    if (!Number.isInteger(size) || size < 8 || size % 8 !== 0) {
      throw new WorldError(`The classifier's imageSize is ${size}; use a multiple of 8`);
    }
    if ([c0, c1, c2, c3].some((c) => !Number.isInteger(c) || c < 4 || c % 4 !== 0)) {
      throw new WorldError(
        `The classifier's channels are ${[c0, c1, c2, c3].join(", ")}; use multiples of 4 (each ` +
          "convolution is followed by a 4-group norm)",
      );
    }
    this.imageSize = size;
    this.featureSize = f;
    this.config = { imageSize: size, channels: [c0, c1, c2, c3], features: f };
    this.addModule("conv1", new Conv2d(1, c0, 3, { ...init, padding: 1 }));
    this.addModule("conv2", new Conv2d(c0, c1, 3, { ...init, padding: 1, stride: 2 }));
    this.addModule("conv3", new Conv2d(c1, c2, 3, { ...init, padding: 1, stride: 2 }));
    this.addModule("conv4", new Conv2d(c2, c3, 3, { ...init, padding: 1, stride: 2 }));
    for (const [i, c] of [c0, c1, c2, c3].entries()) {
      this.addModule(`norm${i + 1}`, new GroupNorm(4, c));
    }
    this.addModule("fc", new Linear(c3 * (size / 8) ** 2, f, init));
    for (const h of CLASSIFIER_HEADS) {
      this.addModule(`${h}_head`, new Linear(f, CLASSIFIER_CLASSES[h].length, init));
    }
  }

  // x: [B, 1, S, S] coverage maps -> features [B, F], logits [B, classes] per head
  /** Features and logits of a batch of coverage maps. */
  forward(x: Tensor): ClassifierOutput {
    const [b, c, h, w] = x.shape;
    if (x.shape.length !== 4 || c !== 1 || h !== this.imageSize || w !== this.imageSize) {
      throw new WorldError(
        `The classifier takes [B, 1, ${this.imageSize}, ${this.imageSize}] coverage maps, got ` +
          `[${x.shape.join(", ")}]; pass coverageMap() of images of that size`,
      );
    }
    let y = x;
    for (const i of [1, 2, 3, 4]) {
      y = silu(
        this.child<GroupNorm>(`norm${i}`).forward(this.child<Conv2d>(`conv${i}`).forward(y)),
      );
    }
    const features = silu(this.child<Linear>("fc").forward(reshape(y, [b!, y.size / b!])));
    const head = (name: ClassifierHead) => this.child<Linear>(`${name}_head`).forward(features);
    return { features, shape: head("shape"), count: head("count"), fill: head("fill") };
  }
}

// logits: [B, K], labels: B class indices -> mean cross-entropy, a scalar
/**
 * Mean cross-entropy of logits against class indices: `-mean_b log softmax(z_b)[y_b]`
 * (softmax then log, with 1e-7 added inside the log so a saturated softmax stays finite).
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../ops/mod.ts";
 * import { crossEntropy } from "./classifier.ts";
 * await getDevice();
 * console.log(await crossEntropy(tensor([0, 0], [1, 2]), [1]).item()); // ~0.693
 * ```
 */
export function crossEntropy(logits: Tensor, labels: readonly number[]): Tensor {
  const [b, k] = logits.shape;
  if (logits.shape.length !== 2 || b !== labels.length) {
    throw new WorldError(
      `crossEntropy() takes [B, K] logits and B labels, got [${logits.shape.join(", ")}] and ` +
        `${labels.length} labels`,
    );
  }
  const onehot = new Float32Array(b * k!);
  labels.forEach((y, i) => {
    if (!Number.isInteger(y) || y < 0 || y >= k!) {
      throw new WorldError(`Label ${i} is ${y}; use a class index from 0 to ${k! - 1}`);
    }
    onehot[i * k! + y] = 1;
  });
  const logp = log(affine(softmax(logits, -1), 1, 1e-7));
  return scale(sum(mul(logp, tensor(onehot, [b, k!]))), -1 / b);
}

/**
 * The training loss: the sum over heads of each head's mean cross-entropy.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { AttributeClassifier, classifierLoss } from "./classifier.ts";
 * await getDevice();
 * const out = new AttributeClassifier().forward(randn([1, 1, 32, 32]));
 * console.log(await classifierLoss(out, [{ shape: 0, count: 1, fill: 0 }]).item());
 * ```
 */
export function classifierLoss(out: ClassifierOutput, labels: readonly ClassifierLabels[]): Tensor {
  let loss: Tensor | null = null;
  for (const h of CLASSIFIER_HEADS) {
    const l = crossEntropy(out[h], labels.map((x) => x[h]));
    loss = loss ? add(loss, l) : l;
  }
  return loss!;
}
