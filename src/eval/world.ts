/**
 * The procedural world: an endless, seeded stream of captioned scenes, made on the fly (item `i`
 * of a seed is the same on every machine, and costs the same to make as item 0).
 *
 * @module
 */
import { CounterRandom } from "./random.ts";
import {
  drawScene,
  type ResolvedSceneOptions,
  resolveSceneOptions,
  type Scene,
  type SceneOptions,
} from "./scene.ts";
import { type CaptionOptions, captionScene } from "./caption.ts";
import { type RenderOptions, renderScene } from "./render.ts";
import { WorldError } from "./errors.ts";

/** Options of {@link ProceduralWorld}. */
export interface WorldOptions extends SceneOptions, CaptionOptions, RenderOptions {
  /** The seed (default 0). */
  seed?: number;
}

/** One item of the world: attributes, caption and pixels. */
export interface WorldItem {
  /** Index within the seed's stream. */
  index: number;
  /** The scene's attributes. */
  scene: Scene;
  /** Its caption. */
  caption: string;
  /** Its caption without trigger words (for class / regularization prompts). */
  classCaption: string;
  /** Row-major RGB bytes, `[height, width, 3]`. */
  rgb: Uint8Array;
}

/**
 * A seeded stream of scenes with captions and pixels.
 *
 * @example
 * ```ts
 * import { ProceduralWorld } from "./world.ts";
 * const world = new ProceduralWorld({ seed: 3 });
 * const item = world.item(0);
 * console.log(item.caption, item.rgb.length); // e.g. "two small red circles on blue" 3072
 * ```
 */
export class ProceduralWorld {
  /** The seed. */
  readonly seed: number;
  /** The scene options with defaults filled in. */
  readonly sceneOptions: ResolvedSceneOptions;
  #caption: CaptionOptions;
  #render: RenderOptions;

  /** A world drawing from `options` (defaults: seed 0, 32x32, the pretraining attributes). */
  constructor(options: WorldOptions = {}) {
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new WorldError(`The seed is ${seed}; use a whole number >= 0`);
    }
    this.seed = seed;
    this.sceneOptions = resolveSceneOptions(options);
    this.#caption = {};
    if (options.genericNounRate !== undefined) {
      this.#caption.genericNounRate = options.genericNounRate;
    }
    if (options.shapeTrigger !== undefined) this.#caption.shapeTrigger = options.shapeTrigger;
    if (options.styleTrigger !== undefined) this.#caption.styleTrigger = options.styleTrigger;
    this.#render = options.supersample === undefined ? {} : { supersample: options.supersample };
  }

  /** Scene and caption of item `index`, without rendering (cheap). */
  describe(index: number): Omit<WorldItem, "rgb"> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= 2 ** 32) {
      throw new WorldError(`The item index is ${index}; use a whole number from 0 to 2^32 - 1`);
    }
    const random = new CounterRandom(this.seed, index);
    const scene = drawScene(random, this.sceneOptions);
    const { text, classText } = captionScene(scene, random, this.#caption);
    return { index, scene, caption: text, classCaption: classText };
  }

  /** Item `index`: scene, caption and pixels. */
  item(index: number): WorldItem {
    const d = this.describe(index);
    return { ...d, rgb: renderScene(d.scene, this.#render) };
  }

  /** Items `start .. start + count - 1`. */
  items(start: number, count: number): WorldItem[] {
    return Array.from({ length: count }, (_, i) => this.item(start + i));
  }
}
