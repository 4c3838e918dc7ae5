/**
 * The VAE's blocks (diffusers names): `SpatialSelfAttention` (the mid-block attention),
 * `UNetMidBlock2D`, `DownEncoderBlock2D` and `UpDecoderBlock2D`.
 *
 * @module
 */
import { Module, ModuleList } from "../module.ts";
import { add } from "../../ops/binary.ts";
import { permute } from "../../ops/permute.ts";
import { reshape } from "../../ops/reshape.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { Attention, mergeHeads, scaledDotProductAttention, splitHeads } from "./attention.ts";
import { Downsample2D } from "./downsample.ts";
import { GroupNorm } from "./group_norm.ts";
import type { Linear } from "./linear.ts";
import { ResnetBlock2D } from "./resnet.ts";
import { Upsample2D } from "./upsample.ts";

/** Options of the VAE blocks. */
export interface VaeBlockOptions extends InitOptions {
  /** GroupNorm groups (default 32). */
  groups?: number;
  /** GroupNorm epsilon (default 1e-6). */
  eps?: number;
}

function resnet(cin: number, cout: number, o: VaeBlockOptions): ResnetBlock2D {
  return new ResnetBlock2D(cin, cout, {
    ...initOptions(o),
    tembChannels: null,
    groups: o.groups ?? 32,
    eps: o.eps ?? 1e-6,
  });
}

/** `layers` resnets, the first taking `cin` channels, the rest `cout`. */
function resnetStack(
  cin: number,
  cout: number,
  layers: number,
  o: VaeBlockOptions,
): ModuleList<ResnetBlock2D> {
  const list = new ModuleList<ResnetBlock2D>();
  for (let i = 0; i < layers; i++) list.push(resnet(i === 0 ? cin : cout, cout, o));
  return list;
}

/** Runs `block.resnets` in order, then the resampler at `resampler` when the block has one. */
function resnetsThen(block: Module, x: Tensor, resampler: string): Tensor {
  return scope(() => {
    let h = x;
    for (const r of block.child<ModuleList<ResnetBlock2D>>("resnets")) h = r.forward(h);
    const re = block.getChild(resampler) as Downsample2D | Upsample2D | undefined;
    return re ? re.forward(h) : h;
  });
}

// x: [B, C, H, W] -> y: [B, C, H, W]
/**
 * diffusers' VAE attention: `group_norm`, then single-head (by default) self-attention over the
 * H W positions with `to_q`, `to_k`, `to_v` (biases) and `to_out.0`, plus the input. Heads wider
 * than the fused kernel's limit (the SD VAE's 512) use materialized scores.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { SpatialSelfAttention } from "./vae_blocks.ts";
 * await getDevice();
 * const a = new SpatialSelfAttention(32, { groups: 8 });
 * console.log(a.forwardSpatial(randn([1, 32, 4, 4])).shape); // [1, 32, 4, 4]
 * ```
 */
export class SpatialSelfAttention extends Attention {
  /** A new layer with random weights. */
  constructor(channels: number, options: VaeBlockOptions & { heads?: number } = {}) {
    super(channels, { ...initOptions(options), heads: options.heads ?? 1, qkvBias: true });
    this.addModule(
      "group_norm",
      new GroupNorm(options.groups ?? 32, channels, options.eps ?? 1e-6),
    );
  }

  /** Attends over the spatial positions of `x` [B, C, H, W]. */
  forwardSpatial(x: Tensor, options: { materialize?: boolean } = {}): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    return scope(() => {
      const n = this.child<GroupNorm>("group_norm").forward(x);
      const t = permute(reshape(n, [B, C, H * W]), [0, 2, 1]);
      const q = splitHeads(this.child<Linear>("to_q").forward(t), this.heads);
      const k = splitHeads(this.child<Linear>("to_k").forward(t), this.heads);
      const v = splitHeads(this.child<Linear>("to_v").forward(t), this.heads);
      const o = this.child<Linear>("to_out.0").forward(
        mergeHeads(scaledDotProductAttention(q, k, v, options)),
      );
      return add(reshape(permute(o, [0, 2, 1]), [B, C, H, W]), x);
    });
  }
}

// x: [B, C, H, W] -> y: [B, C, H, W]
/**
 * The VAE mid block: `resnets.0` -> `attentions.0` -> `resnets.1` (no time embedding).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { UNetMidBlock2D } from "./vae_blocks.ts";
 * await getDevice();
 * console.log(new UNetMidBlock2D(32, { groups: 8 }).forward(randn([1, 32, 4, 4])).shape);
 * ```
 */
export class UNetMidBlock2D extends Module {
  /** A new block with random weights. */
  constructor(channels: number, options: VaeBlockOptions = {}) {
    super();
    this.addModule("attentions", new ModuleList([new SpatialSelfAttention(channels, options)]));
    this.addModule(
      "resnets",
      new ModuleList([resnet(channels, channels, options), resnet(channels, channels, options)]),
    );
  }

  /** Runs the block. */
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.child<ResnetBlock2D>("resnets.0").forward(x);
      h = this.child<SpatialSelfAttention>("attentions.0").forwardSpatial(h);
      return this.child<ResnetBlock2D>("resnets.1").forward(h);
    });
  }
}

// x: [B, Cin, H, W] -> y: [B, Cout, H/2, W/2] (H when last)
/**
 * The VAE encoder's down block: `resnets.N`, then `downsamplers.0` (bottom-right padding,
 * stride-2 conv) unless it is the last block.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { DownEncoderBlock2D } from "./vae_blocks.ts";
 * await getDevice();
 * const b = new DownEncoderBlock2D(16, 32, 1, true, { groups: 8 });
 * console.log(b.forward(randn([1, 16, 8, 8])).shape); // [1, 32, 4, 4]
 * ```
 */
export class DownEncoderBlock2D extends Module {
  /** A new block with random weights. */
  constructor(
    inChannels: number,
    outChannels: number,
    layers: number,
    addDownsample: boolean,
    options: VaeBlockOptions = {},
  ) {
    super();
    this.addModule("resnets", resnetStack(inChannels, outChannels, layers, options));
    if (addDownsample) {
      this.addModule(
        "downsamplers",
        new ModuleList([
          new Downsample2D(outChannels, { ...initOptions(options), asymmetricPad: true }),
        ]),
      );
    }
  }

  /** Runs the block. */
  forward(x: Tensor): Tensor {
    return resnetsThen(this, x, "downsamplers.0");
  }
}

// x: [B, Cin, H, W] -> y: [B, Cout, 2H, 2W] (H when last)
/**
 * The VAE decoder's up block: `resnets.N`, then `upsamplers.0` unless it is the last block.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { UpDecoderBlock2D } from "./vae_blocks.ts";
 * await getDevice();
 * const b = new UpDecoderBlock2D(32, 16, 2, true, { groups: 8 });
 * console.log(b.forward(randn([1, 32, 4, 4])).shape); // [1, 16, 8, 8]
 * ```
 */
export class UpDecoderBlock2D extends Module {
  /** A new block with random weights. */
  constructor(
    inChannels: number,
    outChannels: number,
    layers: number,
    addUpsample: boolean,
    options: VaeBlockOptions = {},
  ) {
    super();
    this.addModule("resnets", resnetStack(inChannels, outChannels, layers, options));
    if (addUpsample) {
      this.addModule(
        "upsamplers",
        new ModuleList([new Upsample2D(outChannels, initOptions(options))]),
      );
    }
  }

  /** Runs the block. */
  forward(x: Tensor): Tensor {
    return resnetsThen(this, x, "upsamplers.0");
  }
}
