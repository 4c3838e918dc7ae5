// kohya's multi-resolution noise on the CPU: PyTorch's bilinear rule, unit standard deviation,
// low-frequency correlation, and reproducibility from the seed.
import { deepEqual, equal, notDeepEqual, ok } from "node:assert/strict";
import { Generator, normalRef } from "../src/ops/rng.ts";
import { bilinearResize, multiresNoise } from "../src/train/multires_noise.ts";
import { ConfigError } from "../src/train/errors.ts";
import { throwsWith } from "./_train_helpers.ts";

Deno.test("bilinearResize() follows PyTorch's align_corners=False values", () => {
  // F.interpolate([[[[1., 2.]]]], size=(1, 4), mode="bilinear") = [1, 1.25, 1.75, 2]
  deepEqual(Array.from(bilinearResize([1, 2], 1, 1, 2, 1, 4)), [1, 1.25, 1.75, 2]);
  // a 1x1 plane spreads everywhere; two planes stay apart
  deepEqual(Array.from(bilinearResize([3, -1], 2, 1, 1, 2, 2)), [3, 3, 3, 3, -1, -1, -1, -1]);
});

Deno.test("multiresNoise() has unit std, smoother fields and a reproducible stream", () => {
  const shape = [2, 4, 32, 32];
  const a = multiresNoise(shape, new Generator(9), { iterations: 6, discount: 0.3 });
  const b = multiresNoise(shape, new Generator(9), { iterations: 6, discount: 0.3 });
  deepEqual(a, b);
  notDeepEqual(a, multiresNoise(shape, new Generator(10), { iterations: 6, discount: 0.3 }));
  let m = 0;
  for (const v of a) m += v;
  m /= a.length;
  let ss = 0;
  for (const v of a) ss += (v - m) ** 2;
  // divided by its own unbiased std: 1 up to float32 rounding of the stored values
  ok(Math.abs(Math.sqrt(ss / (a.length - 1)) - 1) < 1e-5);
  // neighbour correlation: about 0 for white noise (estimator sd ~0.011 over 7936 pairs), clearly
  // positive with a strong pyramid (levels 1+ add fields upsampled from 1/2 to 1/4 size; level 0
  // is a second full-size white field, as in kohya, so a weak discount like 0.3 barely shows)
  const corr = (x: ArrayLike<number>) => {
    let s = 0, n = 0;
    for (let i = 0; i + 1 < x.length; i++) if ((i + 1) % 32 !== 0) (s += x[i]! * x[i + 1]!), n++;
    return s / n;
  };
  const g = new Generator(9), o = g.take(a.length);
  const white = Float64Array.from({ length: a.length }, (_, i) => normalRef(g.seed, o, i));
  ok(Math.abs(corr(white)) < 0.05, `white ${corr(white)}`);
  const strong = multiresNoise(shape, new Generator(9), { iterations: 6, discount: 0.8 });
  ok(corr(strong) > 0.15, `pyramid ${corr(strong)}`);
  // the first draw is the base noise, as kohya's randn_like: same counters as randn would use
  equal(Math.sign(a[0]!), Math.sign(white[0]!) || 1);
  throwsWith(
    () => multiresNoise([4, 8, 8], new Generator(1), { iterations: 2 }),
    ConfigError,
    "[B, C, H, W]",
  );
});
