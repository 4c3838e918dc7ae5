/**
 * Several images of one size as one grid image (AUTOMATIC1111's `image_grid`: `round(sqrt(n))`
 * rows, images row-major), and the numbered file names of a batch.
 *
 * @module
 */
import type { RgbImage } from "./_image.ts";

/**
 * A grid of equally sized images: `rows = round(sqrt(n))`, `cols = ceil(n / rows)`, row-major,
 * black where a row is not full.
 *
 * @example
 * ```ts
 * import { imageGrid } from "./_grid.ts";
 * const px = { width: 1, height: 1, rgb: new Uint8Array([255, 0, 0]) };
 * const g = imageGrid([px, px, px]);
 * console.log(g.width, g.height); // 2 2
 * ```
 */
export function imageGrid(images: readonly RgbImage[]): RgbImage {
  const n = images.length, w = images[0]!.width, h = images[0]!.height;
  const rows = Math.min(Math.max(Math.round(Math.sqrt(n)), 1), n), cols = Math.ceil(n / rows);
  const W = cols * w, H = rows * h;
  const rgb = new Uint8Array(W * H * 3);
  images.forEach((img, k) => {
    const x0 = (k % cols) * w, y0 = Math.floor(k / cols) * h;
    for (let y = 0; y < h; y++) {
      rgb.set(img.rgb.subarray(3 * w * y, 3 * w * (y + 1)), 3 * ((y0 + y) * W + x0));
    }
  });
  return { width: W, height: H, rgb };
}

/** `dir/name.png` -> `dir/name-00003.png` (the `i`-th image of a batch). */
export function numberedPath(path: string, i: number): string {
  const slash = path.lastIndexOf("/"), dot = path.lastIndexOf(".");
  const cut = dot > slash ? dot : path.length;
  return `${path.slice(0, cut)}-${String(i).padStart(5, "0")}${path.slice(cut)}`;
}
