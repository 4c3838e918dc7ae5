/**
 * diffusers' `UNet2DConditionModel` with a config object (defaults: SD 1.x).
 *
 * @module
 */
import { Module, ModuleList } from "./module.ts";
import { checkpoint } from "../ops/autograd.ts";
import { scope } from "../ops/scope.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import type { Tensor } from "../ops/tensor.ts";
import { type InitOptions, initOptions } from "./layers/_init.ts";
import { makeNorm, type NormKind, type NormLayer } from "./layers/_norm.ts";
import { Conv2d } from "./layers/conv2d.ts";
import { TimestepEmbedding, timestepTensor } from "./layers/timestep_embedding.ts";
import {
  CrossAttnDownBlock2D,
  DownBlock2D,
  type UNetBlockOptions,
} from "./layers/unet_down_blocks.ts";
import { UNetMidBlock2DCrossAttn } from "./layers/unet_mid_block.ts";
import { CrossAttnUpBlock2D, UpBlock2D } from "./layers/unet_up_blocks.ts";

/** Down block kinds (diffusers' names). */
export type DownBlockType = "CrossAttnDownBlock2D" | "DownBlock2D";
/** Up block kinds (diffusers' names). */
export type UpBlockType = "CrossAttnUpBlock2D" | "UpBlock2D";

/** The U-Net's architecture. */
export interface UNetConfig {
  /** Latent channels in (4). */
  inChannels: number;
  /** Channels out (4). */
  outChannels: number;
  /** Channels per level (320, 640, 1280, 1280). */
  blockOutChannels: number[];
  /** ResNet layers per down block; up blocks have one more (2). */
  layersPerBlock: number;
  /** Down block kinds, one per level (3 cross-attention + 1 plain). */
  downBlockTypes: DownBlockType[];
  /** Up block kinds, one per level (1 plain + 3 cross-attention). */
  upBlockTypes: UpBlockType[];
  /** Attention heads, for all levels or per level (diffusers' `attention_head_dim`, 8). */
  attentionHeads: number | number[];
  /** Width of the text context (768). */
  crossAttentionDim: number;
  /** GroupNorm groups (32). */
  normNumGroups: number;
  /** GroupNorm epsilon of the ResNet blocks and output norm (1e-5). */
  normEps: number;
  /** ResNet / output norm: GroupNorm (SD) or BatchNorm2d (AdaBN experiments). */
  norm: NormKind;
  /** Transformer blocks per attention (1). */
  transformerLayersPerBlock: number;
  /** Latent side the model was trained at (64; informational). */
  sampleSize: number;
}

/** SD 1.x's U-Net (~860M parameters). */
export const SD15_UNET_CONFIG: Readonly<UNetConfig> = Object.freeze({
  inChannels: 4,
  outChannels: 4,
  blockOutChannels: [320, 640, 1280, 1280],
  layersPerBlock: 2,
  downBlockTypes: [
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "CrossAttnDownBlock2D",
    "DownBlock2D",
  ],
  upBlockTypes: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  attentionHeads: 8,
  crossAttentionDim: 768,
  normNumGroups: 32,
  normEps: 1e-5,
  norm: "group",
  transformerLayersPerBlock: 1,
  sampleSize: 64,
} as UNetConfig);

/**
 * A full config from a partial one: missing fields take SD 1.x's values, and when
 * `blockOutChannels` is given without block types, every level but the last (down) / first (up)
 * gets cross-attention.
 *
 * @example
 * ```ts
 * import { unetConfig } from "./unet.ts";
 * const c = unetConfig({ blockOutChannels: [32, 64], layersPerBlock: 1, normNumGroups: 8 });
 * console.log(c.downBlockTypes); // ["CrossAttnDownBlock2D", "DownBlock2D"]
 * ```
 */
export function unetConfig(partial: Partial<UNetConfig> = {}): UNetConfig {
  const blockOutChannels = [...(partial.blockOutChannels ?? SD15_UNET_CONFIG.blockOutChannels)];
  const n = blockOutChannels.length;
  const c: UNetConfig = {
    ...SD15_UNET_CONFIG,
    ...partial,
    blockOutChannels,
    downBlockTypes: [
      ...(partial.downBlockTypes ??
        blockOutChannels.map((_, i): DownBlockType =>
          i < n - 1 ? "CrossAttnDownBlock2D" : "DownBlock2D"
        )),
    ],
    upBlockTypes: [
      ...(partial.upBlockTypes ??
        blockOutChannels.map((_, i): UpBlockType => i === 0 ? "UpBlock2D" : "CrossAttnUpBlock2D")),
    ],
  };
  if (n < 1 || c.downBlockTypes.length !== n || c.upBlockTypes.length !== n) {
    throw new ArgumentError(
      `A U-Net config needs one down and one up block type per level; got ${n} levels, ` +
        `${c.downBlockTypes.length} down and ${c.upBlockTypes.length} up block types`,
    );
  }
  if (Array.isArray(c.attentionHeads) && c.attentionHeads.length !== n) {
    throw new ArgumentError(
      `A U-Net config with ${n} levels needs ${n} attention head counts, got ` +
        `${c.attentionHeads.length}`,
    );
  }
  if (c.norm !== "group" && c.norm !== "batch") {
    throw new ArgumentError(`A U-Net norm must be "group" or "batch", got "${c.norm}"`);
  }
  for (const ch of blockOutChannels) {
    if (ch % c.normNumGroups !== 0) {
      throw new ArgumentError(
        `U-Net channels ${ch} are not divisible by ${c.normNumGroups} norm groups; pick ` +
          "normNumGroups that divides every blockOutChannels entry",
      );
    }
  }
  return c;
}

function num(json: Record<string, unknown>, key: string, fallback: number): number {
  const v = json[key];
  return typeof v === "number" ? v : fallback;
}

/**
 * Converts a diffusers `unet/config.json` object to a {@link UNetConfig}; fields it lacks take
 * SD 1.x's values. A `norm` field (denoise's own extension) selects batch norm.
 */
export function unetConfigFromDiffusers(json: Record<string, unknown>): UNetConfig {
  const d = SD15_UNET_CONFIG;
  const heads = json["attention_head_dim"];
  const partial: Partial<UNetConfig> = {
    inChannels: num(json, "in_channels", d.inChannels),
    outChannels: num(json, "out_channels", d.outChannels),
    layersPerBlock: num(json, "layers_per_block", d.layersPerBlock),
    crossAttentionDim: num(json, "cross_attention_dim", d.crossAttentionDim),
    normNumGroups: num(json, "norm_num_groups", d.normNumGroups),
    normEps: num(json, "norm_eps", d.normEps),
    transformerLayersPerBlock: num(json, "transformer_layers_per_block", 1),
    sampleSize: num(json, "sample_size", d.sampleSize),
    attentionHeads: typeof heads === "number" || Array.isArray(heads)
      ? (heads as number | number[])
      : d.attentionHeads,
  };
  if (Array.isArray(json["block_out_channels"])) {
    partial.blockOutChannels = json["block_out_channels"] as number[];
  }
  if (Array.isArray(json["down_block_types"])) {
    partial.downBlockTypes = json["down_block_types"] as DownBlockType[];
  }
  if (Array.isArray(json["up_block_types"])) {
    partial.upBlockTypes = json["up_block_types"] as UpBlockType[];
  }
  if (json["norm"] === "batch" || json["norm"] === "group") partial.norm = json["norm"];
  return unetConfig(partial);
}

/** The diffusers `config.json` form of a {@link UNetConfig} (what `unetConfigFromDiffusers` reads). */
export function unetConfigToDiffusers(c: UNetConfig): Record<string, unknown> {
  return {
    _class_name: "UNet2DConditionModel",
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    block_out_channels: c.blockOutChannels,
    layers_per_block: c.layersPerBlock,
    down_block_types: c.downBlockTypes,
    up_block_types: c.upBlockTypes,
    attention_head_dim: c.attentionHeads,
    cross_attention_dim: c.crossAttentionDim,
    norm_num_groups: c.normNumGroups,
    norm_eps: c.normEps,
    transformer_layers_per_block: c.transformerLayersPerBlock,
    sample_size: c.sampleSize,
    flip_sin_to_cos: true,
    freq_shift: 0,
    norm: c.norm,
  };
}

/** Options of {@link UNet2DConditionModel}. */
export type UNetOptions = InitOptions;

// sample: [B, inC, H, W], timestep: number or [B], context: [B, S, crossAttentionDim]
//   -> [B, outC, H, W]
/**
 * The SD U-Net: `conv_in`, `time_embedding` (sinusoidal features of width
 * `blockOutChannels[0]`, cos first, shift 0 -> `linear_1` -> SiLU -> `linear_2`), `down_blocks`,
 * `mid_block`, `up_blocks` (concatenating skips), `conv_norm_out`, SiLU, `conv_out`. Parameter
 * paths equal diffusers' state-dict keys. `norm: "batch"` swaps every ResNet norm and the output
 * norm for BatchNorm2d (the transformers keep their GroupNorm).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { UNet2DConditionModel, unetConfig } from "./unet.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel(unetConfig({
 *   blockOutChannels: [32, 64], layersPerBlock: 1, attentionHeads: 2, crossAttentionDim: 32,
 *   normNumGroups: 8,
 * }));
 * console.log(unet.forward(randn([1, 4, 8, 8]), 500, randn([1, 7, 32])).shape); // [1, 4, 8, 8]
 * ```
 */
export class UNet2DConditionModel extends Module {
  /** The architecture. */
  readonly config: UNetConfig;
  /**
   * Gradient checkpointing (kohya's `--gradient_checkpointing`): the mid block and each up block
   * keep no activations in the forward pass and run again in the backward pass. Down blocks,
   * whose skip outputs are many tensors, keep theirs.
   */
  gradientCheckpointing = false;

  /** A new U-Net with random weights (load weights with `loadSafetensors` or a loader). */
  constructor(config: Partial<UNetConfig> = {}, options: UNetOptions = {}) {
    super();
    const c = unetConfig(config);
    this.config = c;
    const init: InitOptions = initOptions(options);
    const ch = c.blockOutChannels, n = ch.length;
    const temb = ch[0]! * 4;
    const headsAt = (i: number) =>
      Array.isArray(c.attentionHeads) ? c.attentionHeads[i]! : c.attentionHeads;
    const blockOptions = (layers: number, heads: number): UNetBlockOptions => ({
      ...init,
      layers,
      tembChannels: temb,
      groups: c.normNumGroups,
      eps: c.normEps,
      norm: c.norm,
      heads,
      crossAttentionDim: c.crossAttentionDim,
      transformerLayers: c.transformerLayersPerBlock,
    });

    this.addModule("conv_in", new Conv2d(c.inChannels, ch[0]!, 3, { ...init, padding: 1 }));
    this.addModule("time_embedding", new TimestepEmbedding(ch[0]!, temb, init));

    const down = new ModuleList<CrossAttnDownBlock2D | DownBlock2D>();
    let out = ch[0]!;
    for (let i = 0; i < n; i++) {
      const input = out;
      out = ch[i]!;
      const o = blockOptions(c.layersPerBlock, headsAt(i));
      const last = i === n - 1;
      down.push(
        c.downBlockTypes[i] === "CrossAttnDownBlock2D"
          ? new CrossAttnDownBlock2D(input, out, !last, o)
          : new DownBlock2D(input, out, !last, o),
      );
    }
    this.addModule("down_blocks", down);
    this.addModule(
      "mid_block",
      new UNetMidBlock2DCrossAttn(ch[n - 1]!, blockOptions(1, headsAt(n - 1))),
    );

    const up = new ModuleList<CrossAttnUpBlock2D | UpBlock2D>();
    const rev = [...ch].reverse();
    out = rev[0]!;
    for (let i = 0; i < n; i++) {
      const prev = out;
      out = rev[i]!;
      const input = rev[Math.min(i + 1, n - 1)]!;
      const o = blockOptions(c.layersPerBlock + 1, headsAt(n - 1 - i));
      const last = i === n - 1;
      up.push(
        c.upBlockTypes[i] === "CrossAttnUpBlock2D"
          ? new CrossAttnUpBlock2D(input, prev, out, !last, o)
          : new UpBlock2D(input, prev, out, !last, o),
      );
    }
    this.addModule("up_blocks", up);
    this.addModule("conv_norm_out", makeNorm(c.norm, c.normNumGroups, ch[0]!, c.normEps));
    this.addModule("conv_out", new Conv2d(ch[0]!, c.outChannels, 3, { ...init, padding: 1 }));
  }

  /** The time embedding [B, 4 C0] of `timestep` (one number for the batch, or one per sample). */
  timeEmbedding(timestep: number | ArrayLike<number>, batch: number): Tensor {
    const ts = typeof timestep === "number" ? new Array<number>(batch).fill(timestep) : timestep;
    if (ts.length !== batch) {
      throw new ShapeError(`The U-Net got ${ts.length} timesteps for a batch of ${batch}`);
    }
    return scope(() =>
      this.child<TimestepEmbedding>("time_embedding").forward(
        timestepTensor(ts, this.config.blockOutChannels[0]!),
      )
    );
  }

  /** Predicts the noise (or v) for `sample` at `timestep` given the text `context`. */
  forward(sample: Tensor, timestep: number | ArrayLike<number>, context: Tensor): Tensor {
    const c = this.config;
    const factor = 2 ** (c.blockOutChannels.length - 1);
    const [B, C, H, W] = sample.shape as [number, number, number, number];
    if (
      sample.shape.length !== 4 || C !== c.inChannels || H % factor !== 0 || W % factor !== 0
    ) {
      throw new ShapeError(
        `The U-Net needs a sample [B, ${c.inChannels}, H, W] with H and W divisible by ${factor}, ` +
          `got ${fmtShape(sample.shape)}`,
      );
    }
    if (
      context.shape.length !== 3 || context.shape[0] !== B ||
      context.shape[2] !== c.crossAttentionDim
    ) {
      throw new ShapeError(
        `The U-Net needs a context [${B}, S, ${c.crossAttentionDim}] for a sample of batch ${B}, ` +
          `got ${fmtShape(context.shape)}`,
      );
    }
    return scope(() => {
      const temb = this.timeEmbedding(timestep, B);
      let h = this.child<Conv2d>("conv_in").forward(sample);
      const skips: Tensor[] = [h];
      for (const blk of this.child<ModuleList<CrossAttnDownBlock2D | DownBlock2D>>("down_blocks")) {
        const r = blk.forward(h, temb, context);
        h = r.h;
        skips.push(...r.skips);
      }
      const mid = this.child<UNetMidBlock2DCrossAttn>("mid_block");
      const ckpt = this.gradientCheckpointing;
      h = ckpt
        ? checkpoint((a, t, ctx) => mid.forward(a, t, ctx), [h, temb, context])
        : mid.forward(h, temb, context);
      for (const blk of this.child<ModuleList<CrossAttnUpBlock2D | UpBlock2D>>("up_blocks")) {
        if (!ckpt) h = blk.forward(h, skips, temb, context);
        else {
          const own = skips.splice(skips.length - blk.layers);
          h = checkpoint((a, t, ctx, ...s) => blk.forward(a, s, t, ctx), [
            h,
            temb,
            context,
            ...own,
          ]);
        }
      }
      h = this.child<NormLayer>("conv_norm_out").forwardSilu(h);
      return this.child<Conv2d>("conv_out").forward(h);
    });
  }
}
