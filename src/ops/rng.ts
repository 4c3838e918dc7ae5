/**
 * Seeded, counter-based random tensors: uniform, normal and dropout masks. A seed gives the same
 * bits on every adapter (integer hashing only); normals then go through the adapter's `log`/`cos`.
 *
 * @module
 */
import { cachedKernel } from "../wgsl/builder.ts";
import { EW_GROUP } from "../wgsl/elementwise.ts";
import { randomKernel, type RandomKind } from "../wgsl/rng.ts";
import { type DType, numel, Tensor } from "./tensor.ts";
import { dispatch, grid1d } from "./runtime.ts";
import { ArgumentError } from "./errors.ts";

/**
 * A random stream: a seed and a counter that advances with every draw.
 *
 * @example
 * ```ts
 * import { Generator, getDevice, randn } from "../../mod.ts";
 * await getDevice();
 * const g = new Generator(1);
 * const noise = randn([2, 4, 8, 8], { generator: g });
 * console.log(noise.shape, g.offset);
 * ```
 */
export class Generator {
  /** The seed (an integer; the low 32 bits key the hash, the next 21 the stream). */
  readonly seed: number;
  /** Counters used so far. */
  offset = 0;
  /** Creates a stream for `seed`. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new ArgumentError(`A seed must be a whole number >= 0, got ${seed}`);
    }
    this.seed = seed;
  }
  /** Reserves `count` counters and returns the first. */
  take(count: number): number {
    const o = this.offset;
    this.offset += count;
    if (this.offset > 2 ** 32) {
      throw new ArgumentError("This generator has used 2^32 counters; start a new seed");
    }
    return o;
  }
}

let defaultGenerator = new Generator(0);

/** Reseeds the default generator (used when no generator is passed). */
export function manualSeed(seed: number): void {
  defaultGenerator = new Generator(seed);
}

/** Options of the random factories. */
export interface RandomOptions {
  /** The stream to draw from (default: the process-wide one, see `manualSeed`). */
  generator?: Generator;
  /** Storage dtype (default f32). */
  dtype?: DType;
  /** Whether the new tensor is a leaf that collects gradients. */
  requiresGrad?: boolean;
}

function draw(
  kind: RandomKind,
  shape: readonly number[],
  a: number,
  b: number,
  o: RandomOptions,
): Tensor {
  const g = o.generator ?? defaultGenerator;
  const dtype = o.dtype ?? "f32";
  const n = numel(shape);
  const offset = g.take(kind === "normal" ? 2 * n : n);
  const y = new Tensor(shape, dtype, undefined, o.requiresGrad ?? false);
  if (n === 0) return y;
  const k = cachedKernel(`random ${kind} ${dtype}`, () => randomKernel(kind, dtype));
  const seedLo = g.seed % 2 ** 32, seedHi = Math.floor(g.seed / 2 ** 32);
  dispatch(k, [y.binding], [n, seedLo, seedHi, offset, a, b], grid1d(Math.ceil(n / EW_GROUP)));
  return y;
}

/** Uniform values in [low, high) (default [0, 1)). */
export function rand(
  shape: readonly number[],
  options: RandomOptions & { low?: number; high?: number } = {},
): Tensor {
  return draw("uniform", shape, options.low ?? 0, options.high ?? 1, options);
}

/** Normal values (default mean 0, std 1), Box-Muller on two uniforms per element. */
export function randn(
  shape: readonly number[],
  options: RandomOptions & { mean?: number; std?: number } = {},
): Tensor {
  return draw("normal", shape, options.mean ?? 0, options.std ?? 1, options);
}

/** A dropout mask: 0 with probability `p`, else `1 / (1 - p)`. */
export function dropoutMask(
  shape: readonly number[],
  p: number,
  options: RandomOptions = {},
): Tensor {
  if (!(p >= 0 && p < 1)) {
    throw new ArgumentError(`Dropout probability must be in [0, 1), got ${p}`);
  }
  return draw("dropout", shape, p, 1 / (1 - p), options);
}

function mix(v: number): number {
  let x = v >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** CPU reference of the uniform draw for counter `c` (bit-exact with the kernel). */
export function uniformRef(seed: number, c: number): number {
  const lo = seed % 2 ** 32, hi = Math.floor(seed / 2 ** 32);
  const h = mix((c >>> 0) ^ mix((lo ^ mix((hi + 0x9e3779b9) >>> 0)) >>> 0));
  return (h >>> 8) * 5.9604644775390625e-8;
}

/** CPU reference of `randn` element `i` of a draw that started at counter `offset`. */
export function normalRef(seed: number, offset: number, i: number): number {
  const u1 = uniformRef(seed, offset + 2 * i) + 5.9604644775390625e-8;
  const u2 = uniformRef(seed, offset + 2 * i + 1);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}
