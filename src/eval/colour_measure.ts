/**
 * Colour attributes measured from pixels. The background is the palette colour most border
 * pixels are nearest to. Every other pixel is read as a blend `bg + a (c - bg)` of the
 * background and some palette colour `c` (as the renderer makes anti-aliased edges and fill
 * off-tones): the colour whose blend line passes closest to the pixel gets a vote weighted by
 * `a`, and the object colour is the one with the most weight. Pixels near the background or far
 * from every blend line (noise, a third colour) do not vote.
 *
 * @module
 */
import { type ColourName, COLOURS, nearestColour, PALETTE } from "./palette.ts";
import { WorldError } from "./errors.ts";

/** Options of {@link measureColours}. */
export interface ColourMeasureOptions {
  /** Least RGB distance from the background colour for a pixel to vote (default 40). */
  minContrast?: number;
  /** Largest RGB distance from the nearest blend line for a pixel to vote (default 40). */
  maxResidual?: number;
}

/** What {@link measureColours} found. */
export interface ColourMeasure {
  /** The background's palette colour. */
  background: ColourName;
  /** The dominant non-background palette colour, or null when no pixel votes. */
  object: ColourName | null;
  /** The object colour's coverage: its summed blend weights over the pixel count. */
  objectShare: number;
}

// rgb: [h, w, 3] bytes
/**
 * Measures the background and dominant object colour of an RGB image.
 *
 * @example
 * ```ts
 * import { generateScene, measureColours, renderScene } from "./mod.ts";
 * const scene = generateScene(1, 0);
 * const m = measureColours(renderScene(scene), 32, 32);
 * console.log(m.object === scene.colour, m.background === scene.background); // true true
 * ```
 */
export function measureColours(
  rgb: Uint8Array,
  w: number,
  h: number,
  options: ColourMeasureOptions = {},
): ColourMeasure {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 2 || h < 2 || rgb.length !== w * h * 3) {
    throw new WorldError(
      `The image is ${rgb.length} bytes for ${w}x${h}; pass RGB bytes of at least 2x2 pixels`,
    );
  }
  const minContrast2 = (options.minContrast ?? 40) ** 2;
  const maxResidual2 = (options.maxResidual ?? 40) ** 2;
  const votes = new Map<ColourName, number>();
  const vote = (c: ColourName, weight: number) => votes.set(c, (votes.get(c) ?? 0) + weight);
  const border = (i: number) =>
    vote(nearestColour(rgb[i * 3]!, rgb[i * 3 + 1]!, rgb[i * 3 + 2]!).name, 1);
  for (let x = 0; x < w; x++) {
    border(x);
    border((h - 1) * w + x);
  }
  for (let y = 1; y < h - 1; y++) {
    border(y * w);
    border(y * w + w - 1);
  }
  const background = mode(votes)!;
  votes.clear();
  const bg = PALETTE[background];
  const candidates = COLOURS.filter((c) => c !== background).map((name) => {
    const d = PALETTE[name].map((v, k) => v - bg[k]!);
    return { name, d, d2: d[0]! ** 2 + d[1]! ** 2 + d[2]! ** 2 };
  });
  for (let i = 0; i < w * h; i++) {
    const p0 = rgb[i * 3]! - bg[0], p1 = rgb[i * 3 + 1]! - bg[1], p2 = rgb[i * 3 + 2]! - bg[2];
    if (p0 * p0 + p1 * p1 + p2 * p2 < minContrast2) continue;
    let best: ColourName | null = null, bestResidual = maxResidual2, bestA = 0;
    for (const { name, d, d2 } of candidates) {
      const a = Math.min(1, Math.max(0, (p0 * d[0]! + p1 * d[1]! + p2 * d[2]!) / d2));
      const residual = (p0 - a * d[0]!) ** 2 + (p1 - a * d[1]!) ** 2 + (p2 - a * d[2]!) ** 2;
      if (residual <= bestResidual) {
        best = name;
        bestResidual = residual;
        bestA = a;
      }
    }
    if (best) vote(best, bestA);
  }
  const object = mode(votes);
  return { background, object, objectShare: object ? votes.get(object)! / (w * h) : 0 };
}

// The most voted colour, ties to the earlier palette colour; null when there are no votes.
function mode(votes: Map<ColourName, number>): ColourName | null {
  let best: ColourName | null = null, most = 0;
  for (const c of COLOURS) {
    const v = votes.get(c) ?? 0;
    if (v > most) {
      most = v;
      best = c;
    }
  }
  return best;
}
