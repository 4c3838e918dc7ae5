/**
 * Structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004, "Image quality assessment:
 * from error visibility to structural similarity"), as their reference code computes it: an
 * 11x11 Gaussian window of standard deviation 1.5 at every position where it fits inside the
 * image ("valid"), local means, variances and covariance weighted by the window,
 * `SSIM = (2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))` with
 * `C1 = (0.01 L)^2`, `C2 = (0.03 L)^2`, averaged over positions and then over channels.
 *
 * @module
 */
import { WorldError } from "./errors.ts";

const RADIUS = 5;
const SIGMA = 1.5;

// The normalized 1-D Gaussian; the 2-D window is its outer product.
const GAUSS: Float64Array = (() => {
  const g = Float64Array.from(
    { length: 2 * RADIUS + 1 },
    (_, i) => Math.exp(-((i - RADIUS) ** 2) / (2 * SIGMA * SIGMA)),
  );
  const s = g.reduce((x, y) => x + y, 0);
  return g.map((v) => v / s);
})();

// x: [h, w] -> [h - 10, w - 10], the window-weighted mean at each valid position
function filter(x: Float64Array, w: number, h: number): Float64Array {
  const ow = w - 2 * RADIUS, oh = h - 2 * RADIUS;
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let x0 = 0; x0 < ow; x0++) {
      let s = 0;
      for (let k = 0; k <= 2 * RADIUS; k++) s += GAUSS[k]! * x[y * w + x0 + k]!;
      rows[y * ow + x0] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let y0 = 0; y0 < oh; y0++) {
    for (let x0 = 0; x0 < ow; x0++) {
      let s = 0;
      for (let k = 0; k <= 2 * RADIUS; k++) s += GAUSS[k]! * rows[(y0 + k) * ow + x0]!;
      out[y0 * ow + x0] = s;
    }
  }
  return out;
}

// a, b: [h, w, c] interleaved (e.g. RGB bytes)
/**
 * Mean SSIM of two images of `w x h` pixels with `channels` interleaved values each, values in
 * [0, `range`] (default 255).
 *
 * @example
 * ```ts
 * import { ssim } from "./ssim.ts";
 * const a = new Uint8Array(16 * 16 * 3).map((_, i) => (i * 37) % 256);
 * console.log(ssim(a, a, 16, 16)); // 1
 * ```
 */
export function ssim(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  w: number,
  h: number,
  channels = 3,
  range = 255,
): number {
  if (a.length !== w * h * channels || b.length !== a.length) {
    throw new WorldError(
      `SSIM takes two ${w}x${h} images of ${channels} channels (${w * h * channels} values), ` +
        `got ${a.length} and ${b.length}; pass images of one size`,
    );
  }
  if (w <= 2 * RADIUS || h <= 2 * RADIUS) {
    throw new WorldError(`SSIM's 11x11 window needs images of at least 11x11, got ${w}x${h}`);
  }
  const c1 = (0.01 * range) ** 2, c2 = (0.03 * range) ** 2;
  let total = 0;
  for (let c = 0; c < channels; c++) {
    const x = new Float64Array(w * h), y = new Float64Array(w * h);
    for (let i = 0; i < w * h; i++) {
      x[i] = a[i * channels + c]!;
      y[i] = b[i * channels + c]!;
    }
    const mx = filter(x, w, h), my = filter(y, w, h);
    const xx = filter(x.map((v) => v * v), w, h);
    const yy = filter(y.map((v) => v * v), w, h);
    const xy = filter(x.map((v, i) => v * y[i]!), w, h);
    let s = 0;
    for (let i = 0; i < mx.length; i++) {
      const mux = mx[i]!, muy = my[i]!;
      const vx = xx[i]! - mux * mux, vy = yy[i]! - muy * muy, cov = xy[i]! - mux * muy;
      s += ((2 * mux * muy + c1) * (2 * cov + c2)) /
        ((mux * mux + muy * muy + c1) * (vx + vy + c2));
    }
    total += s / mx.length;
  }
  return total / channels;
}
