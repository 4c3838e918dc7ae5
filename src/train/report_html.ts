/**
 * The run's HTML report: one self-contained page (no external assets) with the sample grid over
 * time (JPEG bytes embedded as data URIs), the loss curve (inline SVG) and the settings table.
 *
 * @module
 */

/** One sample image of the grid. */
export interface ReportSample {
  /** The step it was made at (0 = before training). */
  step: number;
  /** Index of its prompt. */
  prompt: number;
  /** JPEG bytes. */
  jpeg: Uint8Array;
}

/** What the report shows. */
export interface ReportInput {
  /** The page title (the output name). */
  title: string;
  /** Run settings, shown as a table. */
  settings: Record<string, string | number | boolean>;
  /** The loss-curve SVG text. */
  lossSvg: string;
  /** Sample prompts, by index. */
  prompts: readonly string[];
  /** Sample images. */
  samples: readonly ReportSample[];
}

/** Escapes text for HTML content and attributes. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Base64 of bytes (web API only). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * The report page.
 *
 * @example
 * ```ts
 * import { reportHtml } from "./report_html.ts";
 * const html = reportHtml({ title: "dog", settings: { lr: 1e-4 }, lossSvg: "<svg/>", prompts: [], samples: [] });
 * console.log(html.includes("<table")); // true
 * ```
 */
export function reportHtml(input: ReportInput): string {
  const steps = [...new Set(input.samples.map((s) => s.step))].sort((a, b) => a - b);
  const cell = (step: number, p: number): string => {
    const s = input.samples.find((x) => x.step === step && x.prompt === p);
    return s
      ? `<td><img alt="step ${step}, prompt ${p + 1}" src="data:image/jpeg;base64,${
        base64(s.jpeg)
      }"></td>`
      : "<td></td>";
  };
  const grid = steps.length === 0 ? "<p>No samples yet.</p>" : [
    "<table class=grid><tr><th>step</th>",
    ...input.prompts.map((p) => `<th>${escapeHtml(p)}</th>`),
    "</tr>",
    ...steps.map((st) =>
      `<tr><th>${st}</th>${input.prompts.map((_, p) => cell(st, p)).join("")}</tr>`
    ),
    "</table>",
  ].join("");
  const rows = Object.entries(input.settings).map(([k, v]) =>
    `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(String(v))}</td></tr>`
  ).join("");
  const title = escapeHtml(input.title);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}
.grid img{max-width:256px;display:block}</style></head>
<body><h1>${title}</h1>
<h2>Samples</h2>${grid}
<h2>Loss</h2>${input.lossSvg}
<h2>Settings</h2><table class=settings>${rows}</table>
</body></html>
`;
}
