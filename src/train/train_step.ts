/**
 * The training step, independent of the adapter: given the trainable tensors' optimizer and a
 * denoiser closure (the U-Net with its adapters), one call per micro-batch draws timesteps and
 * noise (offset, multi-resolution), builds the epsilon or v target, weights the per-sample MSE by
 * min-SNR-gamma and the prior-loss weights, back-propagates, and every
 * `gradientAccumulationSteps` calls takes an AdamW step at the scheduled learning rate. The loss
 * is summed on the GPU: one readback per log interval gives its mean and, since NaN and Inf
 * propagate through the sum, whether any step went non-finite.
 *
 * @module
 */
import type { AdamW } from "../ops/adamw.ts";
import { backward, detach } from "../ops/autograd.ts";
import { add } from "../ops/binary.ts";
import { tensor, zeros } from "../ops/creation.ts";
import { mseLoss } from "../ops/mse_loss.ts";
import type { Generator } from "../ops/rng.ts";
import { scope, untrack } from "../ops/scope.ts";
import type { Tensor } from "../ops/tensor.ts";
import { scale } from "../ops/unary.ts";
import {
  addNoise,
  minSnrWeights,
  randomTimesteps,
  trainingNoise,
  trainingTarget,
} from "../schedule/training.ts";
import type { NoiseSchedule } from "../schedule/schedules.ts";
import { ConfigError } from "./errors.ts";
import { multiresNoise } from "./multires_noise.ts";

/** The model under training: noisy latents, timesteps and text context to its prediction. */
// noisy: [B, C, H, W], timesteps: B, context: [B, T, D] -> [B, C, H, W]
export type Denoiser = (noisy: Tensor, timesteps: number[], context: Tensor) => Tensor;

/** Settings of the step (kohya's flags in camelCase). */
export interface TrainStepOptions {
  /** `epsilon` (default) or `v_prediction` (`--v-parameterization`). */
  prediction?: "epsilon" | "v_prediction";
  /** `--noise-offset` (default 0). */
  noiseOffset?: number;
  /** `--multires-noise-iterations` (default 0: off). */
  multiresNoiseIterations?: number;
  /** `--multires-noise-discount` (default 0.3). */
  multiresNoiseDiscount?: number;
  /** `--min-snr-gamma` (default off). */
  minSnrGamma?: number;
  /** `--min-timestep` (default 0). */
  minTimestep?: number;
  /** `--max-timestep`, exclusive (default 1000). */
  maxTimestep?: number;
  /** `--gradient-accumulation-steps` (default 1). */
  gradientAccumulationSteps?: number;
  /** The noise schedule (default SD 1.x). */
  schedule?: NoiseSchedule;
}

/** What `drainLoss` reports. */
export interface LossReport {
  /** Mean loss over the micro-batches since the last drain (NaN when none). */
  mean: number;
  /** Micro-batches in it. */
  count: number;
  /** False when any of them had a NaN or infinite loss. */
  finite: boolean;
}

/** The stepper's position, for saved state. */
export interface StepperState {
  /** Optimizer steps taken. */
  step: number;
  /** Micro-batches into the current accumulation. */
  micro: number;
  /** Counters used from the noise stream. */
  generatorOffset: number;
}

/**
 * Runs training steps.
 *
 * @example
 * ```ts
 * import { AdamW, Generator, getDevice, randn, UNet2DConditionModel } from "../../mod.ts";
 * import { TrainStepper } from "./train_step.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel({ blockOutChannels: [32, 64], layersPerBlock: 1, attentionHeads: 2, crossAttentionDim: 32, normNumGroups: 8 });
 * const opt = new AdamW(unet.trainableParameters().map((p) => p.value), { lr: 1e-4 });
 * const stepper = new TrainStepper(opt, (x, t, c) => unet.forward(x, t, c), new Generator(1), () => 1e-4);
 * stepper.run(randn([1, 4, 8, 8]), randn([1, 5, 32]), [1]);
 * console.log(await stepper.drainLoss());
 * ```
 */
export class TrainStepper {
  readonly #opt: AdamW;
  readonly #denoise: Denoiser;
  readonly #gen: Generator;
  readonly #lrAt: (step: number) => number;
  readonly #o: TrainStepOptions;
  readonly #accum: number;
  #step = 0;
  #micro = 0;
  #lossSum: Tensor;
  #lossCount = 0;

  /** `lrAt(step)` gives the learning rate of optimizer step `step` (0-based). */
  constructor(
    optimizer: AdamW,
    denoiser: Denoiser,
    generator: Generator,
    lrAt: (step: number) => number,
    options: TrainStepOptions = {},
  ) {
    this.#opt = optimizer;
    this.#denoise = denoiser;
    this.#gen = generator;
    this.#lrAt = lrAt;
    this.#o = options;
    this.#accum = options.gradientAccumulationSteps ?? 1;
    if (!Number.isInteger(this.#accum) || this.#accum < 1) {
      throw new ConfigError(
        `gradient_accumulation_steps must be a whole number >= 1, got ${this.#accum}`,
      );
    }
    this.#lossSum = zeros([]);
    untrack(this.#lossSum);
  }

  /** Optimizer steps taken. */
  get step(): number {
    return this.#step;
  }

  #noise(shape: readonly number[]): Tensor {
    const it = this.#o.multiresNoiseIterations ?? 0;
    if (it > 0) {
      const values = multiresNoise(shape, this.#gen, {
        iterations: it,
        discount: this.#o.multiresNoiseDiscount ?? 0.3,
        offset: this.#o.noiseOffset ?? 0,
      });
      return tensor(values, shape);
    }
    return trainingNoise(shape, { generator: this.#gen, offset: this.#o.noiseOffset ?? 0 });
  }

  // latents: [B, C, H, W], context: [B, T, D], lossWeights: B
  /**
   * One micro-batch; returns true when it completed an optimizer step. `lossWeights` are the
   * per-sample weights from the data (prior-loss weight for reg images, else 1). `flush` steps
   * the optimizer even when the accumulation is not full (the epoch's last batch, as
   * accelerate's end-of-dataloader sync).
   */
  run(
    latents: Tensor,
    context: Tensor,
    lossWeights: readonly number[],
    flush = false,
  ): boolean {
    const B = latents.shape[0]!;
    if (lossWeights.length !== B) {
      throw new ConfigError(`Got ${lossWeights.length} loss weights for a batch of ${B}`);
    }
    const sched = this.#o.schedule ? { schedule: this.#o.schedule } : {};
    const prediction = this.#o.prediction ?? "epsilon";
    scope(() => {
      const timesteps = randomTimesteps(B, this.#gen, {
        ...sched,
        min: this.#o.minTimestep ?? 0,
        ...(this.#o.maxTimestep !== undefined ? { max: this.#o.maxTimestep } : {}),
      });
      const noise = this.#noise(latents.shape);
      const noisy = addNoise(latents, noise, timesteps, sched);
      const target = trainingTarget(latents, noise, timesteps, { ...sched, prediction });
      const snrW = this.#o.minSnrGamma === undefined
        ? new Float64Array(B).fill(1)
        : minSnrWeights(timesteps, { ...sched, prediction, gamma: this.#o.minSnrGamma });
      const w = tensor(Array.from(snrW, (v, i) => v * lossWeights[i]! / this.#accum), [B]);
      const pred = this.#denoise(noisy, timesteps, context);
      const loss = mseLoss(pred, target, { weight: w });
      const logged = scale(detach(loss), this.#accum);
      const sum = add(this.#lossSum, logged);
      untrack(sum);
      this.#lossSum.dispose();
      this.#lossSum = sum;
      backward(loss);
    });
    this.#lossCount++;
    if (++this.#micro < this.#accum && !flush) return false;
    this.#opt.step(this.#lrAt(this.#step));
    this.#opt.zeroGrad();
    this.#micro = 0;
    this.#step++;
    return true;
  }

  /** Reads and resets the loss sum (one readback). */
  async drainLoss(): Promise<LossReport> {
    const sum = await this.#lossSum.item();
    const count = this.#lossCount;
    this.#lossSum.dispose();
    this.#lossSum = zeros([]);
    untrack(this.#lossSum);
    this.#lossCount = 0;
    return { mean: count ? sum / count : NaN, count, finite: Number.isFinite(sum) };
  }

  /** The position to save (call at an optimizer-step boundary, after `drainLoss`). */
  state(): StepperState {
    return { step: this.#step, micro: this.#micro, generatorOffset: this.#gen.offset };
  }

  /** Continues from a saved position (the optimizer's moments are restored separately). */
  loadState(s: StepperState): void {
    if (s.micro !== 0) {
      throw new ConfigError("A training state must be saved at an optimizer step boundary");
    }
    this.#step = s.step;
    this.#micro = 0;
    this.#gen.offset = s.generatorOffset;
  }

  /** Frees the loss accumulator. */
  dispose(): void {
    this.#lossSum.dispose();
  }
}
