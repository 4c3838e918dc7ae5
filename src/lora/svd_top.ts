/**
 * The leading singular triplets of a large matrix, exactly (no sampling): the eigenvectors of
 * the smaller Gram matrix (`A A^T` or `A^T A`) by Householder tridiagonalisation and implicit
 * QL (the EISPACK `tred2` / `tql2` pair, as in JAMA's public-domain symmetric eigensolver), then
 * the other side's vectors by projection. O(min(m, n)^2 max(m, n)), so SD-size weights take
 * seconds where one-sided Jacobi takes minutes; accurate for the leading values (the Gram matrix
 * squares the condition number, which only the smallest singular values feel).
 *
 * @module
 */
import { type Svd, svd } from "./svd.ts";

// Symmetric eigen-decomposition in place: v (n x n, the symmetric matrix on entry) becomes the
// eigenvectors, stored column-major (vector t at v[t*n .. t*n + n)) so every inner loop below
// runs over contiguous memory; d holds the eigenvalues (unordered).
function symmetricEigen(v: Float64Array, n: number): Float64Array {
  const d = new Float64Array(n), e = new Float64Array(n);
  const V = (i: number, j: number) => v[j * n + i]!;
  const set = (i: number, j: number, x: number) => {
    v[j * n + i] = x;
  };
  // tred2: Householder reduction to tridiagonal form.
  for (let j = 0; j < n; j++) d[j] = V(n - 1, j);
  for (let i = n - 1; i > 0; i--) {
    let scale = 0, h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = V(i - 1, j);
        set(i, j, 0);
        set(j, i, 0);
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!, g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        set(j, i, f);
        g = e[j]! + V(j, j) * f;
        const cj = j * n;
        for (let k = j + 1; k <= i - 1; k++) {
          const x = v[cj + k]!;
          g += x * d[k]!;
          e[k]! += x * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) v[j * n + k]! -= f * e[k]! + g * d[k]!;
        d[j] = V(i - 1, j);
        set(i, j, 0);
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    set(n - 1, i, V(i, i));
    set(i, i, 1);
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V(k, i + 1) / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        const ci = (i + 1) * n, cj = j * n;
        for (let k = 0; k <= i; k++) g += v[ci + k]! * v[cj + k]!;
        for (let k = 0; k <= i; k++) v[cj + k]! -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) set(k, i + 1, 0);
  }
  for (let j = 0; j < n; j++) {
    d[j] = V(n - 1, j);
    set(n - 1, j, 0);
  }
  set(n - 1, n - 1, 1);
  e[0] = 0;
  // tql2: implicit QL on the tridiagonal matrix, accumulating rotations into v.
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0, tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      do {
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1, c2 = c, c3 = c, s = 0, s2 = 0;
        const el1 = e[l + 1]!;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const a0 = i * n, a1 = a0 + n;
          for (let k = 0; k < n; k++) {
            const x = v[a0 + k]!, y = v[a1 + k]!;
            v[a1 + k] = s * x + c * y;
            v[a0 + k] = c * x - s * y;
          }
        }
        p = -s * s2 * c3 * el1 * e[l]! / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  return d;
}

/**
 * The `k` largest singular values of a row-major `[m, n]` matrix with their vectors (`u`
 * `[m, k]`, `vt` `[k, n]`). Small matrices (min side up to 48) use one-sided Jacobi; larger ones
 * the Gram matrix's eigen-decomposition.
 *
 * @example
 * ```ts
 * import { topSvd } from "./svd_top.ts";
 * const r = topSvd(new Float64Array([3, 0, 0, 0, 4, 0]), 2, 3, 1);
 * console.log(r.s); // Float64Array [4]
 * ```
 */
export function topSvd(a: ArrayLike<number>, m: number, n: number, k: number): Svd {
  const small = Math.min(m, n);
  k = Math.min(k, small);
  if (small <= 48) {
    const f = svd(a, m, n);
    const u = new Float64Array(m * k);
    for (let i = 0; i < m; i++) for (let t = 0; t < k; t++) u[i * k + t] = f.u[i * f.k + t]!;
    return { u, s: f.s.slice(0, k), vt: f.vt.slice(0, k * n), m, n, k };
  }
  // Rows of B (the short side's vectors): B = A when m <= n, else A^T.
  const wide = m <= n, rows = wide ? m : n, len = wide ? n : m;
  const b: Float64Array[] = [];
  for (let i = 0; i < rows; i++) {
    b.push(Float64Array.from({ length: len }, (_, x) => wide ? a[i * n + x]! : a[x * n + i]!));
  }
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    const bi = b[i]!;
    for (let j = i; j < rows; j++) {
      const bj = b[j]!;
      let s = 0;
      for (let x = 0; x < len; x++) s += bi[x]! * bj[x]!;
      g[i * rows + j] = s;
      g[j * rows + i] = s;
    }
  }
  const eig = symmetricEigen(g, rows);
  const order = [...eig.keys()].sort((x, y) => eig[y]! - eig[x]!);
  const s = new Float64Array(k);
  const short = new Float64Array(rows * k), long = new Float64Array(k * len);
  for (let t = 0; t < k; t++) {
    const col = order[t]!;
    const sigma = Math.sqrt(Math.max(0, eig[col]!));
    s[t] = sigma;
    for (let i = 0; i < rows; i++) short[i * k + t] = g[col * rows + i]!;
    if (sigma === 0) continue;
    for (let i = 0; i < rows; i++) {
      const w = g[col * rows + i]! / sigma;
      if (w === 0) continue;
      const bi = b[i]!;
      for (let x = 0; x < len; x++) long[t * len + x]! += w * bi[x]!;
    }
  }
  if (wide) return { u: short, s, vt: long, m, n, k };
  const u = new Float64Array(m * k), vt = new Float64Array(k * n);
  for (let t = 0; t < k; t++) {
    for (let i = 0; i < m; i++) u[i * k + t] = long[t * len + i]!;
    for (let i = 0; i < n; i++) vt[t * n + i] = short[i * k + t]!;
  }
  return { u, s, vt, m, n, k };
}
