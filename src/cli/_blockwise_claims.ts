/**
 * Seed 002's claims, checked against one block-wise ablation run: whether each block-wise
 * composition beats the all-block composition of the same type on prompts with both triggers,
 * and whether the "upper" preset keeps identity and style best. One plain line per claim, with
 * the means (and paired differences over seeds with their 95% intervals).
 *
 * @module
 */
import { meanCi } from "../eval/confidence.ts";
import type { AblationResults } from "./_ablation_report.ts";
import { IDENTITY_CONCEPT, STYLE_CONCEPT } from "../eval/concepts.ts";
import {
  adapterLabel,
  type AdapterType,
  type BlockChoice,
  type BlockwisePreset,
  TYPE_LABEL,
} from "./_blockwise_plan.ts";
import { compositionName } from "./_blockwise_conditions.ts";

function seedValues(r: AblationResults, name: string, key: string): number[] {
  const c = r.conditions.find((x) => x.name === name);
  if (!c) throw new RangeError(`No condition ${JSON.stringify(name)} in the results`);
  return c.values[key] ?? [];
}

const mean = (v: readonly number[]): number => meanCi(v).mean;
const f3 = (x: number): string => x.toFixed(3);
const signed = (x: number): string => `${x >= 0 ? "+" : ""}${f3(x)}`;
const yes = (ok: boolean): string => (ok ? "yes" : "no");

// a - b per seed: its mean, and whether its 95% interval excludes 0 (needs 2+ seeds)
function difference(a: readonly number[], b: readonly number[]): { mean: number; text: string } {
  const d = meanCi(a.map((v, i) => v - b[i]!));
  const text = Number.isNaN(d.ci95)
    ? `difference ${signed(d.mean)}, one seed: no interval`
    : `difference ${signed(d.mean)} ± ${f3(d.ci95)}, interval excludes 0: ${
      yes(Math.abs(d.mean) > d.ci95)
    }`;
  return { mean: d.mean, text };
}

const BOTH = [["bothIdentity", "identity acc."], ["bothStyle", "style score"]] as const;

function beatsAllBlock(r: AblationResults, type: AdapterType, id: BlockChoice, style: BlockChoice) {
  const name = compositionName(type, id, style), ref = compositionName(type, "all", "all");
  const parts = BOTH.map(([key, label]) => {
    const a = seedValues(r, name, key), b = seedValues(r, ref, key);
    const d = difference(a, b);
    return { better: d.mean > 0, text: `${label} ${f3(mean(a))} vs ${f3(mean(b))} (${d.text})` };
  });
  return `${name} beats ${ref} on both identity accuracy and style score (prompts with both ` +
    `triggers): ${yes(parts.every((p) => p.better))}; ${parts.map((p) => p.text).join("; ")}`;
}

function upperBest(
  r: AblationResults,
  what: string,
  key: string,
  names: Record<BlockwisePreset, string>,
  presets: readonly BlockwisePreset[],
): string {
  const means = presets.map((p) => [p, mean(seedValues(r, names[p], key))] as const);
  const top = Math.max(...means.map(([, m]) => m));
  const upper = means.find(([p]) => p === "upper")![1];
  return `${what}: ${yes(upper === top && means.filter(([, m]) => m === top).length === 1)} (${
    means.map(([p, m]) => `${p} ${f3(m)}`).join(", ")
  })`;
}

/**
 * One line per claim: per type, each block-wise composition against the all-block one (the
 * block-wise "combines identity and style better" claim: better means on both measures), and,
 * with "upper" and another preset, whether upper is the unique best preset for identity and for
 * style, alone and in the both-block-wise composition.
 *
 * @example
 * ```ts ignore
 * for (const line of blockwiseClaims(results, ["upper", "lower"], ["lora"])) console.log(line);
 * ```
 */
export function blockwiseClaims(
  r: AblationResults,
  presets: readonly BlockwisePreset[],
  types: readonly AdapterType[],
): string[] {
  return types.flatMap((type) => {
    const t = TYPE_LABEL[type];
    const lines = presets.flatMap((p) => [
      beatsAllBlock(r, type, p, "all"),
      beatsAllBlock(r, type, "all", p),
      beatsAllBlock(r, type, p, p),
    ]);
    if (!presets.includes("upper") || presets.length < 2) return lines;
    const by = (f: (p: BlockwisePreset) => string) =>
      Object.fromEntries(presets.map((p) => [p, f(p)])) as Record<BlockwisePreset, string>;
    const both = by((p) => compositionName(type, p, p));
    return [
      ...lines,
      upperBest(
        r,
        `${t}: upper-block ID keeps the identity best alone (highest identity accuracy with ` +
          "the ID trigger of the block-wise ID adapters)",
        "identity",
        by((blocks) => adapterLabel({ concept: IDENTITY_CONCEPT, blocks, type })),
        presets,
      ),
      upperBest(
        r,
        `${t}: upper-block style keeps the style best alone (highest style score with the ` +
          "style trigger of the block-wise style adapters)",
        "style",
        by((blocks) => adapterLabel({ concept: STYLE_CONCEPT, blocks, type })),
        presets,
      ),
      upperBest(
        r,
        `${t}: upper + upper keeps the identity best when composed (highest identity accuracy ` +
          "with both triggers of the both-block-wise compositions)",
        "bothIdentity",
        both,
        presets,
      ),
      upperBest(
        r,
        `${t}: upper + upper keeps the style best when composed (highest style score with both ` +
          "triggers of the both-block-wise compositions)",
        "bothStyle",
        both,
        presets,
      ),
    ];
  });
}
