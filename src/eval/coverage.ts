/**
 * A colour-blind view of an image for the attribute classifier: each pixel's RGB distance from
 * the background (the per-channel median of the border pixels), divided by the largest such
 * distance in the image. On the renderer's images this is each pixel's object coverage (1 in a
 * fill's stripes or dots, `FILL_OFF_TONE` between them, fractions on anti-aliased edges), so
 * shape, count and fill can be learned without first learning to ignore 56 colour pairs.
 *
 * @module
 */
import { WorldError } from "./errors.ts";

/** Options of {@link coverageMap}. */
export interface CoverageOptions {
  /** Least divisor, so a plain or noisy background is not stretched to full coverage (default 60,
   * about half the RGB distance between two palette colours' blend and either). */
  minScale?: number;
}

// rgb: [h, w, 3] bytes -> out: [h, w] in [0, 1]
/**
 * The coverage map of an RGB image.
 *
 * @example
 * ```ts
 * import { coverageMap } from "./coverage.ts";
 * const rgb = new Uint8Array(4 * 4 * 3); // black 4x4 ...
 * rgb.set([200, 200, 200], (1 * 4 + 1) * 3); // ... with one grey pixel inside
 * console.log(coverageMap(rgb, 4, 4)[5]); // 1
 * ```
 */
export function coverageMap(
  rgb: Uint8Array,
  w: number,
  h: number,
  options: CoverageOptions = {},
): Float32Array {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 2 || h < 2 || rgb.length !== w * h * 3) {
    throw new WorldError(
      `The image is ${rgb.length} bytes for ${w}x${h}; pass RGB bytes of at least 2x2 pixels`,
    );
  }
  const border: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (y === 0 || y === h - 1 || x === 0 || x === w - 1) border.push(y * w + x);
    }
  }
  const bg = [0, 1, 2].map((c) => {
    const v = border.map((i) => rgb[i * 3 + c]!).sort((a, b) => a - b);
    return v[v.length >> 1]!;
  });
  const out = new Float32Array(w * h);
  let most = options.minScale ?? 60;
  for (let i = 0; i < w * h; i++) {
    const d = Math.hypot(rgb[i * 3]! - bg[0]!, rgb[i * 3 + 1]! - bg[1]!, rgb[i * 3 + 2]! - bg[2]!);
    out[i] = d;
    if (d > most) most = d;
  }
  for (let i = 0; i < w * h; i++) out[i] = out[i]! / most;
  return out;
}
