/**
 * The adaptable layers of a U-Net or CLIP text encoder computed from its config alone (no GPU
 * memory): every Linear, Conv2d, GroupNorm and LayerNorm with its diffusers path, weight shape,
 * the kind of block that holds it (what kohya and LyCORIS target by class name) and its block
 * indices. The order is the models' own registration order (`Module.namedModules`).
 *
 * @module
 */
import type { UNetConfig } from "../nn/unet.ts";
import type { ClipTextConfig } from "../nn/clip.ts";
import type { LoraComponent } from "./file_types.ts";
import type { LoraModelShapes } from "./formats/model_shapes.ts";

/** The layer class of an adaptable module. */
export type LayerKind = "linear" | "conv" | "group_norm" | "layer_norm";

/**
 * The block class that holds a layer, as kohya and LyCORIS select targets: `transformer`
 * (Transformer2DModel), `resnet` (ResnetBlock2D), `sampler` (Downsample2D / Upsample2D),
 * `top` (conv_in, conv_out, conv_norm_out, time_embedding), `te_attn` (CLIPAttention),
 * `te_mlp` (CLIPMLP) and `te_norm` (the text encoder's LayerNorms).
 */
export type HolderKind =
  | "transformer"
  | "resnet"
  | "sampler"
  | "top"
  | "te_attn"
  | "te_mlp"
  | "te_norm";

/** One adaptable layer. */
export interface ModuleInfo {
  /** Which model it lives in. */
  component: LoraComponent;
  /** Its diffusers path, e.g. `down_blocks.0.attentions.0.proj_in`. */
  path: string;
  /** Its layer class. */
  kind: LayerKind;
  /** Its weight shape: Linear `[out, in]`, Conv2d `[out, in, k, k]`, norms `[C]`. */
  shape: number[];
  /** Conv stride (1 for other layers). */
  stride: number;
  /** Conv padding (0 for other layers). */
  padding: number;
  /** The block class that holds it. */
  holder: HolderKind;
  /** kohya's 25-entry block index (1..24), or -1 outside the down/mid/up blocks. */
  kohyaIndex: number;
  /** The block-wise LoRA paper's block (`in0`.., `mid`, `out0`..), or null outside them. */
  block: string | null;
}

type Emit = (
  path: string,
  kind: LayerKind,
  shape: number[],
  holder: HolderKind,
  extra?: { stride?: number; padding?: number },
) => void;

function transformerTree(emit: Emit, p: string, ch: number, c: UNetConfig): void {
  emit(`${p}.norm`, "group_norm", [ch], "transformer");
  emit(`${p}.proj_in`, "conv", [ch, ch, 1, 1], "transformer");
  for (let t = 0; t < c.transformerLayersPerBlock; t++) {
    const b = `${p}.transformer_blocks.${t}`;
    for (const [a, ctx] of [["attn1", ch], ["attn2", c.crossAttentionDim]] as const) {
      emit(`${b}.norm${a === "attn1" ? 1 : 2}`, "layer_norm", [ch], "transformer");
      emit(`${b}.${a}.to_q`, "linear", [ch, ch], "transformer");
      emit(`${b}.${a}.to_k`, "linear", [ch, ctx], "transformer");
      emit(`${b}.${a}.to_v`, "linear", [ch, ctx], "transformer");
      emit(`${b}.${a}.to_out.0`, "linear", [ch, ch], "transformer");
    }
    emit(`${b}.norm3`, "layer_norm", [ch], "transformer");
    emit(`${b}.ff.net.0.proj`, "linear", [8 * ch, ch], "transformer");
    emit(`${b}.ff.net.2`, "linear", [ch, 4 * ch], "transformer");
  }
  emit(`${p}.proj_out`, "conv", [ch, ch, 1, 1], "transformer");
}

function resnetTree(emit: Emit, p: string, cin: number, cout: number, c: UNetConfig): void {
  const temb = c.blockOutChannels[0]! * 4;
  const norm = c.norm === "group";
  if (norm) emit(`${p}.norm1`, "group_norm", [cin], "resnet");
  emit(`${p}.conv1`, "conv", [cout, cin, 3, 3], "resnet", { padding: 1 });
  emit(`${p}.time_emb_proj`, "linear", [cout, temb], "resnet");
  if (norm) emit(`${p}.norm2`, "group_norm", [cout], "resnet");
  emit(`${p}.conv2`, "conv", [cout, cout, 3, 3], "resnet", { padding: 1 });
  if (cin !== cout) emit(`${p}.conv_shortcut`, "conv", [cout, cin, 1, 1], "resnet");
}

/**
 * Every adaptable layer of the U-Net built from `config`, in registration order.
 *
 * @example
 * ```ts
 * import { SD15_UNET_CONFIG } from "../nn/unet.ts";
 * import { unetTree } from "./tree.ts";
 * const tree = unetTree(SD15_UNET_CONFIG);
 * console.log(tree.filter((m) => m.holder === "transformer" && m.kind !== "group_norm").length);
 * ```
 */
export function unetTree(config: UNetConfig): ModuleInfo[] {
  const out: ModuleInfo[] = [];
  let index = -1, block: string | null = null;
  const emit: Emit = (path, kind, shape, holder, extra = {}) => {
    out.push({
      component: "unet",
      path,
      kind,
      shape,
      stride: extra.stride ?? 1,
      padding: extra.padding ?? 0,
      holder,
      kohyaIndex: index,
      block,
    });
  };
  const c = config, ch = c.blockOutChannels, n = ch.length, temb = ch[0]! * 4;
  emit("conv_in", "conv", [ch[0]!, c.inChannels, 3, 3], "top", { padding: 1 });
  emit("time_embedding.linear_1", "linear", [temb, ch[0]!], "top");
  emit("time_embedding.linear_2", "linear", [temb, temb], "top");
  let outCh = ch[0]!;
  for (let i = 0; i < n; i++) {
    const input = outCh;
    outCh = ch[i]!;
    block = `in${i}`;
    const p = `down_blocks.${i}`;
    if (c.downBlockTypes[i] === "CrossAttnDownBlock2D") {
      for (let j = 0; j < c.layersPerBlock; j++) {
        index = 1 + 3 * i + j;
        transformerTree(emit, `${p}.attentions.${j}`, outCh, c);
      }
    }
    for (let j = 0; j < c.layersPerBlock; j++) {
      index = 1 + 3 * i + j;
      resnetTree(emit, `${p}.resnets.${j}`, j === 0 ? input : outCh, outCh, c);
    }
    if (i < n - 1) {
      index = 3 + 3 * i;
      emit(`${p}.downsamplers.0.conv`, "conv", [outCh, outCh, 3, 3], "sampler", {
        stride: 2,
        padding: 1,
      });
    }
  }
  block = "mid";
  index = 12;
  const deep = ch[n - 1]!;
  transformerTree(emit, "mid_block.attentions.0", deep, c);
  resnetTree(emit, "mid_block.resnets.0", deep, deep, c);
  resnetTree(emit, "mid_block.resnets.1", deep, deep, c);
  const rev = [...ch].reverse();
  outCh = rev[0]!;
  const layers = c.layersPerBlock + 1;
  for (let i = 0; i < n; i++) {
    const prev = outCh;
    outCh = rev[i]!;
    const input = rev[Math.min(i + 1, n - 1)]!;
    block = `out${i}`;
    const p = `up_blocks.${i}`;
    if (c.upBlockTypes[i] === "CrossAttnUpBlock2D") {
      for (let j = 0; j < layers; j++) {
        index = 13 + 3 * i + j;
        transformerTree(emit, `${p}.attentions.${j}`, outCh, c);
      }
    }
    for (let j = 0; j < layers; j++) {
      index = 13 + 3 * i + j;
      const skip = j === layers - 1 ? input : outCh;
      resnetTree(emit, `${p}.resnets.${j}`, (j === 0 ? prev : outCh) + skip, outCh, c);
    }
    if (i < n - 1) {
      index = 13 + 3 * i + 2;
      emit(`${p}.upsamplers.0.conv`, "conv", [outCh, outCh, 3, 3], "sampler", { padding: 1 });
    }
  }
  block = null;
  index = -1;
  if (c.norm === "group") emit("conv_norm_out", "group_norm", [ch[0]!], "top");
  emit("conv_out", "conv", [c.outChannels, ch[0]!, 3, 3], "top", { padding: 1 });
  return out;
}

/**
 * Every adaptable layer of the CLIP text encoder built from `config`, in registration order.
 *
 * @example
 * ```ts
 * import { SD15_CLIP_CONFIG } from "../nn/clip.ts";
 * import { textEncoderTree } from "./tree.ts";
 * console.log(textEncoderTree(SD15_CLIP_CONFIG).length); // 12 layers x 8 + the final norm = 97
 * ```
 */
export function textEncoderTree(config: ClipTextConfig): ModuleInfo[] {
  const out: ModuleInfo[] = [];
  const emit = (path: string, kind: LayerKind, shape: number[], holder: HolderKind) =>
    out.push({
      component: "text_encoder",
      path,
      kind,
      shape,
      stride: 1,
      padding: 0,
      holder,
      kohyaIndex: -1,
      block: null,
    });
  const w = config.hiddenSize, m = config.intermediateSize;
  for (let l = 0; l < config.layers; l++) {
    const p = `text_model.encoder.layers.${l}`;
    for (const q of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      emit(`${p}.self_attn.${q}`, "linear", [w, w], "te_attn");
    }
    emit(`${p}.layer_norm1`, "layer_norm", [w], "te_norm");
    emit(`${p}.mlp.fc1`, "linear", [m, w], "te_mlp");
    emit(`${p}.mlp.fc2`, "linear", [w, m], "te_mlp");
    emit(`${p}.layer_norm2`, "layer_norm", [w], "te_norm");
  }
  emit("text_model.final_layer_norm", "layer_norm", [w], "te_norm");
  return out;
}

/**
 * The module shapes the LoRA readers match files against, from configs alone (no weights): the
 * U-Net's attention q/k/v have no bias, every other layer has one.
 *
 * @example
 * ```ts
 * import { SD15_CLIP_CONFIG } from "../nn/clip.ts";
 * import { SD15_UNET_CONFIG } from "../nn/unet.ts";
 * import { configShapes } from "./tree.ts";
 * console.log(configShapes(SD15_UNET_CONFIG, SD15_CLIP_CONFIG).modules.length);
 * ```
 */
export function configShapes(
  unet: UNetConfig | null,
  textEncoder: ClipTextConfig | null,
): LoraModelShapes {
  const tree = [
    ...(unet ? unetTree(unet) : []),
    ...(textEncoder ? textEncoderTree(textEncoder) : []),
  ];
  const modules = tree.map((m) => ({
    component: m.component,
    path: m.path,
    kind: m.kind === "linear"
      ? "linear" as const
      : m.kind === "conv"
      ? "conv" as const
      : "norm" as const,
    weight: m.shape,
    hasBias: !/\.attn[12]\.to_[qkv]$/.test(m.path),
  }));
  return unet ? { modules, unetConfig: unet } : { modules };
}
