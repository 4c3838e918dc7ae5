/**
 * The ablations' shared outputs: per-seed values of every measure under every condition,
 * summarized as means with 95% confidence intervals in a markdown table, a JSON object, and an
 * SVG chart (one panel per measure, a bar per condition with its interval).
 *
 * @module
 */
import { type MeanCi, meanCi } from "../eval/confidence.ts";
import { niceTicks } from "../train/loss_svg.ts";
import { escapeHtml } from "../train/report_html.ts";

/** One measured quantity. */
export interface AblationMeasure {
  /** Key in the JSON and in {@link AblationCondition.values}. */
  key: string;
  /** Column label. */
  label: string;
  /** Whether a larger value is better (stated in the table header). */
  higherIsBetter: boolean;
}

/** One condition with its per-seed values of each measure. */
export interface AblationCondition {
  /** Row label. */
  name: string;
  /** Measure key -> one value per seed (NaN where a measure does not apply). */
  values: Record<string, number[]>;
}

/** A whole ablation's results. */
export interface AblationResults {
  /** Title of the table and chart. */
  title: string;
  /** The seeds every condition ran with. */
  seeds: number[];
  /** Columns. */
  measures: AblationMeasure[];
  /** Rows. */
  conditions: AblationCondition[];
}

function summary(values: readonly number[] | undefined): MeanCi | undefined {
  const finite = (values ?? []).filter(Number.isFinite);
  return finite.length ? meanCi(finite) : undefined;
}

function cell(s: MeanCi | undefined): string {
  if (!s) return "-";
  const digits = Math.abs(s.mean) >= 100 ? 1 : Math.abs(s.mean) >= 1 ? 3 : 4;
  return Number.isNaN(s.ci95)
    ? s.mean.toFixed(digits)
    : `${s.mean.toFixed(digits)} ± ${s.ci95.toFixed(digits)}`;
}

/**
 * The markdown table: a row per condition, "mean ± 95% CI half-width" per measure.
 *
 * @example
 * ```ts
 * import { ablationMarkdown } from "./_ablation_report.ts";
 * console.log(ablationMarkdown({
 *   title: "t", seeds: [1, 2],
 *   measures: [{ key: "loss", label: "loss", higherIsBetter: false }],
 *   conditions: [{ name: "base", values: { loss: [0.1, 0.12] } }],
 * }));
 * ```
 */
export function ablationMarkdown(r: AblationResults): string {
  const head = r.measures.map((m) =>
    `${m.label} (${m.higherIsBetter ? "higher" : "lower"} better)`
  );
  const rows = r.conditions.map((c) =>
    `| ${c.name} | ${r.measures.map((m) => cell(summary(c.values[m.key]))).join(" | ")} |`
  );
  return [
    `### ${r.title}`,
    "",
    `Seeds ${r.seeds.join(", ")}; mean ± half-width of the 95% t-interval over seeds.`,
    "",
    `| condition | ${head.join(" | ")} |`,
    `| --- | ${r.measures.map(() => "---:").join(" | ")} |`,
    ...rows,
    "",
  ].join("\n");
}

/** The JSON form: every per-seed value and its summary. */
export function ablationJson(r: AblationResults): Record<string, unknown> {
  return {
    title: r.title,
    seeds: r.seeds,
    measures: r.measures,
    conditions: r.conditions.map((c) => ({
      name: c.name,
      measures: Object.fromEntries(r.measures.map((m) => {
        const s = summary(c.values[m.key]);
        return [m.key, {
          values: c.values[m.key] ?? [],
          mean: s?.mean ?? null,
          ci95: s && Number.isFinite(s.ci95) ? s.ci95 : null,
        }];
      })),
    })),
  };
}

const PANEL_W = 260, BAR_H = 16, LABEL_W = 190, PAD = 8;

/**
 * The SVG chart: one panel per measure side by side, a horizontal bar per condition (its mean)
 * with a whisker for the 95% interval. Self-contained (no scripts, fonts or references).
 */
export function ablationSvg(r: AblationResults): string {
  const rowsH = r.conditions.length * (BAR_H + 4);
  const height = 40 + rowsH + 30, width = LABEL_W + r.measures.length * (PANEL_W + PAD) + PAD;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${PAD}" y="16" font-size="13">${escapeHtml(r.title)}</text>`,
  ];
  r.conditions.forEach((c, i) => {
    const y = 40 + i * (BAR_H + 4) + BAR_H - 4;
    parts.push(`<text x="${LABEL_W - 4}" y="${y}" text-anchor="end">${escapeHtml(c.name)}</text>`);
  });
  r.measures.forEach((m, k) => {
    const x0 = LABEL_W + k * (PANEL_W + PAD);
    const stats = r.conditions.map((c) => summary(c.values[m.key]));
    const ends = stats.flatMap((s) =>
      s ? [s.mean, s.mean + (Number.isFinite(s.ci95) ? s.ci95 : 0), s.mean - (s.ci95 || 0)] : []
    ).filter(Number.isFinite);
    // a panel of zeros still gets a unit axis (not ticks at 1e-12)
    const lo = Math.min(0, ...ends), top = Math.max(0, ...ends);
    const hi = top > lo ? top : lo + 1;
    const sx = (v: number) => x0 + ((v - lo) / (hi - lo)) * PANEL_W;
    parts.push(
      `<text x="${x0}" y="32">${escapeHtml(m.label)} (${m.higherIsBetter ? "↑" : "↓"})</text>`,
      `<line x1="${sx(0)}" y1="36" x2="${sx(0)}" y2="${40 + rowsH}" stroke="#888"/>`,
    );
    stats.forEach((s, i) => {
      if (!s) return;
      const y = 40 + i * (BAR_H + 4);
      const a = Math.min(sx(0), sx(s.mean)), w = Math.abs(sx(s.mean) - sx(0));
      parts.push(`<rect x="${a}" y="${y}" width="${w}" height="${BAR_H}" fill="#6a9fd4"/>`);
      if (Number.isFinite(s.ci95)) {
        const cy = y + BAR_H / 2;
        parts.push(
          `<line x1="${sx(s.mean - s.ci95)}" y1="${cy}" x2="${sx(s.mean + s.ci95)}" y2="${cy}" ` +
            `stroke="black"/>`,
        );
      }
    });
    for (const t of niceTicks(lo, hi, 3)) {
      parts.push(
        `<text x="${sx(t)}" y="${40 + rowsH + 14}" text-anchor="middle">${t}</text>`,
      );
    }
  });
  parts.push("</svg>");
  return parts.join("\n");
}
