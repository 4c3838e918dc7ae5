/**
 * Seed 000's claims about AdaBN with LoRA, each checked on the ablation's numbers: the paired
 * difference over seeds (treated minus its plain LoRA, seed by seed) with its 95% t-interval.
 * A claim held when every measure it names moved the claimed way with an interval that excludes
 * 0; it did not hold when one moved the other way so; otherwise it was not shown.
 *
 * @module
 */
import { meanCi } from "../eval/confidence.ts";
import type { AblationResults } from "./_ablation_report.ts";

/** A claim and the measures (keys) it is about. */
interface Claim {
  text: string;
  measures: readonly string[];
}

const CLAIMS: readonly Claim[] = [
  {
    text: "better PSNR, SSIM and FID on the target",
    measures: ["psnr_target", "ssim_target", "fd_target"],
  },
  { text: "generalizes better (held-out target loss)", measures: ["loss_target"] },
  {
    text: "overfits less / does not forget (source loss, PSNR, SSIM, FID)",
    measures: ["loss_source", "psnr_source", "ssim_source", "fd_source"],
  },
  { text: "trains faster (steps to the loss threshold)", measures: ["steps"] },
];

/** Condition keys compared: [treated, its plain LoRA]. */
const PAIRS: readonly (readonly [string, string])[] = [
  ["lora_adabn_before", "lora_bn"],
  ["lora_adabn_during", "lora_bn"],
  ["lora_norms_gn", "lora_gn"],
];

type Verdict = "better" | "worse" | "unclear";

function compare(
  r: AblationResults,
  key: string,
  treated: string,
  reference: string,
): { verdict: Verdict; text: string } {
  const m = r.measures.find((x) => x.key === key)!;
  const a = r.conditions.find((c) => c.name === treated)?.values[key] ?? [];
  const b = r.conditions.find((c) => c.name === reference)?.values[key] ?? [];
  const diffs = a.map((v, i) => v - b[i]!).filter(Number.isFinite);
  if (diffs.length === 0) return { verdict: "unclear", text: `${m.label}: no values` };
  const s = meanCi(diffs);
  const good = m.higherIsBetter ? s.mean > 0 : s.mean < 0;
  const clear = Number.isFinite(s.ci95) && Math.abs(s.mean) > s.ci95;
  const verdict: Verdict = !clear ? "unclear" : good ? "better" : "worse";
  const sign = s.mean > 0 ? "+" : "";
  const ci = Number.isFinite(s.ci95) ? ` ± ${s.ci95.toPrecision(3)}` : " (one seed, no interval)";
  const word = verdict === "unclear" ? "no clear difference" : verdict;
  return { verdict, text: `${m.label} ${sign}${s.mean.toPrecision(3)}${ci} (${word})` };
}

/**
 * One plain line per claim and comparison: whether it held in this run, with the paired
 * differences. `names` maps condition keys to the row names used in `r`.
 *
 * @example
 * ```ts ignore
 * for (const line of claimLines(results, names)) console.log(line);
 * ```
 */
export function claimLines(r: AblationResults, names: Record<string, string>): string[] {
  const lines: string[] = [];
  for (const claim of CLAIMS) {
    for (const [t, ref] of PAIRS) {
      const parts = claim.measures.map((k) => compare(r, k, names[t]!, names[ref]!));
      const verdict = parts.every((p) => p.verdict === "better")
        ? "held"
        : parts.some((p) => p.verdict === "worse")
        ? "did not hold"
        : "not shown";
      lines.push(
        `${claim.text}: ${names[t]} vs ${names[ref]}: ${verdict} (${
          parts.map((p) => p.text).join("; ")
        })`,
      );
    }
  }
  return lines;
}
