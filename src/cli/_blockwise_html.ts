/**
 * The block-wise ablation's page (`index.html` in the run folder): the settings, one line per
 * claim, the chart and table, and the sample grid of every condition for every seed and prompt
 * set (JPEG files beside the page, linked by relative paths).
 *
 * @module
 */
import { escapeHtml } from "../train/report_html.ts";

/** One grid image of a condition. */
export interface BlockwiseFigure {
  /** Its caption, e.g. "seed 1, both triggers". */
  label: string;
  /** Its path relative to the page. */
  src: string;
}

/** What the page shows. */
export interface BlockwisePage {
  /** Page title. */
  title: string;
  /** Settings and notes, one line each. */
  settings: readonly string[];
  /** One line per claim. */
  claims: readonly string[];
  /** The markdown table (shown as text). */
  table: string;
  /** The chart's path relative to the page. */
  chart: string;
  /** Every condition with its grids. */
  rows: readonly { name: string; figures: readonly BlockwiseFigure[] }[];
}

const list = (lines: readonly string[]): string =>
  `<ul>${lines.map((l) => `<li>${escapeHtml(l)}</li>`).join("\n")}</ul>`;

/**
 * The page as HTML text.
 *
 * @example
 * ```ts
 * import { blockwiseHtml } from "./_blockwise_html.ts";
 * const html = blockwiseHtml({
 *   title: "t", settings: [], claims: ["x: yes"], table: "| a |", chart: "chart.svg",
 *   rows: [{ name: "base", figures: [{ label: "seed 1", src: "grids/base.jpg" }] }],
 * });
 * console.log(html.includes('src="grids/base.jpg"')); // true
 * ```
 */
export function blockwiseHtml(page: BlockwisePage): string {
  const rows = page.rows.map((r) => {
    const figures = r.figures.map((f) =>
      `<figure><img src="${escapeHtml(f.src)}" alt="${escapeHtml(`${r.name}, ${f.label}`)}">` +
      `<figcaption>${escapeHtml(f.label)}</figcaption></figure>`
    ).join("\n");
    return `<h3>${escapeHtml(r.name)}</h3>\n<div class="grids">${figures}</div>`;
  }).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(page.title)}</title>
<style>
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
.grids { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { width: 256px; image-rendering: pixelated; }
pre { overflow-x: auto; }
</style>
</head>
<body>
<h1>${escapeHtml(page.title)}</h1>
${list(page.settings)}
<h2>Claims in this run</h2>
${list(page.claims)}
<h2>Results</h2>
<img src="${escapeHtml(page.chart)}" alt="chart of every measure by condition">
<pre>${escapeHtml(page.table)}</pre>
<h2>Samples</h2>
${rows}
</body>
</html>
`;
}
