/**
 * Scenes of the procedural world as structured attributes: one to three objects of one shape,
 * colour, size and fill on a solid background, placed without overlap. A scene is a pure
 * function of (seed, index, options); `renderScene` turns it into pixels and `captionScene`
 * into words.
 *
 * @module
 */
import { type ColourName, COLOURS } from "./palette.ts";
import { BASE_SHAPES, type FillName, type ShapeName } from "./shapes.ts";
import { CounterRandom } from "./random.ts";
import { WorldError } from "./errors.ts";

/** Object sizes. */
export type SizeName = "small" | "large";

/** Every size. */
export const SIZES: readonly SizeName[] = ["small", "large"];

/** Object radius as a share of the image's shorter side, before a +-8% jitter. */
export const SIZE_RADIUS: Readonly<Record<SizeName, number>> = { small: 0.11, large: 0.19 };

/** How many objects a scene holds. */
export type Count = 1 | 2 | 3;

/** One placed object: centre and radius in pixels. */
export interface SceneObject {
  /** Centre, pixels from the left edge. */
  x: number;
  /** Centre, pixels from the top edge. */
  y: number;
  /** Radius in pixels (the shape's unit circle). */
  radius: number;
}

/** A scene's attributes: what a caption says and a measure checks. */
export interface Scene {
  /** Image width in pixels. */
  width: number;
  /** Image height in pixels. */
  height: number;
  /** Background colour. */
  background: ColourName;
  /** Shape of every object. */
  shape: ShapeName;
  /** Colour of every object (never the background's). */
  colour: ColourName;
  /** Size of every object. */
  size: SizeName;
  /** Fill style of every object. */
  fill: FillName;
  /** The objects, `objects.length` of them. */
  objects: SceneObject[];
}

/** Which attributes scenes draw from, and the image size. */
export interface SceneOptions {
  /** Image width (default 32). */
  width?: number;
  /** Image height (default 32). */
  height?: number;
  /** Shapes to draw from (default the five base shapes). */
  shapes?: readonly ShapeName[];
  /** Object colours to draw from (default the whole palette). */
  colours?: readonly ColourName[];
  /** Background colours to draw from (default the whole palette). */
  backgrounds?: readonly ColourName[];
  /** Sizes to draw from (default both). */
  sizes?: readonly SizeName[];
  /** Fill styles to draw from (default solid only, as in pretraining). */
  fills?: readonly FillName[];
  /** Object counts to draw from (default 1, 2 and 3). */
  counts?: readonly Count[];
}

/** {@link SceneOptions} with every default filled in. */
export type ResolvedSceneOptions = Required<SceneOptions>;

function nonEmpty<T>(name: string, list: readonly T[] | undefined, fallback: readonly T[]): T[] {
  const out = [...(list ?? fallback)];
  if (out.length === 0) {
    throw new WorldError(`The ${name} option is an empty list; give at least one value or omit it`);
  }
  return out;
}

/**
 * Fills in the defaults and checks the options (sizes from 16 pixels, a background that differs
 * from some object colour).
 *
 * @example
 * ```ts
 * import { resolveSceneOptions } from "./scene.ts";
 * console.log(resolveSceneOptions({ width: 64 }).height); // 32
 * ```
 */
export function resolveSceneOptions(options: SceneOptions = {}): ResolvedSceneOptions {
  const width = options.width ?? 32, height = options.height ?? 32;
  for (const [name, v] of [["width", width], ["height", height]] as const) {
    if (!Number.isInteger(v) || v < 16) {
      throw new WorldError(
        `The ${name} option is ${v}, but scenes need a whole number of at least 16 pixels`,
      );
    }
  }
  const counts = nonEmpty<Count>("counts", options.counts, [1, 2, 3]);
  for (const c of counts) {
    if (c !== 1 && c !== 2 && c !== 3) {
      throw new WorldError(`The counts option holds ${c}; use counts of 1, 2 or 3`);
    }
  }
  const colours = nonEmpty("colours", options.colours, COLOURS);
  const backgrounds = nonEmpty("backgrounds", options.backgrounds, COLOURS);
  if (backgrounds.every((b) => colours.every((c) => c === b))) {
    throw new WorldError(
      "Every allowed object colour equals every allowed background; allow a second colour",
    );
  }
  return {
    width,
    height,
    shapes: nonEmpty("shapes", options.shapes, BASE_SHAPES),
    colours,
    backgrounds,
    sizes: nonEmpty("sizes", options.sizes, SIZES),
    fills: nonEmpty("fills", options.fills, ["solid"]),
    counts,
  };
}

// Places `count` circles of radius about `r` inside the image with a half-pixel margin and gaps
// of at least one pixel; restarts when a placement gets stuck. With SIZE_RADIUS three large
// objects fit in any image from 16 pixels (the tests place thousands).
function place(
  random: CounterRandom,
  count: number,
  r: number,
  width: number,
  height: number,
): SceneObject[] {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const objects: SceneObject[] = [];
    for (let tries = 0; objects.length < count && tries < 50; tries++) {
      const radius = r * random.range(0.92, 1.08);
      const x = random.range(radius + 0.5, width - radius - 0.5);
      const y = random.range(radius + 0.5, height - radius - 0.5);
      if (objects.every((o) => Math.hypot(o.x - x, o.y - y) >= o.radius + radius + 1)) {
        objects.push({ x, y, radius });
      }
    }
    if (objects.length === count) return objects;
  }
  throw new WorldError(
    `Cannot place ${count} objects of radius ${r.toFixed(1)} in ${width}x${height} pixels; ` +
      "use a larger image or fewer objects",
  );
}

/**
 * Scene `index` of `seed`: every attribute drawn uniformly from the options, the background
 * from those that differ from the object colour.
 *
 * @example
 * ```ts
 * import { generateScene } from "./scene.ts";
 * const s = generateScene(1, 0);
 * console.log(s.objects.length >= 1 && s.colour !== s.background); // true
 * ```
 */
export function generateScene(seed: number, index: number, options: SceneOptions = {}): Scene {
  return drawScene(new CounterRandom(seed, index), resolveSceneOptions(options));
}

/**
 * Draws a scene from an open random stream (used by the world, which then draws a caption
 * from the same stream).
 *
 * @example
 * ```ts
 * import { CounterRandom } from "./random.ts";
 * import { drawScene, resolveSceneOptions } from "./scene.ts";
 * const scene = drawScene(new CounterRandom(1, 0), resolveSceneOptions({ counts: [2] }));
 * console.log(scene.objects.length); // 2
 * ```
 */
export function drawScene(random: CounterRandom, o: ResolvedSceneOptions): Scene {
  let colour = random.pick(o.colours);
  let backgrounds = o.backgrounds.filter((b) => b !== colour);
  while (backgrounds.length === 0) {
    colour = random.pick(o.colours);
    backgrounds = o.backgrounds.filter((b) => b !== colour);
  }
  const background = random.pick(backgrounds);
  const shape = random.pick(o.shapes);
  const size = random.pick(o.sizes);
  const fill = random.pick(o.fills);
  const count = random.pick(o.counts);
  const r = SIZE_RADIUS[size] * Math.min(o.width, o.height);
  const objects = place(random, count, r, o.width, o.height);
  return { width: o.width, height: o.height, background, shape, colour, size, fill, objects };
}
