/**
 * Singular value decomposition on the CPU in float64: one-sided Jacobi (Hestenes) for a whole
 * matrix, and an exact shortcut for a low-rank product `up @ down` (QR of each factor, then the
 * SVD of the small core), which is what resizing a LoRA needs.
 *
 * @module
 */

/** A thin SVD `A = U diag(S) Vt`, singular values descending. */
export interface Svd {
  /** Left singular vectors, `[m, k]` row-major. */
  u: Float64Array;
  /** Singular values, `k` of them, descending. */
  s: Float64Array;
  /** Right singular vectors transposed, `[k, n]` row-major. */
  vt: Float64Array;
  /** Rows of A. */
  m: number;
  /** Columns of A. */
  n: number;
  /** min(m, n). */
  k: number;
}

const EPS = 2.220446049250313e-16;

/**
 * The thin SVD of a row-major `[m, n]` matrix by one-sided Jacobi rotations on its columns (or
 * its transpose's, whichever is narrower), to float64 accuracy.
 *
 * @example
 * ```ts
 * import { svd } from "./svd.ts";
 * const r = svd(new Float64Array([3, 0, 0, 4]), 2, 2);
 * console.log(r.s); // Float64Array [4, 3]
 * ```
 */
export function svd(a: ArrayLike<number>, m: number, n: number): Svd {
  const wide = n > m;
  // Work on G with `cols` columns of length `len`, stored column by column.
  const cols = wide ? m : n, len = wide ? n : m;
  const g: Float64Array[] = [];
  for (let j = 0; j < cols; j++) {
    const c = new Float64Array(len);
    for (let i = 0; i < len; i++) c[i] = wide ? a[j * n + i]! : a[i * n + j]!;
    g.push(c);
  }
  const v: Float64Array[] = [];
  for (let j = 0; j < cols; j++) {
    const c = new Float64Array(cols);
    c[j] = 1;
    v.push(c);
  }
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false;
    for (let p = 0; p < cols - 1; p++) {
      for (let q = p + 1; q < cols; q++) {
        const gp = g[p]!, gq = g[q]!;
        let alpha = 0, beta = 0, gamma = 0;
        for (let i = 0; i < len; i++) {
          alpha += gp[i]! * gp[i]!;
          beta += gq[i]! * gq[i]!;
          gamma += gp[i]! * gq[i]!;
        }
        if (gamma === 0 || Math.abs(gamma) <= EPS * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t), s = c * t;
        for (let i = 0; i < len; i++) {
          const x = gp[i]!, y = gq[i]!;
          gp[i] = c * x - s * y;
          gq[i] = s * x + c * y;
        }
        const vp = v[p]!, vq = v[q]!;
        for (let i = 0; i < cols; i++) {
          const x = vp[i]!, y = vq[i]!;
          vp[i] = c * x - s * y;
          vq[i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = g.map((c) => Math.sqrt(c.reduce((acc, x) => acc + x * x, 0)));
  const order = norms.map((_, i) => i).sort((x, y) => norms[y]! - norms[x]!);
  const k = cols;
  const S = new Float64Array(k);
  // Left vectors of G are columns of G / sigma; right vectors are V's columns.
  const left = new Float64Array(len * k), right = new Float64Array(k * cols);
  order.forEach((j, r) => {
    const sigma = norms[j]!;
    S[r] = sigma;
    const c = g[j]!;
    for (let i = 0; i < len; i++) left[i * k + r] = sigma > 0 ? c[i]! / sigma : 0;
    const vj = v[j]!;
    for (let i = 0; i < cols; i++) right[r * cols + i] = vj[i]!;
  });
  if (!wide) return { u: left, s: S, vt: right, m, n, k };
  // A^T = L S R^T, so A = R S L^T: U = R^T's columns = right^T, Vt = left^T.
  const u = new Float64Array(m * k), vt = new Float64Array(k * n);
  for (let r = 0; r < k; r++) {
    for (let i = 0; i < m; i++) u[i * k + r] = right[r * cols + i]!;
    for (let i = 0; i < n; i++) vt[r * n + i] = left[i * k + r]!;
  }
  return { u, s: S, vt, m, n, k };
}

// Householder-free thin QR by modified Gram-Schmidt (twice, for stability) of a [rows, r]
// matrix given column by column: returns Q columns and R [r, r] row-major.
function qr(cols: Float64Array[]): { q: Float64Array[]; r: Float64Array } {
  const r = cols.length;
  const R = new Float64Array(r * r);
  const q: Float64Array[] = [];
  for (let j = 0; j < r; j++) {
    const v = Float64Array.from(cols[j]!);
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        const qi = q[i]!;
        let d = 0;
        for (let x = 0; x < v.length; x++) d += qi[x]! * v[x]!;
        R[i * r + j]! += d;
        for (let x = 0; x < v.length; x++) v[x]! -= d * qi[x]!;
      }
    }
    let norm = 0;
    for (let x = 0; x < v.length; x++) norm += v[x]! * v[x]!;
    norm = Math.sqrt(norm);
    R[j * r + j] = norm;
    if (norm > 0) { for (let x = 0; x < v.length; x++) v[x]! /= norm; }
    q.push(v);
  }
  return { q, r: R };
}

/**
 * The SVD of `up @ down` (up `[m, r]`, down `[r, n]`, row-major) without forming the product:
 * `up = Qu Ru`, `down^T = Qd Rd`, then the SVD of the `[r, r]` core `Ru Rd^T`. Exact up to
 * float64 rounding; `k = r` (singular values beyond the true rank come out ~0).
 */
export function lowRankSvd(
  up: ArrayLike<number>,
  down: ArrayLike<number>,
  m: number,
  r: number,
  n: number,
): Svd {
  const upCols: Float64Array[] = [], downRows: Float64Array[] = [];
  for (let j = 0; j < r; j++) {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = up[i * r + j]!;
    upCols.push(c);
    downRows.push(Float64Array.from({ length: n }, (_, i) => down[j * n + i]!));
  }
  const a = qr(upCols), b = qr(downRows);
  const core = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let x = 0; x < r; x++) s += a.r[i * r + x]! * b.r[j * r + x]!;
      core[i * r + j] = s;
    }
  }
  const c = svd(core, r, r);
  const u = new Float64Array(m * r), vt = new Float64Array(r * n);
  for (let t = 0; t < r; t++) {
    for (let x = 0; x < r; x++) {
      const cu = c.u[x * r + t]!, cv = c.vt[t * r + x]!;
      const qu = a.q[x]!, qd = b.q[x]!;
      if (cu !== 0) { for (let i = 0; i < m; i++) u[i * r + t]! += qu[i]! * cu; }
      if (cv !== 0) { for (let i = 0; i < n; i++) vt[t * n + i]! += qd[i]! * cv; }
    }
  }
  return { u, s: c.s, vt, m, n, k: r };
}
