/**
 * A counter-based random stream for the procedural world (CPU, integer-only): every draw is a
 * pure function of (seed, stream, counter), hashed with the same lowbias32 mixing as the GPU
 * generator (`src/wgsl/rng.ts`), so scene `i` of a seed is the same on every machine and can be
 * made without making scenes `0 .. i-1`.
 *
 * @module
 */

function mix(v: number): number {
  let x = v >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Random draws keyed by a seed and a stream number (e.g. a scene's index).
 *
 * @example
 * ```ts
 * import { CounterRandom } from "./random.ts";
 * const a = new CounterRandom(7, 3), b = new CounterRandom(7, 3);
 * console.log(a.int(100) === b.int(100)); // true
 * ```
 */
export class CounterRandom {
  #key: number;
  #counter = 0;

  /** A stream for `seed` (low 32 bits used) and `stream` (low 32 bits used). */
  constructor(seed: number, stream: number) {
    this.#key = mix((seed >>> 0) ^ mix(((stream >>> 0) + 0x9e3779b9) >>> 0));
  }

  /** 32 random bits as an unsigned integer. */
  bits(): number {
    // The second round keeps streams whose keys differ in a few low bits from being permutations
    // of one another.
    return mix((mix((this.#counter++ ^ this.#key) >>> 0) + this.#key) >>> 0);
  }

  /** Uniform in [0, 1) with 24 bits of resolution. */
  uniform(): number {
    return (this.bits() >>> 8) / 16777216;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** A whole number in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** One element of a non-empty list, each equally likely. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.uniform() < p;
  }
}
