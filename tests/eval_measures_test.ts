// PSNR, SSIM and the Fréchet distance against references: scikit-image 0.19.3
// (`peak_signal_noise_ratio`, `structural_similarity(a, b, channel_axis=2, gaussian_weights=True,
// sigma=1.5, use_sample_covariance=False, data_range=255)`, Wang et al.'s settings) and the FID
// formula with scipy.linalg.sqrtm (as pytorch-fid computes it), on inputs made by formulas that
// both sides evaluate. The Python that printed the reference values is quoted above each.
// Plus properties the references do not need: identity, symmetry, rotation invariance.
import { equal, ok, throws } from "node:assert/strict";
import { featureStats, frechetDistance, psnr, ssim, WorldError } from "../src/eval/mod.ts";

const W = 20, H = 17;
// a[y, x, c] = (13x + 7y + 50c) % 256; b = clip(a + (xy + c) % 23 - 11, 0, 255)
function images(): { a: Uint8Array; b: Uint8Array } {
  const a = new Uint8Array(W * H * 3), b = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) {
        const v = (x * 13 + y * 7 + c * 50) % 256, i = (y * W + x) * 3 + c;
        a[i] = v;
        b[i] = Math.min(255, Math.max(0, v + ((x * y + c) % 23) - 11));
      }
    }
  }
  return { a, b };
}

Deno.test("psnr() matches scikit-image", () => {
  const { a, b } = images();
  // peak_signal_noise_ratio(a.astype(np.uint8), b.astype(np.uint8), data_range=255)
  const want = 31.531827948478735;
  ok(Math.abs(psnr(a, b) - want) < 1e-9, `${psnr(a, b)} vs ${want}`); // float64 both sides
  equal(psnr(a, a), Infinity);
  throws(() => psnr(a, b.subarray(1)), WorldError);
});

Deno.test("ssim() matches scikit-image with Wang et al.'s settings", () => {
  const { a, b } = images();
  const want = 0.9803474558079005;
  // Both sides sum the same float64 products in different orders (difference ~1e-15).
  ok(Math.abs(ssim(a, b, W, H) - want) < 1e-9, `${ssim(a, b, W, H)} vs ${want}`);
  ok(Math.abs(ssim(b, a, W, H) - want) < 1e-9, "symmetric");
  ok(Math.abs(ssim(a, a, W, H) - 1) < 1e-12);
  // Flat images: variances and covariance vanish, leaving the luminance term exactly.
  const flat = (v: number) => new Uint8Array(12 * 12).fill(v);
  const c1 = (0.01 * 255) ** 2;
  const lum = (2 * 100 * 140 + c1) / (100 * 100 + 140 * 140 + c1);
  ok(Math.abs(ssim(flat(100), flat(140), 12, 12, 1) - lum) < 1e-12);
  throws(() => ssim(flat(1), flat(1), 12, 12, 3), /12x12 images of 3 channels/);
  throws(() => ssim(new Uint8Array(100), new Uint8Array(100), 10, 10, 1), /at least 11x11/);
});

// fa[i, j] = sin(0.7 (j + 1) i + 1.3 j) + 0.1 j; fb[i, j] = cos((0.3 + 0.11 j) i + j) (1 + 0.2 j);
// n = 50, d = 6. A frequency per feature keeps the covariances well conditioned (smallest
// eigenvalues 0.015 and 0.42), so square roots of eigenvalues do not amplify rounding.
function features(): { fa: Float64Array; fb: Float64Array } {
  const n = 50, d = 6;
  const fa = new Float64Array(n * d), fb = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      fa[i * d + j] = Math.sin(i * 0.7 * (j + 1) + j * 1.3) + 0.1 * j;
      fb[i * d + j] = Math.cos(i * (0.3 + 0.11 * j) + j) * (1 + 0.2 * j);
    }
  }
  return { fa, fb };
}

Deno.test("frechetDistance() matches the FID formula with scipy's sqrtm", () => {
  const { fa, fb } = features();
  const a = featureStats(fa, 50, 6), b = featureStats(fb, 50, 6);
  // sum((m1-m2)**2) + tr(s1) + tr(s2) - 2 tr(sqrtm(s1 @ s2)), s = np.cov(f, rowvar=False)
  const want = 3.129772128120086;
  // Measured difference 9e-16; 1e-8 allows other summation and eigen-solver orders.
  ok(Math.abs(frechetDistance(a, b) - want) < 1e-8, `${frechetDistance(a, b)} vs ${want}`);
  ok(Math.abs(frechetDistance(b, a) - want) < 1e-8, "symmetric");
  ok(Math.abs(frechetDistance(a, a)) < 1e-9, "zero against itself");
  throws(() => frechetDistance(a, featureStats(fa, 60, 5)), /widths 6 and 5/);
  throws(() => featureStats(fa, 1, 300), WorldError);
});

Deno.test("frechetDistance() is unchanged by rotating both feature sets", () => {
  const { fa, fb } = features();
  // A rotation by 0.8 rad in the plane of features 1 and 4 (an orthogonal map keeps means'
  // distances, traces and the spectrum of S_a^1/2 S_b S_a^1/2).
  const rotate = (f: Float64Array) => {
    const g = Float64Array.from(f), c = Math.cos(0.8), s = Math.sin(0.8);
    for (let i = 0; i < 50; i++) {
      const x = f[i * 6 + 1]!, y = f[i * 6 + 4]!;
      g[i * 6 + 1] = c * x - s * y;
      g[i * 6 + 4] = s * x + c * y;
    }
    return g;
  };
  const plain = frechetDistance(featureStats(fa, 50, 6), featureStats(fb, 50, 6));
  const turned = frechetDistance(featureStats(rotate(fa), 50, 6), featureStats(rotate(fb), 50, 6));
  ok(Math.abs(plain - turned) < 1e-9, `${plain} vs ${turned}`);
});
