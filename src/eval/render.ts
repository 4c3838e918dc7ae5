/**
 * Rasterizes a scene into RGB bytes, anti-aliased by supersampling: each pixel blends the object
 * colour over the background by the mean over its `s x s` sub-samples of the object's opacity
 * there (1 where the fill paints, `FILL_OFF_TONE` elsewhere inside a shape, 0 outside).
 *
 * @module
 */
import { PALETTE } from "./palette.ts";
import { FILL_OFF_TONE, insideFill, insideShape } from "./shapes.ts";
import type { Scene } from "./scene.ts";
import { WorldError } from "./errors.ts";

/** Options of {@link renderScene}. */
export interface RenderOptions {
  /** Sub-samples per pixel side (default 4, i.e. 16 per pixel). */
  supersample?: number;
}

/**
 * Pitch in pixels of the striped and dotted fills: a sixth of the image's shorter side.
 *
 * @example
 * ```ts
 * import { fillPeriod } from "./render.ts";
 * console.log(fillPeriod({ width: 48, height: 36 })); // 6
 * ```
 */
export function fillPeriod(scene: Pick<Scene, "width" | "height">): number {
  return Math.min(scene.width, scene.height) / 6;
}

// out: [H, W, 3] bytes
/**
 * The scene's pixels, row-major RGB bytes (`[height, width, 3]`).
 *
 * @example
 * ```ts
 * import { generateScene } from "./scene.ts";
 * import { renderScene } from "./render.ts";
 * const scene = generateScene(1, 0);
 * console.log(renderScene(scene).length); // 32 * 32 * 3
 * ```
 */
export function renderScene(scene: Scene, options: RenderOptions = {}): Uint8Array {
  const s = options.supersample ?? 4;
  if (!Number.isInteger(s) || s < 1 || s > 16) {
    throw new WorldError(`The supersample option is ${s}; use a whole number from 1 to 16`);
  }
  const { width, height } = scene;
  const bg = PALETTE[scene.background], fg = PALETTE[scene.colour];
  const period = fillPeriod(scene);
  const out = new Uint8Array(width * height * 3);
  for (let py = 0; py < height; py++) {
    for (let px = 0; px < width; px++) {
      let cover = 0;
      for (const o of scene.objects) {
        if (Math.abs(px + 0.5 - o.x) > o.radius + 1 || Math.abs(py + 0.5 - o.y) > o.radius + 1) {
          continue;
        }
        for (let sy = 0; sy < s; sy++) {
          for (let sx = 0; sx < s; sx++) {
            const dx = px + (sx + 0.5) / s - o.x, dy = py + (sy + 0.5) / s - o.y;
            if (insideShape(scene.shape, dx / o.radius, dy / o.radius)) {
              cover += insideFill(scene.fill, dx, dy, period) ? 1 : FILL_OFF_TONE;
            }
          }
        }
      }
      const a = Math.min(1, cover / (s * s));
      const i = (py * width + px) * 3;
      for (let c = 0; c < 3; c++) out[i + c] = Math.round(bg[c]! + (fg[c]! - bg[c]!) * a);
    }
  }
  return out;
}

// rgb: [H, W, 3] bytes -> out: [3, H, W] in [-1, 1]
/**
 * RGB bytes as a channels-first float image in [-1, 1], the VAE's input range.
 *
 * @example
 * ```ts
 * import { rgbToChw } from "./render.ts";
 * console.log(rgbToChw(new Uint8Array([255, 0, 0]), 1, 1)); // Float32Array [1, -1, -1]
 * ```
 */
export function rgbToChw(rgb: Uint8Array, width: number, height: number): Float32Array {
  const n = width * height;
  if (rgb.length !== n * 3) {
    throw new WorldError(
      `The image has ${rgb.length} bytes, not ${n * 3} for ${width}x${height} RGB; pass RGB bytes`,
    );
  }
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) out[c * n + i] = rgb[i * 3 + c]! / 127.5 - 1;
  }
  return out;
}
