/**
 * A module tree read off a LoRA file itself, for tools that work without the model (resize,
 * convert, info): kohya names are turned back into diffusers paths by joining the underscored
 * words SD 1.x module names are made of (`down_blocks`, `transformer_blocks`, `to_q`, ...; the
 * same repair diffusers' `_convert_unet_lora_key` does), PEFT keys carry their paths, and each
 * module's weight shape follows from its tensors. No architecture or width checks are possible
 * without the model; read against the model for those.
 *
 * @module
 */
import type { SafetensorsReader } from "../../nn/safetensors.ts";
import type { LoraComponent } from "../file_types.ts";
import { groupKohyaKeys, groupPeftKeys, isKohyaKey } from "./_groups.ts";
import type { LoraModelShapes, LoraModuleShape } from "./model_shapes.ts";
import { SD15_UNET_CONFIG, type UNetConfig } from "../../nn/unet.ts";
import { unetKeyFromOriginal } from "../svd_extract_keys.ts";

// Module-name words that contain underscores, longest first.
const WORDS: string[][] = [
  "conv_norm_out",
  "final_layer_norm",
  "time_emb_proj",
  "down_blocks",
  "mid_block",
  "up_blocks",
  "transformer_blocks",
  "proj_in",
  "proj_out",
  "to_q",
  "to_k",
  "to_v",
  "to_out",
  "conv_shortcut",
  "conv_in",
  "conv_out",
  "time_embedding",
  "linear_1",
  "linear_2",
  "text_model",
  "self_attn",
  "q_proj",
  "k_proj",
  "v_proj",
  "out_proj",
  "layer_norm1",
  "layer_norm2",
  "input_blocks",
  "middle_block",
  "output_blocks",
  "in_layers",
  "out_layers",
  "emb_layers",
  "skip_connection",
  "time_embed",
].map((w) => w.split("_")).sort((a, b) => b.length - a.length);

/**
 * The diffusers path of a kohya module name (`lora_unet_down_blocks_0_attentions_0_proj_in` ->
 * `unet`, `down_blocks.0.attentions.0.proj_in`), or undefined for another prefix.
 *
 * @example
 * ```ts
 * import { kohyaNameToPath } from "./file_shapes.ts";
 * console.log(kohyaNameToPath("lora_te_text_model_encoder_layers_0_self_attn_q_proj"));
 * // ["text_encoder", "text_model.encoder.layers.0.self_attn.q_proj"]
 * ```
 */
export function kohyaNameToPath(name: string): [LoraComponent, string] | undefined {
  const m = name.match(/^lora_(unet|te)_(.+)$/);
  if (!m) return undefined;
  const parts = m[2]!.split("_");
  const out: string[] = [];
  for (let i = 0; i < parts.length;) {
    const w = WORDS.find((w) => w.every((p, j) => parts[i + j] === p));
    out.push(w ? w.join("_") : parts[i]!);
    i += w ? w.length : 1;
  }
  return [m[1] === "unet" ? "unet" : "text_encoder", out.join(".")];
}

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function weightShape(shape: (s: string) => readonly number[] | undefined): number[] | undefined {
  const down = shape("down"), up = shape("up"), mid = shape("mid");
  if (down && up) {
    const k = (mid ?? down).slice(2);
    return [up[0]!, down[1]!, ...k];
  }
  const w1a = shape("hada_w1_a"), w1b = shape("hada_w1_b"), t1 = shape("hada_t1");
  if (w1a && w1b) return t1 ? [w1a[1]!, w1b[1]!, ...t1.slice(2)] : [w1a[0]!, w1b[1]!];
  const lokr = (n: 1 | 2): number[] | undefined => {
    const full = shape(`lokr_w${n}`);
    if (full) return [...full];
    const a = shape(`lokr_w${n}_a`), b = shape(`lokr_w${n}_b`), t = shape("lokr_t2");
    if (!a || !b) return undefined;
    return n === 2 && t ? [a[1]!, b[1]!, ...t.slice(2)] : [a[0]!, numel(b.slice(1))];
  };
  const k1 = lokr(1), k2 = lokr(2);
  if (k1 && k2) return [k1[0]! * k2[0]!, k1[1]! * k2[1]!, ...k2.slice(2)];
  const diff = shape("diff");
  if (diff) return [...diff];
  const norm = shape("w_norm") ?? shape("b_norm");
  if (norm) return [numel(norm)];
  return undefined;
}

/**
 * The module tree a LoRA file implies (paths from its names, shapes from its tensors), for
 * reading it with {@link readLora} when no model is at hand. LDM-style names
 * (`input_blocks_4_1_...`) are mapped to diffusers paths with `unetConfig` (default SD 1.x).
 * Modules whose names or tensors do not make sense are left out, so reading reports their keys
 * as unmatched.
 */
export function fileModelShapes(
  reader: SafetensorsReader,
  unetConfig: UNetConfig = SD15_UNET_CONFIG,
): LoraModelShapes {
  const kohya = reader.keys.some(isKohyaKey);
  const { groups } = kohya
    ? groupKohyaKeys(reader.keys.filter(isKohyaKey))
    : groupPeftKeys(reader.keys);
  const modules: LoraModuleShape[] = [];
  for (const g of groups.values()) {
    const where: [LoraComponent, string] | undefined = g.component
      ? [g.component, g.name]
      : kohyaNameToPath(g.name);
    if (!where) continue;
    if (
      where[0] === "unet" &&
      /^(input_blocks|middle_block|output_blocks|time_embed|out)\./.test(where[1])
    ) {
      const path = unetKeyFromOriginal(`${where[1]}.weight`, unetConfig);
      if (path) where[1] = path.slice(0, -".weight".length);
    }
    const shape = (s: string) => {
      const key = g.keys.get(s);
      return key === undefined ? undefined : reader.info(key).shape;
    };
    const weight = weightShape(shape);
    if (!weight) continue;
    const kind = g.keys.has("w_norm") || g.keys.has("b_norm")
      ? "norm"
      : weight.length === 4
      ? "conv"
      : "linear";
    modules.push({ component: where[0], path: where[1], kind, weight, hasBias: true });
  }
  return { modules, unetConfig };
}
