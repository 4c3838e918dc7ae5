/**
 * The training side: forward noising at per-sample timesteps, velocity and loss targets, min-SNR
 * loss weights, offset noise, and random timesteps and noise from the seeded RNG.
 *
 * @module
 */
import type { Tensor } from "../ops/tensor.ts";
import { type Generator, randn, uniformRef } from "../ops/rng.ts";
import { add, mul } from "../ops/binary.ts";
import { tensor } from "../ops/creation.ts";
import { affine } from "../ops/unary.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import { createSchedule, type NoiseSchedule } from "./schedules.ts";
import { type Prediction, PREDICTIONS } from "./sampler.ts";
import { checkName } from "./schedules.ts";

let sdSchedule: NoiseSchedule | undefined;
function defaultSchedule(s: NoiseSchedule | undefined): NoiseSchedule {
  return s ?? (sdSchedule ??= createSchedule());
}

/** Options naming the schedule (default SD 1.x). */
export interface ScheduleChoice {
  /** The training schedule (default SD 1.x). */
  schedule?: NoiseSchedule;
}

function alphas(
  x: Tensor,
  timesteps: ArrayLike<number>,
  s: NoiseSchedule,
  what: string,
): Float64Array {
  if (x.shape.length < 1 || timesteps.length !== x.shape[0]) {
    throw new ShapeError(
      `${what} got ${timesteps.length} timesteps for a batch of shape ${fmtShape(x.shape)}; ` +
        "give one timestep per sample",
    );
  }
  return Float64Array.from({ length: timesteps.length }, (_, i) => s.alphaCumprod(timesteps[i]!));
}

/** A `[B, 1, 1, ...]` tensor of per-sample coefficients that broadcasts against `like`. */
export function perSample(values: ArrayLike<number>, like: Tensor): Tensor {
  return tensor(values, [values.length, ...like.shape.slice(1).map(() => 1)], {
    dtype: like.dtype,
  });
}

function weighted(a: Tensor, ca: Float64Array, b: Tensor, cb: Float64Array): Tensor {
  if (a.shape.join() !== b.shape.join()) {
    throw new ShapeError(
      `Samples ${fmtShape(a.shape)} and noise ${fmtShape(b.shape)} must have one shape`,
    );
  }
  using ta = perSample(ca, a);
  using tb = perSample(cb, b);
  using pa = mul(a, ta);
  using pb = mul(b, tb);
  return add(pa, pb);
}

// x0: [B, ...], noise: [B, ...], timesteps: B -> [B, ...]
/**
 * Forward noising `x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise` with each sample's own timestep
 * (diffusers' `DDPMScheduler.add_noise`). Gradients flow to `x0` and `noise`.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../mod.ts";
 * import { addNoise } from "./training.ts";
 * await getDevice();
 * const x0 = randn([2, 4, 8, 8]), noise = randn([2, 4, 8, 8]);
 * console.log(addNoise(x0, noise, [10, 900]).shape);
 * ```
 */
export function addNoise(
  x0: Tensor,
  noise: Tensor,
  timesteps: ArrayLike<number>,
  options: ScheduleChoice = {},
): Tensor {
  const ab = alphas(x0, timesteps, defaultSchedule(options.schedule), "addNoise()");
  return weighted(x0, ab.map(Math.sqrt), noise, ab.map((a) => Math.sqrt(1 - a)));
}

// x0: [B, ...], noise: [B, ...], timesteps: B -> [B, ...]
/** The velocity `v = sqrt(ab_t) noise - sqrt(1 - ab_t) x0` (Salimans & Ho 2022, sec. 4). */
export function velocity(
  x0: Tensor,
  noise: Tensor,
  timesteps: ArrayLike<number>,
  options: ScheduleChoice = {},
): Tensor {
  const ab = alphas(x0, timesteps, defaultSchedule(options.schedule), "velocity()");
  return weighted(noise, ab.map(Math.sqrt), x0, ab.map((a) => -Math.sqrt(1 - a)));
}

/** Options of `trainingTarget`. */
export interface TargetOptions extends ScheduleChoice {
  /** What the model predicts (default `epsilon`). */
  prediction?: Prediction | string;
}

/**
 * The loss target: the noise itself for epsilon models (the same tensor, not a copy), the
 * velocity for v-prediction models (a new tensor).
 */
export function trainingTarget(
  x0: Tensor,
  noise: Tensor,
  timesteps: ArrayLike<number>,
  options: TargetOptions = {},
): Tensor {
  const p = checkName(options.prediction ?? "epsilon", PREDICTIONS, "prediction type");
  return p === "epsilon" ? noise : velocity(x0, noise, timesteps, options);
}

/** Signal-to-noise ratio `ab / (1 - ab)` of each timestep. */
export function snr(timesteps: ArrayLike<number>, options: ScheduleChoice = {}): Float64Array {
  const s = defaultSchedule(options.schedule);
  return Float64Array.from({ length: timesteps.length }, (_, i) => {
    const a = s.alphaCumprod(timesteps[i]!);
    return a / (1 - a);
  });
}

/** Options of `minSnrWeights`. */
export interface MinSnrOptions extends TargetOptions {
  /** The clamp `gamma` (default 5, the paper's choice). */
  gamma?: number;
}

/**
 * Min-SNR-gamma loss weights (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
 * Weighting Strategy"), for an MSE on the model's own target: epsilon `min(SNR, gamma) / SNR`,
 * v `min(SNR, gamma) / (SNR + 1)`.
 *
 * @example
 * ```ts
 * import { minSnrWeights } from "./training.ts";
 * console.log(minSnrWeights([0, 500, 999], { gamma: 5 }));
 * ```
 */
export function minSnrWeights(
  timesteps: ArrayLike<number>,
  options: MinSnrOptions = {},
): Float64Array {
  const gamma = options.gamma ?? 5;
  if (!(gamma > 0)) throw new ArgumentError(`Min-SNR gamma must be > 0, got ${gamma}`);
  const p = checkName(options.prediction ?? "epsilon", PREDICTIONS, "prediction type");
  return snr(timesteps, options).map((r) => Math.min(r, gamma) / (p === "epsilon" ? r : r + 1));
}

/** Options of `randomTimesteps`. */
export interface TimestepDrawOptions extends ScheduleChoice {
  /** Smallest timestep (default 0). */
  min?: number;
  /** One past the largest timestep (default the training timesteps). */
  max?: number;
}

/**
 * `batch` uniform random whole timesteps in `[min, max)` drawn from the generator's stream: the
 * same counter-based uniforms the GPU kernels draw (bit-exact CPU twin), so no readback is needed
 * and a seed reproduces them.
 */
export function randomTimesteps(
  batch: number,
  generator: Generator,
  options: TimestepDrawOptions = {},
): number[] {
  const T = defaultSchedule(options.schedule).trainSteps;
  const lo = options.min ?? 0, hi = options.max ?? T;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new ArgumentError(`A batch needs a whole number >= 1 of timesteps, got ${batch}`);
  }
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi > T || lo >= hi) {
    throw new ArgumentError(`Timestep range [${lo}, ${hi}) must be whole numbers in [0, ${T}]`);
  }
  const o = generator.take(batch);
  return Array.from(
    { length: batch },
    (_, i) => Math.min(lo + Math.floor(uniformRef(generator.seed, o + i) * (hi - lo)), hi - 1),
  );
}

/** Options of `trainingNoise`. */
export interface NoiseOptions {
  /** The random stream (default: the process-wide one). */
  generator?: Generator;
  /** Noise offset (default 0): adds `offset * randn(B, C, 1, 1)` (Guttenberg 2023). */
  offset?: number;
}

// shape: [B, C, ...] -> [B, C, ...]
/** Training noise `randn(shape) + offset * randn(B, C, 1, ...)` (offset noise). */
export function trainingNoise(shape: readonly number[], options: NoiseOptions = {}): Tensor {
  const g = options.generator ? { generator: options.generator } : {};
  const n = randn(shape, g);
  const offset = options.offset ?? 0;
  if (offset === 0) return n;
  if (shape.length < 2) {
    throw new ShapeError(`Offset noise needs a [B, C, ...] shape, got ${fmtShape(shape)}`);
  }
  using m = randn([shape[0]!, shape[1]!, ...shape.slice(2).map(() => 1)], g);
  using sm = affine(m, offset, 0);
  using nn = n;
  return add(nn, sm);
}

/** Options of `trainingBatch`. */
export interface TrainingBatchOptions extends TargetOptions {
  /** Noise offset (default 0). */
  noiseOffset?: number;
  /** Min-SNR gamma (default none: weights of 1). */
  minSnrGamma?: number;
  /** Fixed timesteps instead of random ones. */
  timesteps?: ArrayLike<number>;
}

/** Everything one training step needs; the caller disposes the tensors. */
export interface TrainingBatch {
  /** Each sample's timestep. */
  timesteps: number[];
  /** The noise. */
  noise: Tensor;
  /** The noised samples, the model's input. */
  noisy: Tensor;
  /** The loss target (for epsilon models, the `noise` tensor itself). */
  target: Tensor;
  /** Per-sample loss weights (min-SNR, or 1). */
  weights: Float64Array;
}

/**
 * Draws timesteps and noise from `generator`, noises `x0` and returns the target and the loss
 * weights: one call per training step.
 *
 * @example
 * ```ts
 * import { Generator, getDevice, randn } from "../../mod.ts";
 * import { trainingBatch } from "./training.ts";
 * await getDevice();
 * const g = new Generator(7);
 * const b = trainingBatch(randn([2, 4, 8, 8], { generator: g }), g, { minSnrGamma: 5 });
 * console.log(b.timesteps, b.weights);
 * ```
 */
export function trainingBatch(
  x0: Tensor,
  generator: Generator,
  options: TrainingBatchOptions = {},
): TrainingBatch {
  const B = x0.shape[0] ?? 0;
  const timesteps = options.timesteps
    ? Array.from(options.timesteps)
    : randomTimesteps(B, generator, options);
  const noise = trainingNoise(x0.shape, { generator, offset: options.noiseOffset ?? 0 });
  const noisy = addNoise(x0, noise, timesteps, options);
  const target = trainingTarget(x0, noise, timesteps, options);
  const weights = options.minSnrGamma === undefined
    ? new Float64Array(B).fill(1)
    : minSnrWeights(timesteps, { ...options, gamma: options.minSnrGamma });
  return { timesteps, noise, noisy, target, weights };
}

/** CPU reference of `addNoise` for one sample (float64). */
export function addNoiseRef(
  x0: ArrayLike<number>,
  noise: ArrayLike<number>,
  alphaCumprod: number,
): Float64Array {
  const a = Math.sqrt(alphaCumprod), s = Math.sqrt(1 - alphaCumprod);
  return Float64Array.from({ length: x0.length }, (_, i) => a * x0[i]! + s * noise[i]!);
}
