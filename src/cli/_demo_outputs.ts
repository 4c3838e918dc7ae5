/**
 * The `train` demo's outputs beyond the trainer's own: before/after grids as JPEG scaled up with
 * nearest-neighbour (32x32 images are too small to judge), the measured effect as text lines,
 * and a section with both added to the run's HTML report.
 *
 * @module
 */
import { writeFileAtomic } from "../train/atomic_fs.ts";
import { base64, escapeHtml } from "../train/report_html.ts";
import { ATTRIBUTES, meanAttributeAccuracy } from "./_generation_measures.ts";
import { imageGrid } from "./_grid.ts";
import { encodeJpeg, type RgbImage } from "./_image.ts";
import type { DemoMeasures } from "./_demo_measure.ts";

/** Least share of trigger prompts that should show the concept (issue 11). */
export const CONCEPT_TARGET = 0.8;
/** Largest acceptable drop of the mean attribute accuracy without the trigger, in points. */
export const DRIFT_TARGET_POINTS = 5;

// img: [h, w, 3] -> [h k, w k, 3]
/**
 * An image scaled up `k` times, each pixel a `k x k` block.
 *
 * @example
 * ```ts
 * import { upscaleNearest } from "./_demo_outputs.ts";
 * const big = upscaleNearest({ width: 1, height: 1, rgb: new Uint8Array([9, 8, 7]) }, 2);
 * console.log(big.width, big.rgb.length); // 2 12
 * ```
 */
export function upscaleNearest(img: RgbImage, k: number): RgbImage {
  const W = img.width * k, H = img.height * k;
  const rgb = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    const row = Math.floor(y / k) * img.width;
    for (let x = 0; x < W; x++) {
      const src = 3 * (row + Math.floor(x / k)), dst = 3 * (y * W + x);
      rgb[dst] = img.rgb[src]!;
      rgb[dst + 1] = img.rgb[src + 1]!;
      rgb[dst + 2] = img.rgb[src + 2]!;
    }
  }
  return { width: W, height: H, rgb };
}

// images: n RGB byte arrays [side, side, 3]
/**
 * The images as one grid (A1111's layout), scaled up `k` times, as JPEG bytes.
 *
 * @example
 * ```ts
 * import { gridJpeg } from "./_demo_outputs.ts";
 * const jpeg = gridJpeg([new Uint8Array(12), new Uint8Array(12)], 2, 8);
 * console.log(jpeg[0], jpeg[1]); // 255 216
 * ```
 */
export function gridJpeg(images: readonly Uint8Array[], side: number, k: number): Uint8Array {
  const grid = imageGrid(images.map((rgb) => ({ width: side, height: side, rgb })));
  return encodeJpeg(upscaleNearest(grid, k), 90);
}

const pct = (x: number): string => `${Math.round(100 * x)}%`;
const points = (x: number): string => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;

/**
 * The measured effect as printable lines: the share of trigger prompts showing the concept (base
 * and LoRA), their held-out denoising loss (base and LoRA), the VAE's ceiling on that share, and
 * each attribute's accuracy without the trigger (base, LoRA, change in points).
 *
 * @example
 * ```ts ignore
 * for (const line of effectLines(measures, ceiling, "zqstar", "star")) console.log(line);
 * ```
 */
export function effectLines(
  m: DemoMeasures,
  ceiling: number,
  trigger: string,
  shape: string,
): string[] {
  const n = m.conceptLora.scores.n, share = m.conceptLora.scores.shape;
  const base = m.conceptBase.scores.shape;
  const drift = meanAttributeAccuracy(m.plainLora.scores) -
    meanAttributeAccuracy(m.plainBase.scores);
  const met = (ok: boolean) => (ok ? "met" : "not met");
  return [
    `concept: ${pct(share)} of ${n} prompts with "${trigger}" show a ${shape} with the LoRA ` +
    `(${Math.round(share * n)}/${n}), base model ${pct(base)} (${Math.round(base * n)}/${n}); ` +
    `target >= ${pct(CONCEPT_TARGET)}: ${met(share >= CONCEPT_TARGET)}`,
    `held-out denoising loss on these ${n} unseen scenes (fixed timesteps and noise): base ` +
    `${m.lossBase.toFixed(4)} -> LoRA ${m.lossLora.toFixed(4)} (${
      points((m.lossLora - m.lossBase) / m.lossBase)
    }%)`,
    `ceiling: the same scenes drawn exactly and passed through the VAE read as a ${shape} in ` +
    `${pct(ceiling)}; every generated image comes out of that decoder, so it bounds what a ` +
    `LoRA on the U-Net and text encoder can show`,
    `without the trigger (${m.plainLora.scores.n} prompts), attribute accuracy base -> LoRA: ` +
    ATTRIBUTES.map((k) => `${k} ${pct(m.plainBase.scores[k])} -> ${pct(m.plainLora.scores[k])}`)
      .join(", "),
    `mean attribute accuracy ${pct(meanAttributeAccuracy(m.plainBase.scores))} -> ${
      pct(meanAttributeAccuracy(m.plainLora.scores))
    } (${points(drift)} points); target at most ${DRIFT_TARGET_POINTS} points lower: ` +
    met(drift * 100 >= -DRIFT_TARGET_POINTS),
  ];
}

/** One grid shown in the report. */
export interface ReportGrid {
  /** Its caption. */
  label: string;
  /** JPEG bytes. */
  jpeg: Uint8Array;
}

/**
 * Adds a "Demo" section (the effect lines and the grids, embedded) to the trainer's report page,
 * before its samples; writes the page atomically.
 *
 * @example
 * ```ts ignore
 * await addDemoSection("runs/demo/logs/report.html", lines, [{ label: "base", jpeg }]);
 * ```
 */
export async function addDemoSection(
  reportPath: string,
  lines: readonly string[],
  grids: readonly ReportGrid[],
): Promise<void> {
  const html = await Deno.readTextFile(reportPath);
  const figures = grids.map((g) =>
    `<figure><img style="max-width:480px" alt="${
      escapeHtml(g.label)
    }" src="data:image/jpeg;base64,${base64(g.jpeg)}"><figcaption>${
      escapeHtml(g.label)
    }</figcaption></figure>`
  ).join("\n");
  const section = `<h2>Demo: measured effect</h2>
<ul>${lines.map((l) => `<li>${escapeHtml(l)}</li>`).join("")}</ul>
<div style="display:flex;flex-wrap:wrap;gap:1em">${figures}</div>
`;
  const at = html.indexOf("<h2>Samples</h2>");
  const i = at >= 0 ? at : html.lastIndexOf("</body>");
  await writeFileAtomic(reportPath, html.slice(0, i) + section + html.slice(i));
}
