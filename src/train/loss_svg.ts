/**
 * A self-contained loss-curve SVG: raw loss per step (light) and its smoothed curve (dark), with
 * axis ticks and labels; no scripts, fonts or external references.
 *
 * @module
 */

/** One logged point. */
export interface LossPoint {
  /** Optimizer step. */
  step: number;
  /** Loss at that step. */
  loss: number;
  /** Smoothed loss, when logged. */
  smoothed?: number;
}

/** `n` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : `${v}`;
}

/**
 * The SVG text of the curve (`width` x `height` pixels).
 *
 * @example
 * ```ts
 * import { lossCurveSvg } from "./loss_svg.ts";
 * const svg = lossCurveSvg([{ step: 1, loss: 0.5 }, { step: 2, loss: 0.4 }]);
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function lossCurveSvg(points: readonly LossPoint[], width = 640, height = 320): string {
  const pts = points.filter((p) => Number.isFinite(p.loss));
  const left = 56, right = 12, top = 12, bottom = 32;
  const pw = width - left - right, ph = height - top - bottom;
  const head =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">` +
    `<rect width="${width}" height="${height}" fill="#fff"/>`;
  if (pts.length === 0) {
    return `${head}<text x="${width / 2}" y="${
      height / 2
    }" text-anchor="middle">no loss logged yet</text></svg>`;
  }
  const s0 = pts[0]!.step, s1 = Math.max(pts.at(-1)!.step, s0 + 1);
  let lo = Math.min(...pts.map((p) => p.loss)), hi = Math.max(...pts.map((p) => p.loss));
  if (hi === lo) [lo, hi] = [lo - 0.5 * Math.abs(lo || 1), hi + 0.5 * Math.abs(hi || 1)];
  const x = (s: number) => (left + (s - s0) / (s1 - s0) * pw).toFixed(1);
  const y = (v: number) => (top + (1 - (v - lo) / (hi - lo)) * ph).toFixed(1);
  const line = (vals: [number, number][], color: string, w: number) =>
    `<polyline fill="none" stroke="${color}" stroke-width="${w}" points="${
      vals.map(([s, v]) => `${x(s)},${y(v)}`).join(" ")
    }"/>`;
  const parts = [head];
  for (const t of niceTicks(lo, hi)) {
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/>`,
      `<text x="${left - 4}" y="${y(t)}" text-anchor="end" dominant-baseline="middle">${
        fmt(t)
      }</text>`,
    );
  }
  for (const t of niceTicks(s0, s1)) {
    parts.push(`<text x="${x(t)}" y="${height - 14}" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
    line(pts.map((p) => [p.step, p.loss]), "#9ecae1", 1),
  );
  const sm = pts.filter((p) => p.smoothed !== undefined && Number.isFinite(p.smoothed));
  if (sm.length > 0) parts.push(line(sm.map((p) => [p.step, p.smoothed!]), "#08519c", 2));
  parts.push(
    `<text x="${left + pw / 2}" y="${height - 2}" text-anchor="middle">step</text>`,
    `<text x="12" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 12 ${
      top + ph / 2
    })">loss</text>`,
    "</svg>",
  );
  return parts.join("");
}
