/**
 * Sinusoidal timestep features and diffusers' `TimestepEmbedding` MLP.
 *
 * @module
 */
import { Module } from "../module.ts";
import { silu } from "../../ops/unary.ts";
import { tensor } from "../../ops/creation.ts";
import { scope } from "../../ops/scope.ts";
import { ArgumentError } from "../../ops/errors.ts";
import type { Tensor } from "../../ops/tensor.ts";
import type { InitOptions } from "./_init.ts";
import { Linear } from "./linear.ts";

/** Options of {@link timestepFeatures}. */
export interface TimestepFeatureOptions {
  /** Put the cosines first (default true, SD's `flip_sin_to_cos`). */
  flipSinToCos?: boolean;
  /** diffusers' `downscale_freq_shift` (default 0 for SD). */
  freqShift?: number;
  /** Largest period (default 10000). */
  maxPeriod?: number;
}

// timesteps: [B] (CPU numbers) -> features: [B, dim] (CPU, float32)
/**
 * diffusers' `get_timestep_embedding` on the CPU: frequencies `exp(-ln(maxPeriod) i / (half -
 * shift))`, `i < dim/2`, features `[cos(t f), sin(t f)]` (or sin first when not flipped).
 *
 * @example
 * ```ts
 * import { timestepFeatures } from "./timestep_embedding.ts";
 * console.log(timestepFeatures([0, 999], 8).length); // 16
 * ```
 */
export function timestepFeatures(
  timesteps: ArrayLike<number>,
  dim: number,
  options: TimestepFeatureOptions = {},
): Float32Array {
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) {
    throw new ArgumentError(`Timestep features need an even width >= 2, got ${dim}`);
  }
  const half = dim / 2;
  const flip = options.flipSinToCos ?? true;
  const shift = options.freqShift ?? 0;
  const maxPeriod = options.maxPeriod ?? 10000;
  const out = new Float32Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const t = timesteps[b]!;
    if (!Number.isFinite(t)) throw new ArgumentError(`Timestep ${b} is ${t}; pass finite numbers`);
    for (let i = 0; i < half; i++) {
      // float32 like PyTorch: exponent, exp, product
      const f = Math.fround(Math.exp(Math.fround(-Math.log(maxPeriod) * i / (half - shift))));
      const a = Math.fround(t * f);
      const s = Math.sin(a), c = Math.cos(a);
      out[b * dim + i] = flip ? c : s;
      out[b * dim + half + i] = flip ? s : c;
    }
  }
  return out;
}

// features: [B, inDim] -> emb: [B, timeEmbedDim]
/**
 * diffusers' `TimestepEmbedding`: `linear_2(silu(linear_1(features)))`.
 *
 * @example
 * ```ts
 * import { getDevice, tensor } from "../../ops/mod.ts";
 * import { TimestepEmbedding, timestepFeatures } from "./timestep_embedding.ts";
 * await getDevice();
 * const emb = new TimestepEmbedding(32, 128);
 * console.log(emb.forward(tensor(timestepFeatures([10, 500], 32), [2, 32])).shape); // [2, 128]
 * ```
 */
export class TimestepEmbedding extends Module {
  /** A new MLP with random weights. */
  constructor(inDim: number, timeEmbedDim: number, options: InitOptions = {}) {
    super();
    this.addModule("linear_1", new Linear(inDim, timeEmbedDim, options));
    this.addModule("linear_2", new Linear(timeEmbedDim, timeEmbedDim, options));
  }

  /** Embeds the features. */
  forward(features: Tensor): Tensor {
    return scope(() =>
      this.child<Linear>("linear_2").forward(silu(this.child<Linear>("linear_1").forward(features)))
    );
  }
}

/** Uploads sinusoidal features of `timesteps` as a [B, dim] tensor. */
export function timestepTensor(
  timesteps: ArrayLike<number>,
  dim: number,
  options: TimestepFeatureOptions = {},
): Tensor {
  return tensor(timestepFeatures(timesteps, dim, options), [timesteps.length, dim]);
}
