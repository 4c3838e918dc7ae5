/**
 * Fréchet distance between two sets of feature vectors, each summarized by its mean and
 * covariance as Gaussians: `|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))` (Dowson and
 * Landau 1982; the formula of FID, Heusel et al. 2017). FID proper uses Inception features; this
 * project uses its attribute classifier's features, a small-scale stand-in, so the numbers are
 * not comparable with published FIDs. Covariances are sample covariances (divided by n - 1, as
 * the FID reference code's `np.cov`); `Tr (S_a S_b)^(1/2)` is the sum of square roots of the
 * eigenvalues of the symmetric `S_a^(1/2) S_b S_a^(1/2)`, from cyclic Jacobi rotations in
 * float64.
 *
 * @module
 */
import { WorldError } from "./errors.ts";

/** Mean and covariance of a feature set. */
export interface FeatureStats {
  /** Feature width. */
  dim: number;
  /** Number of vectors summarized. */
  count: number;
  /** Mean, [dim]. */
  mean: Float64Array;
  /** Sample covariance, [dim, dim] row-major. */
  cov: Float64Array;
}

// features: [n, d] row-major
/**
 * Mean and sample covariance of `n` feature vectors of width `d`.
 *
 * @example
 * ```ts
 * import { featureStats } from "./frechet.ts";
 * const s = featureStats(new Float32Array([0, 0, 2, 2]), 2, 2);
 * console.log(s.mean, s.cov); // [1, 1], [2, 2, 2, 2]
 * ```
 */
export function featureStats(features: ArrayLike<number>, n: number, d: number): FeatureStats {
  if (!Number.isInteger(n) || !Number.isInteger(d) || n < 2 || d < 1 || features.length !== n * d) {
    throw new WorldError(
      `Feature statistics need at least 2 vectors: got ${features.length} values for ${n} x ${d}`,
    );
  }
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += features[i * d + j]!;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = features[i * d + j]! - mean[j]!;
    for (let j = 0; j < d; j++) {
      for (let k = j; k < d; k++) cov[j * d + k]! += row[j]! * row[k]!;
    }
  }
  for (let j = 0; j < d; j++) {
    for (let k = j; k < d; k++) {
      cov[j * d + k]! /= n - 1;
      cov[k * d + j] = cov[j * d + k]!;
    }
  }
  return { dim: d, count: n, mean, cov };
}

// Eigen-decomposition of a symmetric [d, d] matrix by cyclic Jacobi rotations: returns the
// eigenvalues and the eigenvectors as the columns of a [d, d] matrix.
function symmetricEigen(
  m: Float64Array,
  d: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(m);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let norm = 0;
  for (const x of a) norm += x * x;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q]! ** 2;
    if (off <= 1e-30 * norm) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q]!;
        if (apq === 0) continue;
        const theta = (a[q * d + q]! - a[p * d + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p]!, akq = a[k * d + q]!;
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k]!, aqk = a[q * d + k]!;
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!, vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: d }, (_, i) => a[i * d + i]!), vectors: v };
}

/**
 * The Fréchet distance between two feature sets' Gaussians.
 *
 * @example
 * ```ts
 * import { featureStats, frechetDistance } from "./frechet.ts";
 * const a = featureStats(new Float32Array([0, 2]), 2, 1); // mean 1, variance 2
 * const b = featureStats(new Float32Array([3, 5]), 2, 1); // mean 4, variance 2
 * console.log(frechetDistance(a, b)); // 9
 * ```
 */
export function frechetDistance(a: FeatureStats, b: FeatureStats): number {
  const d = a.dim;
  if (b.dim !== d) {
    throw new WorldError(
      `The feature sets have widths ${d} and ${b.dim}; use one feature extractor`,
    );
  }
  // S_a^(1/2) = V sqrt(L) V^T
  const ea = symmetricEigen(a.cov, d);
  const root = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        s += ea.vectors[i * d + k]! * Math.sqrt(Math.max(0, ea.values[k]!)) *
          ea.vectors[j * d + k]!;
      }
      root[i * d + j] = s;
    }
  }
  // M = S_a^(1/2) S_b S_a^(1/2), symmetrized against rounding
  const t = new Float64Array(d * d), m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += root[i * d + k]! * b.cov[k * d + j]!;
      t[i * d + j] = s;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += t[i * d + k]! * root[k * d + j]!;
      m[i * d + j] = s;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) {
      const avg = (m[i * d + j]! + m[j * d + i]!) / 2;
      m[i * d + j] = avg;
      m[j * d + i] = avg;
    }
  }
  let trRoot = 0;
  for (const lambda of symmetricEigen(m, d).values) trRoot += Math.sqrt(Math.max(0, lambda));
  let dist = 0;
  for (let i = 0; i < d; i++) {
    dist += (a.mean[i]! - b.mean[i]!) ** 2 + a.cov[i * d + i]! + b.cov[i * d + i]!;
  }
  return dist - 2 * trRoot;
}
