/**
 * The second pretraining stage's step: the frozen VAE encodes the images and draws latents (times
 * its scaling factor), the text encoder encodes the captions with gradients on, and
 * {@link TrainStepper} trains both with the U-Net on the SD 1.x schedule's epsilon target.
 *
 * @module
 */
import type { AdamW } from "../ops/adamw.ts";
import { noGrad } from "../ops/autograd.ts";
import type { Generator } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import type { CLIPTextModel } from "../nn/clip.ts";
import type { UNet2DConditionModel } from "../nn/unet.ts";
import type { AutoencoderKL } from "../nn/vae.ts";
import {
  type LossReport,
  type StepperState,
  type TrainStepOptions,
  TrainStepper,
} from "./train_step.ts";

/** The three models of the stage (the VAE frozen). */
export interface UnetStageModels {
  /** Encodes the images (frozen). */
  vae: AutoencoderKL;
  /** Trained with the U-Net. */
  textEncoder: CLIPTextModel;
  /** The denoiser. */
  unet: UNet2DConditionModel;
}

/**
 * Runs text-encoder + U-Net steps.
 *
 * @example
 * ```ts ignore
 * const s = new UnetStageStepper(models, optimizer, new Generator(7), () => 3e-4);
 * s.run(images, ids, [4, 77]);
 * console.log(await s.drainLoss());
 * ```
 */
export class UnetStageStepper {
  readonly #m: UnetStageModels;
  readonly #gen: Generator;
  readonly #stepper: TrainStepper;

  /** `lrAt(step)` gives the learning rate of step `step` (0-based); `options` the loss's. */
  constructor(
    models: UnetStageModels,
    optimizer: AdamW,
    generator: Generator,
    lrAt: (step: number) => number,
    options: TrainStepOptions = {},
  ) {
    this.#m = models;
    this.#gen = generator;
    this.#stepper = new TrainStepper(
      optimizer,
      (x, t, c) => models.unet.forward(x, t, c),
      generator,
      lrAt,
      options,
    );
  }

  /** Steps taken. */
  get step(): number {
    return this.#stepper.step;
  }

  // images: [B, 3, H, W] in [-1, 1], ids: [B, T] row-major
  /** One optimizer step on images and their token ids. */
  run(images: Tensor, ids: readonly number[], shape: readonly [number, number]): void {
    const vae = this.#m.vae;
    scope(() => {
      const latents = noGrad(() =>
        scale(vae.sample(vae.encode(images), { generator: this.#gen }), vae.scalingFactor)
      );
      const context = this.#m.textEncoder.forward(ids, shape);
      this.#stepper.run(latents, context, new Array(shape[0]).fill(1));
    });
  }

  /** Reads and resets the loss sum (one readback). */
  drainLoss(): Promise<LossReport> {
    return this.#stepper.drainLoss();
  }

  /** The position to save. */
  state(): StepperState {
    return this.#stepper.state();
  }

  /** Continues from a saved position. */
  loadState(s: StepperState): void {
    this.#stepper.loadState(s);
  }

  /** Frees the loss accumulator. */
  dispose(): void {
    this.#stepper.dispose();
  }
}
