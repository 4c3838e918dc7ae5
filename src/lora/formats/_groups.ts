// Splits a LoRA file's tensor names into per-module groups, for the kohya / LyCORIS family
// (`<module>.<suffix>`, module names without dots) and the PEFT / diffusers family
// (`unet.<path>.lora_A.weight` and its older forms). Suffixes are normalised to one vocabulary:
// down, up, mid, alpha, dora_scale, hada_*, lokr_*, diff, diff_b, w_norm, b_norm.
import type { LoraComponent } from "../file_types.ts";

/** One module's tensors as named in the file. */
export interface KeyGroup {
  /** kohya module name (`lora_unet_...`) or, for PEFT, the diffusers path. */
  name: string;
  /** Component, known for PEFT keys; kohya names are resolved by the matcher. */
  component?: LoraComponent;
  /** Normalised suffix -> the file's full key. */
  keys: Map<string, string>;
}

const KOHYA_SUFFIXES: Record<string, string> = {
  "lora_down.weight": "down",
  "lora_up.weight": "up",
  "lora_mid.weight": "mid",
  "alpha": "alpha",
  "dora_scale": "dora_scale",
  "diff": "diff",
  "diff_b": "diff_b",
  "w_norm": "w_norm",
  "b_norm": "b_norm",
};
for (
  const s of [
    "hada_w1_a",
    "hada_w1_b",
    "hada_w2_a",
    "hada_w2_b",
    "hada_t1",
    "hada_t2",
    "lokr_w1",
    "lokr_w1_a",
    "lokr_w1_b",
    "lokr_w2",
    "lokr_w2_a",
    "lokr_w2_b",
    "lokr_t2",
  ]
) KOHYA_SUFFIXES[s] = s;

/** Whether a key belongs to the kohya / LyCORIS family (by its prefix). */
export function isKohyaKey(key: string): boolean {
  return /^lora_(unet|te\d?)_/.test(key);
}

function add(groups: Map<string, KeyGroup>, id: string, group: Omit<KeyGroup, "keys">): KeyGroup {
  let g = groups.get(id);
  if (!g) {
    g = { ...group, keys: new Map() };
    groups.set(id, g);
  }
  return g;
}

/**
 * Groups kohya / LyCORIS keys by module name; keys whose suffix is not one of the known ones go
 * to `unknown`.
 */
export function groupKohyaKeys(
  keys: readonly string[],
): { groups: Map<string, KeyGroup>; unknown: string[] } {
  const groups = new Map<string, KeyGroup>();
  const unknown: string[] = [];
  for (const key of keys) {
    const dot = key.indexOf(".");
    const suffix = dot < 0 ? undefined : KOHYA_SUFFIXES[key.slice(dot + 1)];
    if (suffix === undefined) {
      unknown.push(key);
      continue;
    }
    const name = key.slice(0, dot);
    const g = add(groups, name, { name });
    if (g.keys.has(suffix)) unknown.push(key);
    else g.keys.set(suffix, key);
  }
  return { groups, unknown };
}

// PEFT / diffusers tails, longest first: [regex on the part after the component prefix, suffix].
const PEFT_TAILS: [RegExp, string][] = [
  [/^(.+)\.lora_A(?:\.default)?\.weight$/, "down"],
  [/^(.+)\.lora_B(?:\.default)?\.weight$/, "up"],
  [/^(.+)\.lora_linear_layer\.down\.weight$/, "down"],
  [/^(.+)\.lora_linear_layer\.up\.weight$/, "up"],
  [/^(.+)\.lora\.down\.weight$/, "down"],
  [/^(.+)\.lora\.up\.weight$/, "up"],
  [/^(.+)\.lora_magnitude_vector(?:\.default)?(?:\.weight)?$/, "magnitude"],
  [/^(.+)\.alpha$/, "alpha"],
];

// Old attention-processor form: `<attn>.processor.to_q_lora.down.weight` -> `<attn>.to_q`.
const PROCESSOR = /^(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;

function peftComponent(key: string): [LoraComponent, string] | undefined {
  if (key.startsWith("unet.")) return ["unet", key.slice(5)];
  if (key.startsWith("text_encoder.")) return ["text_encoder", key.slice(13)];
  if (/^(down_blocks|mid_block|up_blocks|conv_in|conv_out|time_embedding)\./.test(key)) {
    return ["unet", key];
  }
  if (key.startsWith("text_model.")) return ["text_encoder", key];
  return undefined;
}

/** Groups PEFT / diffusers keys by (component, module path); the rest go to `unknown`. */
export function groupPeftKeys(
  keys: readonly string[],
): { groups: Map<string, KeyGroup>; unknown: string[] } {
  const groups = new Map<string, KeyGroup>();
  const unknown: string[] = [];
  for (const key of keys) {
    const split = peftComponent(key);
    let path: string | undefined, suffix: string | undefined;
    if (split) {
      const [, rest] = split;
      const p = rest.match(PROCESSOR);
      if (p) {
        path = `${p[1]}.${p[2] === "to_out" ? "to_out.0" : p[2]}`;
        suffix = p[3];
      } else {
        for (const [re, s] of PEFT_TAILS) {
          const m = rest.match(re);
          if (m) {
            path = m[1];
            suffix = s;
            break;
          }
        }
      }
    }
    if (!split || path === undefined || suffix === undefined) {
      unknown.push(key);
      continue;
    }
    const g = add(groups, `${split[0]}:${path}`, { name: path, component: split[0] });
    if (g.keys.has(suffix)) unknown.push(key);
    else g.keys.set(suffix, key);
  }
  return { groups, unknown };
}
