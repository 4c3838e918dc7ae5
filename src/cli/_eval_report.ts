/**
 * The result of `mod.ts eval`: its fields (also its JSON), issue 11's targets with pass / fail,
 * and the printed table.
 *
 * @module
 */
import type { AttributeScores } from "./_generation_measures.ts";
import type { ReconstructionScores } from "./_eval_vae.ts";

/** What `mod.ts eval` measured, and with which settings. */
export interface EvalReport {
  /** The model folder. */
  model: string;
  /** The `--lora` arguments, as given. */
  loras: string[];
  /** Images generated (and real images compared). */
  n: number;
  /** The procedural world's seed of the prompts and the real images. */
  seed: number;
  /** Sampling steps. */
  steps: number;
  /** Guidance scale. */
  cfg: number;
  /** Sampler. */
  sampler: string;
  /** Image side in pixels. */
  side: number;
  /** Attribute accuracy of the generated images against their prompts. */
  generated: AttributeScores;
  /** The same measures on the real procedural images (what the measures themselves reach). */
  real: AttributeScores;
  /**
   * The same measures on the VAE's reconstructions of the real images: the most generations can
   * show, since every one comes out of this decoder.
   */
  reconstructed: AttributeScores;
  /** VAE reconstruction of the real images. */
  vae: ReconstructionScores;
  /** Fréchet distance of classifier features, generated against real (a stand-in for FID). */
  classifierFrechet: number;
  /** Each target of issue 11 with the measured value and whether it is met. */
  targets: TargetCheck[];
  /** Wall time of the whole evaluation in seconds. */
  seconds: number;
}

/** One target of issue 11 against the measured value. */
export interface TargetCheck {
  /** What is measured. */
  name: string;
  /** The measured value. */
  value: number;
  /** The value to reach or pass. */
  target: number;
  /** Whether `value >= target`. */
  pass: boolean;
}

/** Issue 11's targets: colour accuracy >= 90%, shape accuracy >= 75%, VAE PSNR >= 28 dB. */
export const EVAL_TARGETS: Readonly<{ colour: number; shape: number; vaePsnr: number }> = {
  colour: 0.9,
  shape: 0.75,
  vaePsnr: 28,
};

/**
 * Checks the measured values against {@link EVAL_TARGETS}.
 *
 * @example
 * ```ts ignore
 * const checks = targetChecks(generated, { n: 64, psnr: 29, ssim: 0.9 });
 * console.log(checks.every((c) => c.pass));
 * ```
 */
export function targetChecks(
  generated: AttributeScores,
  vae: ReconstructionScores,
): TargetCheck[] {
  const check = (name: string, value: number, target: number): TargetCheck => ({
    name,
    value,
    target,
    pass: value >= target,
  });
  return [
    check("colour", generated.colour, EVAL_TARGETS.colour),
    check("shape", generated.shape, EVAL_TARGETS.shape),
    check("vaePsnr", vae.psnr, EVAL_TARGETS.vaePsnr),
  ];
}

const percent = (x: number): string => `${(100 * x).toFixed(1)}%`;

/**
 * The report as a table: one row per measure, the generated value, the real images' value, and
 * the target with a pass / fail mark where issue 11 sets one.
 *
 * @example
 * ```ts ignore
 * console.log(formatEvalTable(report));
 * ```
 */
export function formatEvalTable(r: EvalReport): string {
  const mark = (name: string, unit: (x: number) => string): [string, string] => {
    const t = r.targets.find((c) => c.name === name);
    return t ? [`>= ${unit(t.target)}`, t.pass ? "pass" : "FAIL"] : ["", ""];
  };
  const attr = (
    label: string,
    k: "colour" | "background" | "shape" | "count" | "fill",
    target: [string, string],
  ): string[] => [
    label,
    percent(r.generated[k]),
    percent(r.real[k]),
    percent(r.reconstructed[k]),
    ...target,
  ];
  const db = (x: number) => `${Number.isFinite(x) ? x.toFixed(2) : "inf"} dB`;
  const rows: string[][] = [
    ["measure", "generated", "real", "VAE recon.", "target", ""],
    attr("object colour (pixels)", "colour", mark("colour", percent)),
    attr("background colour (pixels)", "background", ["", ""]),
    attr("shape (classifier)", "shape", mark("shape", percent)),
    attr("count (classifier)", "count", ["", ""]),
    attr("fill (classifier)", "fill", ["", ""]),
    ["VAE reconstruction PSNR", "", "", db(r.vae.psnr), ...mark("vaePsnr", db)],
    ["VAE reconstruction SSIM", "", "", r.vae.ssim.toFixed(3), "", ""],
    ["classifier Fréchet distance*", r.classifierFrechet.toFixed(3), "0", "", "", ""],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const line = (row: string[]) =>
    row.map((cell, c) => c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))
      .join("  ").trimEnd();
  const lora = r.loras.length ? ` + LoRA ${r.loras.join(", ")}` : "";
  return [
    `eval: ${r.model}${lora}; ${r.n} prompts of world seed ${r.seed}, ${r.side}x${r.side}, ` +
    `${r.sampler} ${r.steps} steps, cfg ${r.cfg} (${r.seconds.toFixed(0)} s)`,
    "",
    ...rows.map(line),
    "",
    "* a small-scale stand-in for FID: the Fréchet distance of the attribute classifier's " +
    "features, generated against real; not comparable with published FIDs",
    "real: the same measures on the real procedural images of the prompts; VAE recon.: on the " +
    "VAE's reconstructions of them (the most a generation can show)",
  ].join("\n");
}
