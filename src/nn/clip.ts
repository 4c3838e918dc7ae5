/**
 * The CLIP text encoder (transformers' `CLIPTextModel`, SD 1.x's `text_encoder`).
 *
 * @module
 */
import { Module, ModuleList } from "./module.ts";
import { add } from "../ops/binary.ts";
import { gelu, quickGelu } from "../ops/unary.ts";
import { attention } from "../ops/attention.ts";
import { cast } from "../ops/cast.ts";
import { scope } from "../ops/scope.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import type { DType, Tensor } from "../ops/tensor.ts";
import { type InitOptions, initOptions } from "./layers/_init.ts";
import { mergeHeads, splitHeads } from "./layers/attention.ts";
import { Embedding } from "./layers/embedding.ts";
import { LayerNorm } from "./layers/layer_norm.ts";
import { Linear } from "./layers/linear.ts";

/** The text encoder's architecture. */
export interface ClipTextConfig {
  /** Vocabulary size (49408). */
  vocabSize: number;
  /** Width (768). */
  hiddenSize: number;
  /** MLP width (3072). */
  intermediateSize: number;
  /** Attention heads (12). */
  heads: number;
  /** Encoder layers (12). */
  layers: number;
  /** Positions (77). */
  maxPositions: number;
  /** MLP activation: `quick_gelu` (SD 1.x) or `gelu` (SD 2.x). */
  hiddenAct: "quick_gelu" | "gelu";
  /** LayerNorm epsilon (1e-5). */
  layerNormEps: number;
}

/** CLIP ViT-L/14's text encoder (SD 1.x). */
export const SD15_CLIP_CONFIG: Readonly<ClipTextConfig> = Object.freeze({
  vocabSize: 49408,
  hiddenSize: 768,
  intermediateSize: 3072,
  heads: 12,
  layers: 12,
  maxPositions: 77,
  hiddenAct: "quick_gelu",
  layerNormEps: 1e-5,
} as ClipTextConfig);

/** A full config from a partial one (missing fields take SD 1.x's values). */
export function clipTextConfig(partial: Partial<ClipTextConfig> = {}): ClipTextConfig {
  const c = { ...SD15_CLIP_CONFIG, ...partial };
  if (c.hiddenSize % c.heads !== 0) {
    throw new ArgumentError(
      `CLIP width ${c.hiddenSize} does not split into ${c.heads} heads; pick heads that divide it`,
    );
  }
  if (c.hiddenAct !== "quick_gelu" && c.hiddenAct !== "gelu") {
    throw new ArgumentError(`CLIP activation must be quick_gelu or gelu, got "${c.hiddenAct}"`);
  }
  return c;
}

/** Converts a transformers `text_encoder/config.json` object to a {@link ClipTextConfig}. */
export function clipTextConfigFromDiffusers(json: Record<string, unknown>): ClipTextConfig {
  const p: Partial<ClipTextConfig> = {};
  const keys: [keyof ClipTextConfig, string][] = [
    ["vocabSize", "vocab_size"],
    ["hiddenSize", "hidden_size"],
    ["intermediateSize", "intermediate_size"],
    ["heads", "num_attention_heads"],
    ["layers", "num_hidden_layers"],
    ["maxPositions", "max_position_embeddings"],
    ["layerNormEps", "layer_norm_eps"],
  ];
  for (const [k, j] of keys) {
    if (typeof json[j] === "number") (p as Record<string, number>)[k] = json[j] as number;
  }
  if (json["hidden_act"] === "gelu" || json["hidden_act"] === "quick_gelu") {
    p.hiddenAct = json["hidden_act"];
  }
  return clipTextConfig(p);
}

/** The transformers `config.json` form of a {@link ClipTextConfig}. */
export function clipTextConfigToDiffusers(c: ClipTextConfig): Record<string, unknown> {
  return {
    architectures: ["CLIPTextModel"],
    model_type: "clip_text_model",
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_attention_heads: c.heads,
    num_hidden_layers: c.layers,
    max_position_embeddings: c.maxPositions,
    hidden_act: c.hiddenAct,
    layer_norm_eps: c.layerNormEps,
  };
}

// x: [B, T, C] -> y: [B, T, C]
/** CLIP's causal self-attention: `q_proj`, `k_proj`, `v_proj`, `out_proj`, all with biases. */
export class ClipAttention extends Module {
  /** Heads. */
  readonly heads: number;

  /** A new layer with random weights. */
  constructor(width: number, heads: number, options: InitOptions = {}) {
    super();
    this.heads = heads;
    for (const n of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      this.addModule(n, new Linear(width, width, initOptions(options)));
    }
  }

  /** Causal self-attention over the tokens. */
  forward(x: Tensor): Tensor {
    return scope(() => {
      const [q, k, v] = ["q_proj", "k_proj", "v_proj"].map((n) =>
        splitHeads(this.child<Linear>(n).forward(x), this.heads)
      ) as [Tensor, Tensor, Tensor];
      return this.child<Linear>("out_proj").forward(
        mergeHeads(attention(q, k, v, { causal: true })),
      );
    });
  }
}

// x: [B, T, C] -> y: [B, T, C]
/** One encoder layer: `x += self_attn(layer_norm1(x)); x += mlp(layer_norm2(x))`. */
export class ClipEncoderLayer extends Module {
  /** The MLP activation. */
  readonly hiddenAct: "quick_gelu" | "gelu";

  /** A new layer with random weights. */
  constructor(c: ClipTextConfig, options: InitOptions = {}) {
    super();
    this.hiddenAct = c.hiddenAct;
    this.addModule("self_attn", new ClipAttention(c.hiddenSize, c.heads, options));
    this.addModule("layer_norm1", new LayerNorm(c.hiddenSize, c.layerNormEps));
    const mlp = this.addModule("mlp", new Module());
    mlp.addModule("fc1", new Linear(c.hiddenSize, c.intermediateSize, initOptions(options)));
    mlp.addModule("fc2", new Linear(c.intermediateSize, c.hiddenSize, initOptions(options)));
    this.addModule("layer_norm2", new LayerNorm(c.hiddenSize, c.layerNormEps));
  }

  /** Runs the layer. */
  forward(x: Tensor): Tensor {
    return scope(() => {
      const a = this.child<ClipAttention>("self_attn").forward(
        this.child<LayerNorm>("layer_norm1").forward(x),
      );
      const h = add(x, a);
      const f = this.child<Linear>("mlp.fc1").forward(
        this.child<LayerNorm>("layer_norm2").forward(h),
      );
      const act = this.hiddenAct === "gelu" ? gelu(f) : quickGelu(f);
      return add(h, this.child<Linear>("mlp.fc2").forward(act));
    });
  }
}

/** Options of {@link CLIPTextModel}. */
export interface ClipTextOptions extends InitOptions {
  /**
   * Storage of the token table (default `weightDType`, else f32). SD's 49408 x 768 f32 table is
   * 152 MB, over the 128 MiB storage binding of software adapters; f16 halves it.
   */
  tokenEmbeddingDType?: DType;
}

// ids: [B, T] (CPU, T <= maxPositions) -> last hidden state: [B, T, hiddenSize]
/**
 * transformers' `CLIPTextModel`: `text_model.embeddings.{token,position}_embedding`,
 * `text_model.encoder.layers.N` (causal self-attention, quick-GELU MLP), and
 * `text_model.final_layer_norm`. `forward` returns the last hidden state after the final
 * LayerNorm (what SD 1.x conditions on).
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/mod.ts";
 * import { CLIPTextModel } from "./clip.ts";
 * await getDevice();
 * const te = new CLIPTextModel({
 *   vocabSize: 100, hiddenSize: 32, intermediateSize: 64, heads: 2, layers: 2, maxPositions: 8,
 * });
 * console.log(te.forward([0, 5, 7, 1, 1, 1, 1, 1], [1, 8]).shape); // [1, 8, 32]
 * ```
 */
export class CLIPTextModel extends Module {
  /** The architecture. */
  readonly config: ClipTextConfig;

  /** A new encoder with random weights. */
  constructor(config: Partial<ClipTextConfig> = {}, options: ClipTextOptions = {}) {
    super();
    const c = clipTextConfig(config);
    this.config = c;
    const tm = this.addModule("text_model", new Module());
    const emb = tm.addModule("embeddings", new Module());
    emb.addModule(
      "token_embedding",
      new Embedding(c.vocabSize, c.hiddenSize, {
        ...initOptions(options),
        dtype: options.tokenEmbeddingDType ?? options.weightDType ?? "f32",
      }),
    );
    emb.addModule(
      "position_embedding",
      new Embedding(c.maxPositions, c.hiddenSize, initOptions(options)),
    );
    const enc = tm.addModule("encoder", new Module());
    const layers = new ModuleList<ClipEncoderLayer>();
    for (let i = 0; i < c.layers; i++) layers.push(new ClipEncoderLayer(c, initOptions(options)));
    enc.addModule("layers", layers);
    tm.addModule("final_layer_norm", new LayerNorm(c.hiddenSize, c.layerNormEps));
  }

  /**
   * Encodes token ids of shape `[B, T]` (row-major). `clipSkip` N >= 1 (default 1) takes the
   * hidden state N layers from the end and applies the final LayerNorm to it, as kohya's and
   * A1111's clip skip (`hidden_states[-N]`).
   */
  forward(
    ids: Uint32Array | readonly number[],
    shape: readonly [number, number],
    options: { clipSkip?: number } = {},
  ): Tensor {
    const skip = options.clipSkip ?? 1;
    if (!Number.isInteger(skip) || skip < 1 || skip > this.config.layers) {
      throw new ArgumentError(
        `clip skip must be a whole number from 1 to the encoder's ${this.config.layers} layers, ` +
          `got ${skip}`,
      );
    }
    const [B, T] = shape;
    if (B * T !== ids.length || T > this.config.maxPositions || T < 1) {
      throw new ShapeError(
        `CLIPTextModel needs ${B} x ${T} ids with 1 <= T <= ${this.config.maxPositions}, got ` +
          `${ids.length} ids for shape ${fmtShape(shape)}`,
      );
    }
    return scope(() => {
      const tok = this.child<Embedding>("text_model.embeddings.token_embedding").forward(ids, [
        B,
        T,
      ]);
      const pos = this.child<Embedding>("text_model.embeddings.position_embedding").forward(
        Array.from({ length: T }, (_, i) => i),
        [1, T],
      );
      let h = add(tok.dtype === pos.dtype ? tok : cast(tok, pos.dtype), pos);
      const layers = [...this.child<ModuleList<ClipEncoderLayer>>("text_model.encoder.layers")];
      for (const layer of layers.slice(0, layers.length - skip + 1)) h = layer.forward(h);
      return this.child<LayerNorm>("text_model.final_layer_norm").forward(h);
    });
  }
}
