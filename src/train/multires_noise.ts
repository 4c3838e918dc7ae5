/**
 * Training noise on the CPU for kohya's multi-resolution ("pyramid") noise
 * (`custom_train_functions.pyramid_noise_like`): normal noise, plus the offset term, plus for each
 * level i a normal field of size `H / r^i` (r uniform in [2, 4)) upsampled bilinearly and scaled
 * by `discount^i`, all divided by the result's standard deviation. Normals come from the tensor
 * layer's counter-based stream (`normalRef`, bit-exact with `randn` on the GPU), so a seed
 * reproduces them.
 *
 * @module
 */
import { type Generator, normalRef, uniformRef } from "../ops/rng.ts";
import { ConfigError } from "./errors.ts";

function normals(n: number, g: Generator): Float64Array {
  const o = g.take(n);
  return Float64Array.from({ length: n }, (_, i) => normalRef(g.seed, o, i));
}

// x: [N, h, w] -> [N, H, W]
/** Bilinear resize with PyTorch's `align_corners=False` rule (each plane on its own). */
export function bilinearResize(
  x: ArrayLike<number>,
  planes: number,
  h: number,
  w: number,
  H: number,
  W: number,
): Float64Array {
  const out = new Float64Array(planes * H * W);
  const src = (d: number, n: number, N: number): [number, number, number] => {
    const s = Math.max(0, (d + 0.5) * (n / N) - 0.5);
    const i0 = Math.min(Math.floor(s), n - 1);
    return [i0, Math.min(i0 + 1, n - 1), s - i0];
  };
  for (let y = 0; y < H; y++) {
    const [y0, y1, ly] = src(y, h, H);
    for (let x1 = 0; x1 < W; x1++) {
      const [x0, xx1, lx] = src(x1, w, W);
      for (let p = 0; p < planes; p++) {
        const b = p * h * w;
        const top = x[b + y0 * w + x0]! * (1 - lx) + x[b + y0 * w + xx1]! * lx;
        const bot = x[b + y1 * w + x0]! * (1 - lx) + x[b + y1 * w + xx1]! * lx;
        out[p * H * W + y * W + x1] = top * (1 - ly) + bot * ly;
      }
    }
  }
  return out;
}

/** Options of `multiresNoise`. */
export interface MultiresNoiseOptions {
  /** Pyramid levels (kohya's `--multires_noise_iterations`; 6 to 10 suggested). */
  iterations: number;
  /** Weight decay per level (`--multires_noise_discount`, default 0.3). */
  discount?: number;
  /** Noise offset added before the pyramid (`--noise_offset`, default 0). */
  offset?: number;
}

// shape: [B, C, H, W] -> [B, C, H, W] values
/**
 * Multi-resolution training noise of `shape`, as float32 values to upload.
 *
 * @example
 * ```ts
 * import { Generator } from "../ops/rng.ts";
 * import { multiresNoise } from "./multires_noise.ts";
 * const n = multiresNoise([1, 4, 8, 8], new Generator(1), { iterations: 6 });
 * console.log(n.length); // 256
 * ```
 */
export function multiresNoise(
  shape: readonly number[],
  generator: Generator,
  options: MultiresNoiseOptions,
): Float32Array {
  if (shape.length !== 4) {
    throw new ConfigError(`Multires noise needs a [B, C, H, W] shape, got [${shape.join(", ")}]`);
  }
  if (!Number.isInteger(options.iterations) || options.iterations < 1) {
    throw new ConfigError(
      `multires_noise_iterations must be a whole number >= 1, got ${options.iterations}`,
    );
  }
  const [B, C, H, W] = shape as [number, number, number, number];
  const planes = B * C, n = planes * H * W;
  const noise = normals(n, generator);
  const offset = options.offset ?? 0;
  if (offset !== 0) {
    const o = normals(planes, generator);
    for (let i = 0; i < n; i++) noise[i]! += offset * o[Math.floor(i / (H * W))]!;
  }
  const discount = options.discount ?? 0.3;
  for (let i = 0; i < options.iterations; i++) {
    const r = uniformRef(generator.seed, generator.take(1)) * 2 + 2;
    const hn = Math.max(1, Math.floor(H / r ** i)), wn = Math.max(1, Math.floor(W / r ** i));
    const up = bilinearResize(normals(planes * hn * wn, generator), planes, hn, wn, H, W);
    const d = discount ** i;
    for (let j = 0; j < n; j++) noise[j]! += up[j]! * d;
    if (hn === 1 || wn === 1) break;
  }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += noise[i]!;
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (noise[i]! - mean) ** 2;
  const std = Math.sqrt(ss / Math.max(1, n - 1)); // torch.std is unbiased
  return Float32Array.from(noise, (v) => v / std);
}
