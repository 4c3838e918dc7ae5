/**
 * Colour attributes measured from pixels: the background is the palette colour most border
 * pixels are nearest to; the object colour is the palette colour (other than the background)
 * that most of the remaining clean pixels are nearest to. A pixel is clean when it lies within
 * `maxDistance` of its nearest palette colour, which leaves out anti-aliased edges (blends of
 * two colours lie at least 111 from every palette colour but those two) and a fill's off-tone.
 *
 * @module
 */
import { type ColourName, COLOURS, nearestColour } from "./palette.ts";
import { WorldError } from "./errors.ts";

/** Options of {@link measureColours}. */
export interface ColourMeasureOptions {
  /** Largest RGB distance from a palette colour for a pixel to count (default 80). */
  maxDistance?: number;
}

/** What {@link measureColours} found. */
export interface ColourMeasure {
  /** The background's palette colour. */
  background: ColourName;
  /** The dominant non-background palette colour, or null when no clean pixel has one. */
  object: ColourName | null;
  /** Share of all pixels that are clean and of the object colour. */
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
  const maxD2 = (options.maxDistance ?? 80) ** 2;
  const nearest = (i: number) => nearestColour(rgb[i * 3]!, rgb[i * 3 + 1]!, rgb[i * 3 + 2]!);
  const votes = new Map<ColourName, number>();
  const vote = (c: ColourName) => votes.set(c, (votes.get(c) ?? 0) + 1);
  for (let x = 0; x < w; x++) {
    vote(nearest(x).name);
    vote(nearest((h - 1) * w + x).name);
  }
  for (let y = 1; y < h - 1; y++) {
    vote(nearest(y * w).name);
    vote(nearest(y * w + w - 1).name);
  }
  const background = mode(votes)!;
  votes.clear();
  for (let i = 0; i < w * h; i++) {
    const n = nearest(i);
    if (n.name !== background && n.distance2 <= maxD2) vote(n.name);
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
