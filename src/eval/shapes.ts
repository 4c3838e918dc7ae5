/**
 * The procedural world's shapes and fill styles as point-membership tests, which the renderer
 * supersamples for anti-aliased edges. Shapes are tested in unit coordinates (the object's
 * centre at 0, its radius 1, y pointing down); fill patterns in pixels from the object's centre.
 *
 * @module
 */

/** Shape names: the five the base model is pretrained on, and the identity concept's star. */
export type ShapeName = "circle" | "square" | "triangle" | "ring" | "cross" | "star";

/** The shapes pretraining shows. */
export const BASE_SHAPES: readonly ShapeName[] = ["circle", "square", "triangle", "ring", "cross"];

/** Every shape, the identity concept's star included (e.g. for the attribute classifier). */
export const ALL_SHAPES: readonly ShapeName[] = [...BASE_SHAPES, "star"];

/** Fill styles: pretraining shows only solid; striped is the style concept. */
export type FillName = "solid" | "striped" | "dotted";

/** Every fill style. */
export const ALL_FILLS: readonly FillName[] = ["solid", "striped", "dotted"];

/**
 * Share of the object colour (over the background) between a fill's stripes or dots: enough to
 * keep the silhouette visible, below one half so such a pixel is nearest the background colour.
 */
export const FILL_OFF_TONE = 0.35;

const SQRT3_2 = Math.sqrt(3) / 2;

// The five-pointed star: ten vertices alternating between radius 1 and the regular star's
// inner radius (cos 72 / cos 36 = 0.382), the first point straight up.
const STAR: readonly (readonly [number, number])[] = Array.from({ length: 10 }, (_, i) => {
  const r = i % 2 === 0 ? 1 : Math.cos((2 * Math.PI) / 5) / Math.cos(Math.PI / 5);
  const a = -Math.PI / 2 + (i * Math.PI) / 5;
  return [r * Math.cos(a), r * Math.sin(a)] as const;
});

function insidePolygon(
  poly: readonly (readonly [number, number])[],
  u: number,
  v: number,
): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!, [xj, yj] = poly[j]!;
    if ((yi > v) !== (yj > v) && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * Whether the point (u, v) lies inside `shape` centred at 0 with radius 1. The square's half
 * side is 0.85 and the cross's arms 0.6 wide, so the shapes have comparable areas.
 *
 * @example
 * ```ts
 * import { insideShape } from "./shapes.ts";
 * console.log(insideShape("ring", 0, 0), insideShape("circle", 0, 0)); // false true
 * ```
 */
export function insideShape(shape: ShapeName, u: number, v: number): boolean {
  switch (shape) {
    case "circle":
      return u * u + v * v <= 1;
    case "square":
      return Math.abs(u) <= 0.85 && Math.abs(v) <= 0.85;
    case "triangle": {
      // Equilateral, circumradius 1, apex up: below the two upper edges and above the base.
      const y = v - 0.25; // centre the triangle's bounding box on the object's centre
      return y <= 0.5 && SQRT3_2 * u - 0.5 * y <= 0.5 && -SQRT3_2 * u - 0.5 * y <= 0.5;
    }
    case "ring": {
      const d = u * u + v * v;
      return d <= 1 && d >= 0.55 * 0.55;
    }
    case "cross": {
      const au = Math.abs(u), av = Math.abs(v);
      return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95);
    }
    case "star":
      return insidePolygon(STAR, u, v);
  }
}

/**
 * Whether a point (dx, dy pixels from the object's centre) gets the full object colour under
 * `fill` (elsewhere inside the shape the renderer paints {@link FILL_OFF_TONE}): solid paints
 * everything; striped paints diagonal bands half of each `period`; dotted paints discs of
 * diameter 0.6 `period` on a square grid of that pitch.
 *
 * @example
 * ```ts
 * import { insideFill } from "./shapes.ts";
 * console.log(insideFill("striped", 0.5, 0, 4), insideFill("striped", 2.5, 0, 4)); // true false
 * ```
 */
export function insideFill(fill: FillName, dx: number, dy: number, period: number): boolean {
  switch (fill) {
    case "solid":
      return true;
    case "striped": {
      const t = (dx + dy) / period;
      return t - Math.floor(t) < 0.5;
    }
    case "dotted": {
      const fx = dx / period - Math.round(dx / period);
      const fy = dy / period - Math.round(dy / period);
      return fx * fx + fy * fy <= 0.09;
    }
  }
}
