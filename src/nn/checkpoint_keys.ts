/**
 * Checkpoint key mapping between diffusers' layout (our parameter paths) and the original
 * single-file layout (`model.diffusion_model.*`, `first_stage_model.*`,
 * `cond_stage_model.transformer.*`), config inference from a single file's tensor shapes, and
 * a mapped loader that checks every key before loading anything. Portable: it reads through a
 * {@link SafetensorsReader}, so it also runs in a browser.
 *
 * @module
 */
import type { Module, Parameter } from "./module.ts";
import { loadTensor, type SafetensorsReader } from "./safetensors.ts";
import { StateDictError } from "./errors.ts";
import { fmtShape } from "../ops/errors.ts";
import type { UNetConfig } from "./unet.ts";
import type { VaeConfig } from "./vae.ts";
import type { ClipTextConfig } from "./clip.ts";

/** Prefix of the U-Net in single-file checkpoints. */
export const UNET_PREFIX = "model.diffusion_model.";
/** Prefix of the VAE in single-file checkpoints. */
export const VAE_PREFIX = "first_stage_model.";
/** Prefix of the text encoder in single-file checkpoints. */
export const TEXT_ENCODER_PREFIX = "cond_stage_model.transformer.";

const RESNET_TO_ORIGINAL: Record<string, string> = {
  norm1: "in_layers.0",
  conv1: "in_layers.2",
  time_emb_proj: "emb_layers.1",
  norm2: "out_layers.0",
  conv2: "out_layers.3",
  conv_shortcut: "skip_connection",
};

function renameResnet(rest: string, table: Record<string, string>): string {
  const dot = rest.indexOf(".");
  const head = rest.slice(0, dot), tail = rest.slice(dot);
  return (table[head] ?? head) + tail;
}

/**
 * The original (LDM) name of a diffusers U-Net key, without the `model.diffusion_model.` prefix
 * (`down_blocks.1.resnets.0.conv1.weight` -> `input_blocks.4.0.in_layers.2.weight` for SD 1.x).
 * Returns undefined for keys outside the U-Net layout.
 *
 * @example
 * ```ts
 * import { unetKeyToOriginal } from "./checkpoint_keys.ts";
 * import { SD15_UNET_CONFIG } from "./unet.ts";
 * console.log(unetKeyToOriginal("down_blocks.0.downsamplers.0.conv.weight", SD15_UNET_CONFIG));
 * // input_blocks.3.0.op.weight
 * ```
 */
export function unetKeyToOriginal(key: string, config: UNetConfig): string | undefined {
  const L = config.layersPerBlock;
  let m: RegExpMatchArray | null;
  if (key.startsWith("conv_in.")) return "input_blocks.0.0." + key.slice(8);
  if (key.startsWith("time_embedding.linear_1.")) return "time_embed.0." + key.slice(24);
  if (key.startsWith("time_embedding.linear_2.")) return "time_embed.2." + key.slice(24);
  if (key.startsWith("conv_norm_out.")) return "out.0." + key.slice(14);
  if (key.startsWith("conv_out.")) return "out.2." + key.slice(9);
  if ((m = key.match(/^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/))) {
    const i = 1 + Number(m[1]) * (L + 1) + Number(m[2]);
    return `input_blocks.${i}.0.${renameResnet(m[3]!, RESNET_TO_ORIGINAL)}`;
  }
  if ((m = key.match(/^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/))) {
    return `input_blocks.${1 + Number(m[1]) * (L + 1) + Number(m[2])}.1.${m[3]}`;
  }
  if ((m = key.match(/^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/))) {
    return `input_blocks.${(Number(m[1]) + 1) * (L + 1)}.0.op.${m[2]}`;
  }
  if ((m = key.match(/^mid_block\.resnets\.([01])\.(.+)$/))) {
    return `middle_block.${m[1] === "0" ? 0 : 2}.${renameResnet(m[2]!, RESNET_TO_ORIGINAL)}`;
  }
  if ((m = key.match(/^mid_block\.attentions\.0\.(.+)$/))) return `middle_block.1.${m[1]}`;
  if ((m = key.match(/^up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/))) {
    const i = Number(m[1]) * (L + 1) + Number(m[2]);
    return `output_blocks.${i}.0.${renameResnet(m[3]!, RESNET_TO_ORIGINAL)}`;
  }
  if ((m = key.match(/^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/))) {
    return `output_blocks.${Number(m[1]) * (L + 1) + Number(m[2])}.1.${m[3]}`;
  }
  if ((m = key.match(/^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/))) {
    const b = Number(m[1]);
    const attn = config.upBlockTypes[b] === "CrossAttnUpBlock2D";
    return `output_blocks.${b * (L + 1) + L}.${attn ? 2 : 1}.conv.${m[2]}`;
  }
  return undefined;
}

const VAE_RESNET_TO_ORIGINAL: Record<string, string> = { conv_shortcut: "nin_shortcut" };
const VAE_ATTN_TO_ORIGINAL: Record<string, string> = {
  group_norm: "norm",
  to_q: "q",
  to_k: "k",
  to_v: "v",
  "to_out.0": "proj_out",
};

function vaeMid(part: string, rest: string): string | undefined {
  let m: RegExpMatchArray | null;
  if ((m = rest.match(/^resnets\.([01])\.(.+)$/))) {
    return `${part}.mid.block_${Number(m[1]) + 1}.${renameResnet(m[2]!, VAE_RESNET_TO_ORIGINAL)}`;
  }
  if ((m = rest.match(/^attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.+)$/))) {
    return `${part}.mid.attn_1.${VAE_ATTN_TO_ORIGINAL[m[1]!]}.${m[2]}`;
  }
  return undefined;
}

/**
 * The original name of a diffusers VAE key, without the `first_stage_model.` prefix
 * (`decoder.up_blocks.0.resnets.1.conv1.weight` -> `decoder.up.3.block.1.conv1.weight` for 4
 * levels). The mid-block attention's linear weights are 1x1 convolutions there.
 */
export function vaeKeyToOriginal(key: string, config: VaeConfig): string | undefined {
  const n = config.blockOutChannels.length;
  let m: RegExpMatchArray | null;
  if (/^(quant_conv|post_quant_conv)\./.test(key)) return key;
  if ((m = key.match(/^(encoder|decoder)\.(conv_in|conv_out)\.(.+)$/))) return key;
  if ((m = key.match(/^(encoder|decoder)\.conv_norm_out\.(.+)$/))) {
    return `${m[1]}.norm_out.${m[2]}`;
  }
  if ((m = key.match(/^(encoder|decoder)\.mid_block\.(.+)$/))) return vaeMid(m[1]!, m[2]!);
  if ((m = key.match(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/))) {
    return `encoder.down.${m[1]}.block.${m[2]}.${renameResnet(m[3]!, VAE_RESNET_TO_ORIGINAL)}`;
  }
  if ((m = key.match(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/))) {
    return `encoder.down.${m[1]}.downsample.conv.${m[2]}`;
  }
  if ((m = key.match(/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/))) {
    const i = n - 1 - Number(m[1]);
    return `decoder.up.${i}.block.${m[2]}.${renameResnet(m[3]!, VAE_RESNET_TO_ORIGINAL)}`;
  }
  if ((m = key.match(/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/))) {
    return `decoder.up.${n - 1 - Number(m[1])}.upsample.conv.${m[2]}`;
  }
  return undefined;
}

/** Old diffusers (< 0.14) names of the VAE attention layers, by current name. */
const VAE_LEGACY: Record<string, string> = {
  to_q: "query",
  to_k: "key",
  to_v: "value",
  "to_out.0": "proj_attn",
};

/** A model key, the file key it loads from, and whether that tensor has a different shape. */
export interface KeyMap {
  /** Module key -> file key. */
  keys: Map<string, string>;
  /** File keys deliberately skipped (e.g. `position_ids` buffers). */
  ignored: Set<string>;
  /** File keys that belong to this model (checked for unexpected ones). */
  fileKeys: string[];
}

function moduleKeys(module: Module): string[] {
  return [...module.stateDict().keys()];
}

/** Maps a module's keys to a diffusers-layout file (identity, plus legacy VAE names). */
export function diffusersKeyMap(module: Module, file: SafetensorsReader): KeyMap {
  const keys = new Map<string, string>();
  for (const k of moduleKeys(module)) {
    let fk = k;
    if (!file.has(k)) {
      const m = k.match(/^(.*attentions\.0\.)(to_q|to_k|to_v|to_out\.0)(\..+)$/);
      if (m && file.has(m[1] + VAE_LEGACY[m[2]!]! + m[3])) fk = m[1] + VAE_LEGACY[m[2]!]! + m[3];
    }
    keys.set(k, fk);
  }
  const ignored = new Set(file.keys.filter((k) => k.endsWith("position_ids")));
  return { keys, ignored, fileKeys: [...file.keys] };
}

/** Which model of a single-file checkpoint. */
export type SingleFilePart = "unet" | "vae" | "text_encoder";

/** Maps a module's keys to the original single-file layout for `part`. */
export function singleFileKeyMap(
  module: Module,
  file: SafetensorsReader,
  part: SingleFilePart,
  config: UNetConfig | VaeConfig | ClipTextConfig,
): KeyMap {
  const keys = new Map<string, string>();
  const prefix = part === "unet" ? UNET_PREFIX : part === "vae" ? VAE_PREFIX : TEXT_ENCODER_PREFIX;
  // some text encoders are saved without the `text_model.` level
  const flatClip = part === "text_encoder" &&
    !file.keys.some((k) => k.startsWith(prefix + "text_model."));
  for (const k of moduleKeys(module)) {
    let o: string | undefined;
    if (part === "unet") o = unetKeyToOriginal(k, config as UNetConfig);
    else if (part === "vae") o = vaeKeyToOriginal(k, config as VaeConfig);
    else o = flatClip ? k.replace(/^text_model\./, "") : k;
    keys.set(k, prefix + (o ?? `<unmapped:${k}>`));
  }
  const fileKeys = file.keys.filter((k) => k.startsWith(prefix));
  const ignored = new Set(fileKeys.filter((k) => k.endsWith("position_ids")));
  return { keys, ignored, fileKeys };
}

/** The single-file key of every diffusers key of `module` (for writing single files). */
export function singleFileKeys(
  module: Module,
  part: SingleFilePart,
  config: UNetConfig | VaeConfig | ClipTextConfig,
): Map<string, string> {
  const prefix = part === "unet" ? UNET_PREFIX : part === "vae" ? VAE_PREFIX : TEXT_ENCODER_PREFIX;
  const out = new Map<string, string>();
  for (const k of moduleKeys(module)) {
    const o = part === "unet"
      ? unetKeyToOriginal(k, config as UNetConfig)
      : part === "vae"
      ? vaeKeyToOriginal(k, config as VaeConfig)
      : k;
    if (o === undefined) {
      throw new StateDictError(`No single-file name is known for the ${part} key "${k}"`);
    }
    out.set(k, prefix + o);
  }
  return out;
}

function shapesFit(want: readonly number[], got: readonly number[]): boolean {
  const strip = (s: readonly number[]) => {
    const t = [...s];
    while (t.length > 2 && t[t.length - 1] === 1) t.pop();
    return t;
  };
  const a = strip(want), b = strip(got);
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function list(keys: readonly string[], n = 10): string {
  const shown = keys.slice(0, n).map((k) => `"${k}"`).join(", ");
  return keys.length > n ? `${shown} and ${keys.length - n} more` : shown;
}

/** Options of {@link loadMapped}. */
export interface LoadMappedOptions {
  /** Throw on missing or unexpected keys (default true). Shape mismatches always throw. */
  strict?: boolean;
  /** Names the model in errors (default: the module's class). */
  what?: string;
}

/** What a load skipped (non-strict) or found. */
export interface LoadMappedResult {
  /** Module keys the file lacked. */
  missing: string[];
  /** File keys nothing loaded. */
  unexpected: string[];
}

/**
 * Loads `module` from `file` through a key map. Every key and shape is checked from the header
 * first; on a problem nothing is loaded and a {@link StateDictError} lists the missing keys
 * (module keys with no tensor, by their file names), the unexpected keys (file tensors under the
 * model's prefix that nothing uses) and any shape mismatches. A 1x1 convolution weight loads
 * into a linear weight and back (the VAE attention of single files).
 */
export async function loadMapped(
  module: Module,
  file: SafetensorsReader,
  map: KeyMap,
  options: LoadMappedOptions = {},
): Promise<LoadMappedResult> {
  const what = options.what ?? module.constructor.name;
  const slots = new Map<string, Parameter>([...module.namedParameters(), ...module.namedBuffers()]);
  const missing: string[] = [], mismatched: string[] = [];
  const used = new Set<string>();
  for (const [k, p] of slots) {
    const fk = map.keys.get(k) ?? k;
    if (!file.has(fk)) {
      missing.push(fk === k ? k : `${fk} (${k})`);
      continue;
    }
    used.add(fk);
    const shape = file.info(fk).shape;
    if (!shapesFit(p.shape, shape)) {
      mismatched.push(`"${fk}" is ${fmtShape(shape)} in the file but ${fmtShape(p.shape)} here`);
    }
  }
  const unexpected = map.fileKeys.filter((k) => !used.has(k) && !map.ignored.has(k));
  const strict = options.strict ?? true;
  const problems: string[] = [];
  if (strict && missing.length) problems.push(`${missing.length} missing keys: ${list(missing)}`);
  if (strict && unexpected.length) {
    problems.push(`${unexpected.length} unexpected keys: ${list(unexpected)}`);
  }
  if (mismatched.length) {
    problems.push(`${mismatched.length} shape mismatches: ${mismatched.slice(0, 5).join("; ")}`);
  }
  if (problems.length) {
    throw new StateDictError(
      `Cannot load the ${what} from "${file.name}": ${problems.join("; ")}. Nothing was loaded; ` +
        "check that the file holds this model in the expected layout (diffusers or single-file) " +
        "and that the config matches it",
    );
  }
  for (const [k, p] of slots) {
    const fk = map.keys.get(k) ?? k;
    if (!file.has(fk)) continue;
    const t = await loadTensor(file, fk, { dtype: p.value.dtype });
    if (t.shape.join() === p.shape.join()) p.assign(t);
    else {
      p.assign(t.view(p.shape));
      t.dispose();
    }
  }
  return { missing, unexpected };
}

// ---------------------------------------------------------------------------------------------
// Config inference from a single file's shapes

function shapeOf(file: SafetensorsReader, key: string): readonly number[] | undefined {
  return file.has(key) ? file.info(key).shape : undefined;
}

function maxIndex(file: SafetensorsReader, re: RegExp): number {
  let max = -1;
  for (const k of file.keys) {
    const m = k.match(re);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

/**
 * Infers a U-Net config from a single file's shapes (channels, levels, layers, block kinds,
 * context width). Heads and norm groups cannot be read from shapes: they stay SD 1.x's (8, 32)
 * unless `base` sets them.
 */
export function inferUNetConfig(
  file: SafetensorsReader,
  base: Partial<UNetConfig> = {},
): Partial<UNetConfig> {
  const p = UNET_PREFIX;
  const convIn = shapeOf(file, p + "input_blocks.0.0.weight");
  if (!convIn) return { ...base };
  const out: Partial<UNetConfig> = { inChannels: convIn[1]! };
  const convOut = shapeOf(file, p + "out.2.weight");
  if (convOut) out.outChannels = convOut[0]!;
  let minOp = Infinity;
  for (const k of file.keys) {
    const m = k.match(/^model\.diffusion_model\.input_blocks\.(\d+)\.0\.op\.weight$/);
    if (m) minOp = Math.min(minOp, Number(m[1]));
  }
  const last = maxIndex(file, /^model\.diffusion_model\.input_blocks\.(\d+)\./);
  const L = Number.isFinite(minOp) ? minOp - 1 : last; // one level: no downsampler
  const n = Math.round((last + 1) / (L + 1));
  out.layersPerBlock = L;
  const ch: number[] = [];
  const down: UNetConfig["downBlockTypes"] = [];
  const up: UNetConfig["upBlockTypes"] = [];
  for (let b = 0; b < n; b++) {
    const i = 1 + b * (L + 1);
    const s = shapeOf(file, `${p}input_blocks.${i}.0.out_layers.3.weight`);
    ch.push(s ? s[0]! : 0);
    down.push(
      file.has(`${p}input_blocks.${i}.1.proj_in.weight`) ? "CrossAttnDownBlock2D" : "DownBlock2D",
    );
    up.push(
      file.has(`${p}output_blocks.${b * (L + 1)}.1.proj_in.weight`)
        ? "CrossAttnUpBlock2D"
        : "UpBlock2D",
    );
  }
  out.blockOutChannels = ch;
  out.downBlockTypes = down;
  out.upBlockTypes = up;
  const ctx = file.keys.find((k) => k.startsWith(p) && k.endsWith("attn2.to_k.weight"));
  if (ctx) out.crossAttentionDim = file.info(ctx).shape[1]!;
  if (file.has(p + "input_blocks.1.0.in_layers.0.running_mean")) out.norm = "batch";
  return { ...out, ...base };
}

/** Infers a VAE config from a single file's shapes (`base` overrides; groups stay 32). */
export function inferVaeConfig(
  file: SafetensorsReader,
  base: Partial<VaeConfig> = {},
): Partial<VaeConfig> {
  const p = VAE_PREFIX;
  const n = maxIndex(file, /^first_stage_model\.encoder\.down\.(\d+)\./) + 1;
  if (n < 1) return { ...base };
  const out: Partial<VaeConfig> = {};
  const ch: number[] = [];
  for (let i = 0; i < n; i++) {
    ch.push(shapeOf(file, `${p}encoder.down.${i}.block.0.conv1.weight`)?.[0] ?? 0);
  }
  out.blockOutChannels = ch;
  out.layersPerBlock = maxIndex(file, /^first_stage_model\.encoder\.down\.0\.block\.(\d+)\./) + 1;
  const pq = shapeOf(file, p + "post_quant_conv.weight");
  if (pq) out.latentChannels = pq[0]!;
  const ci = shapeOf(file, p + "encoder.conv_in.weight");
  if (ci) out.inChannels = ci[1]!;
  const co = shapeOf(file, p + "decoder.conv_out.weight");
  if (co) out.outChannels = co[0]!;
  return { ...out, ...base };
}

/** Infers a CLIP text config from a single file's shapes (heads: width / 64 unless `base` sets it). */
export function inferClipTextConfig(
  file: SafetensorsReader,
  base: Partial<ClipTextConfig> = {},
): Partial<ClipTextConfig> {
  const key = file.keys.find((k) =>
    k.startsWith(TEXT_ENCODER_PREFIX) && k.endsWith("embeddings.token_embedding.weight")
  );
  if (!key) return { ...base };
  const pre = key.slice(0, -"embeddings.token_embedding.weight".length);
  const [vocab, width] = file.info(key).shape as [number, number];
  const out: Partial<ClipTextConfig> = { vocabSize: vocab, hiddenSize: width };
  const pos = shapeOf(file, pre + "embeddings.position_embedding.weight");
  if (pos) out.maxPositions = pos[0]!;
  const esc = pre.replace(/\./g, "\\.");
  out.layers = maxIndex(file, new RegExp(`^${esc}encoder\\.layers\\.(\\d+)\\.`)) + 1;
  const fc1 = shapeOf(file, pre + "encoder.layers.0.mlp.fc1.weight");
  if (fc1) out.intermediateSize = fc1[0]!;
  if (width % 64 === 0) out.heads = width / 64;
  return { ...out, ...base };
}
