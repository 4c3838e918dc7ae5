/**
 * The procedural world's named colours: the eight corners of the RGB cube, pulled in a little
 * from the extremes, so any two are at least 155 apart in RGB and a colour survives blur and
 * noise when measured back.
 *
 * @module
 */

/** Names of the palette's colours. */
export type ColourName =
  | "red"
  | "green"
  | "blue"
  | "yellow"
  | "cyan"
  | "magenta"
  | "white"
  | "black";

/** Every colour name, in palette order. */
export const COLOURS: readonly ColourName[] = [
  "red",
  "green",
  "blue",
  "yellow",
  "cyan",
  "magenta",
  "white",
  "black",
];

/** RGB (0-255) of each named colour. */
export const PALETTE: Readonly<Record<ColourName, readonly [number, number, number]>> = {
  red: [220, 30, 30],
  green: [30, 190, 40],
  blue: [30, 50, 220],
  yellow: [235, 215, 35],
  cyan: [35, 205, 215],
  magenta: [210, 40, 200],
  white: [240, 240, 240],
  black: [20, 20, 25],
};

/**
 * The palette colour nearest to an RGB triple (squared Euclidean distance) and that distance.
 *
 * @example
 * ```ts
 * import { nearestColour } from "./palette.ts";
 * console.log(nearestColour(200, 60, 40).name); // "red"
 * ```
 */
export function nearestColour(
  r: number,
  g: number,
  b: number,
  among: readonly ColourName[] = COLOURS,
): { name: ColourName; distance2: number } {
  let name: ColourName = among[0] ?? "black", distance2 = Infinity;
  for (const c of among) {
    const [pr, pg, pb] = PALETTE[c];
    const d = (r - pr) ** 2 + (g - pg) ** 2 + (b - pb) ** 2;
    if (d < distance2) {
      distance2 = d;
      name = c;
    }
  }
  return { name, distance2 };
}
