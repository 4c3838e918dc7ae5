/**
 * Timestep bands: the statistics of each batch-norm layer are kept per band of the diffusion
 * timestep t, and the t of the current forward selects the band.
 *
 * @module
 */
import { AdabnError } from "./errors.ts";

/**
 * Bands of t given by ascending boundaries: band k holds `boundaries[k] <= t < boundaries[k+1]`
 * (the last band also holds its upper boundary). `[0, 1000]` (the default) is one band over SD's
 * whole schedule; `[0, 250, 500, 750, 1000]` four equal bands.
 *
 * @example
 * ```ts
 * import { TimestepBands } from "./bands.ts";
 * const bands = new TimestepBands([0, 250, 500, 750, 1000]);
 * console.log(bands.count, bands.bandOf(0), bands.bandOf(260), bands.bandOf(999)); // 4 0 1 3
 * ```
 */
export class TimestepBands {
  /** The ascending boundaries (count + 1 of them). */
  readonly boundaries: readonly number[];

  /** Checks the boundaries: at least two, finite, strictly ascending. */
  constructor(boundaries: readonly number[] = [0, 1000]) {
    const ok = boundaries.length >= 2 && boundaries.every(Number.isFinite) &&
      boundaries.every((b, i) => i === 0 || b > boundaries[i - 1]!);
    if (!ok) {
      throw new AdabnError(
        `Timestep band boundaries must be at least two finite numbers in ascending order, got ` +
          `[${boundaries.join(", ")}]; pass e.g. [0, 500, 1000]`,
      );
    }
    this.boundaries = Object.freeze([...boundaries]);
  }

  /** Number of bands. */
  get count(): number {
    return this.boundaries.length - 1;
  }

  /** The band holding timestep `t`; throws {@link AdabnError} when t is outside every band. */
  bandOf(t: number): number {
    const b = this.boundaries;
    if (!(t >= b[0]! && t <= b[b.length - 1]!)) {
      throw new AdabnError(
        `Timestep ${t} is outside the AdaBN bands [${b[0]}, ${b[b.length - 1]}]; pass a ` +
          "timestep inside them, or attach with boundaries that cover it",
      );
    }
    let k = 0;
    while (k < this.count - 1 && t >= b[k + 1]!) k++;
    return k;
  }
}
