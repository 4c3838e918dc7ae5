/**
 * PEFT / diffusers adapter metadata: diffusers stores each component's `LoraConfig` as JSON in
 * the safetensors metadata key `lora_adapter_metadata`, its fields prefixed by the component
 * (`unet.r`, `unet.lora_alpha`, `unet.alpha_pattern`, ...; diffusers `loaders/lora_base.py`,
 * `_pack_dict_with_prefix`). PEFT's scale is `lora_alpha / r` (`lora_alpha / sqrt(r)` with
 * `use_rslora`), patterns match a module path that ends with the pattern.
 *
 * @module
 */
import type { LoraComponent, LoraEntry } from "../file_types.ts";
import { LoraFileError } from "./errors.ts";

/** The metadata key diffusers stores adapter configs under. */
export const PEFT_METADATA_KEY = "lora_adapter_metadata";

interface Config {
  r?: number;
  lora_alpha?: number;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  use_rslora?: boolean;
}

function patternValue(patterns: Record<string, number> | undefined, path: string) {
  if (!patterns) return undefined;
  for (const [p, v] of Object.entries(patterns)) {
    if (path === p || path.endsWith(`.${p}`)) return v;
    try {
      if (new RegExp(`^(.*\\.)?${p}$`).test(path)) return v;
    } catch { /* not a regular expression: the plain comparisons above decide */ }
  }
  return undefined;
}

/**
 * A function giving each module's alpha (in kohya's sense, scale = alpha / rank) from the
 * metadata, or undefined when the file carries no adapter config.
 */
export function peftAlphas(
  metadata: Readonly<Record<string, string>>,
): ((component: LoraComponent, path: string, rank: number) => number | undefined) | undefined {
  const text = metadata[PEFT_METADATA_KEY];
  if (text === undefined) return undefined;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LoraFileError(
      `The "${PEFT_METADATA_KEY}" metadata is not valid JSON (${(e as Error).message}); the ` +
        "file is damaged, so export it again",
    );
  }
  const configs = new Map<string, Config>();
  for (const [k, v] of Object.entries(json)) {
    const dot = k.indexOf(".");
    const [prefix, field] = dot < 0 ? ["", k] : [k.slice(0, dot), k.slice(dot + 1)];
    const c = configs.get(prefix) ?? {};
    (c as Record<string, unknown>)[field] = v;
    configs.set(prefix, c);
  }
  return (component, path, rank) => {
    const c = configs.get(component) ?? configs.get("");
    if (!c) return undefined;
    const alpha = patternValue(c.alpha_pattern, path) ?? c.lora_alpha;
    if (typeof alpha !== "number") return undefined;
    return c.use_rslora ? alpha * Math.sqrt(rank) : alpha;
  };
}

function mostCommon(values: number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = values[0] ?? 0, n = 0;
  for (const [v, c] of counts) if (c > n) [best, n] = [v, c];
  return best;
}

/**
 * The `lora_adapter_metadata` JSON for LoRA entries, as diffusers writes it: per component the
 * most common rank and alpha, with `rank_pattern` / `alpha_pattern` for the others (a missing
 * alpha becomes the rank, i.e. scale 1).
 *
 * @example
 * ```ts
 * import { peftAdapterMetadata } from "./peft_metadata.ts";
 * const json = peftAdapterMetadata([{
 *   component: "unet", path: "mid_block.attentions.0.proj_in", kind: "lora", alpha: 2, tensors: {},
 *   down: { shape: [4, 8], data: new Float32Array(32) }, up: { shape: [8, 4], data: new Float32Array(32) },
 * }]);
 * console.log(JSON.parse(json)["unet.lora_alpha"]); // 2
 * ```
 */
export function peftAdapterMetadata(entries: readonly LoraEntry[]): string {
  const out: Record<string, unknown> = {};
  for (const component of ["unet", "text_encoder"] as const) {
    const mine = entries.filter((e) => e.component === component && e.down);
    if (mine.length === 0) continue;
    const ranks = mine.map((e) => e.down!.shape[0]!);
    const alphas = mine.map((e, i) => e.alpha ?? ranks[i]!);
    const r = mostCommon(ranks), alpha = mostCommon(alphas);
    const rankPattern: Record<string, number> = {}, alphaPattern: Record<string, number> = {};
    mine.forEach((e, i) => {
      if (ranks[i] !== r) rankPattern[e.path] = ranks[i]!;
      if (alphas[i] !== alpha) alphaPattern[e.path] = alphas[i]!;
    });
    out[`${component}.r`] = r;
    out[`${component}.lora_alpha`] = alpha;
    out[`${component}.rank_pattern`] = rankPattern;
    out[`${component}.alpha_pattern`] = alphaPattern;
    out[`${component}.target_modules`] = mine.map((e) => e.path).sort();
    out[`${component}.use_dora`] = false;
    out[`${component}.use_rslora`] = false;
    out[`${component}.lora_dropout`] = 0;
    out[`${component}.bias`] = "none";
    out[`${component}.init_lora_weights`] = true;
  }
  const sorted = Object.fromEntries(Object.entries(out).sort(([a], [b]) => a < b ? -1 : 1));
  return JSON.stringify(sorted, null, 2);
}
