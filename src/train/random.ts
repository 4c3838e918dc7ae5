/**
 * A seeded CPU random stream for data order and caption augmentation. It is counter based (the
 * tensor layer's `uniformRef` hash), so its whole state is `{ seed, offset }`: saving and restoring
 * those two numbers resumes the exact sequence.
 *
 * @module
 */
import { uniformRef } from "../ops/rng.ts";
import { ConfigError } from "./errors.ts";

/** The serializable position of a `Rng`. */
export interface RngState {
  /** The seed (a whole number >= 0). */
  seed: number;
  /** Draws made so far. */
  offset: number;
}

/**
 * A reproducible uniform stream with helpers for shuffling and choosing.
 *
 * @example
 * ```ts
 * import { Rng } from "./random.ts";
 * const rng = new Rng(42);
 * const order = rng.shuffle([0, 1, 2, 3]);
 * const again = Rng.fromState({ seed: 42, offset: 0 }).shuffle([0, 1, 2, 3]);
 * console.log(order.join() === again.join()); // true
 * ```
 */
export class Rng {
  /** The seed. */
  readonly seed: number;
  /** Draws made so far. */
  offset = 0;

  /** Creates a stream for `seed`. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new ConfigError(`A seed must be a whole number >= 0, got ${seed}`);
    }
    this.seed = seed;
  }

  /** A stream continuing from a saved state. */
  static fromState(state: RngState): Rng {
    const r = new Rng(state.seed);
    r.offset = state.offset;
    return r;
  }

  /** The position to save. */
  state(): RngState {
    return { seed: this.seed, offset: this.offset };
  }

  /** A uniform number in [0, 1) with 24 random bits. */
  next(): number {
    return uniformRef(this.seed, this.offset++ % 2 ** 32);
  }

  /** A whole number in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.next() * n));
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
