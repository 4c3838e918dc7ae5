/**
 * diffusers' `AutoencoderKL` (the SD VAE): `Encoder`, `Decoder`, the diagonal Gaussian latent
 * and the scaling factor.
 *
 * @module
 */
import { Module, ModuleList } from "./module.ts";
import { add, mul } from "../ops/binary.ts";
import { affine, exp, relu } from "../ops/unary.ts";
import { slice } from "../ops/slice.ts";
import { type Generator, randn } from "../ops/rng.ts";
import { scope } from "../ops/scope.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import type { Tensor } from "../ops/tensor.ts";
import { type InitOptions, initOptions } from "./layers/_init.ts";
import { Conv2d } from "./layers/conv2d.ts";
import { GroupNorm } from "./layers/group_norm.ts";
import {
  DownEncoderBlock2D,
  UNetMidBlock2D,
  UpDecoderBlock2D,
  type VaeBlockOptions,
} from "./layers/vae_blocks.ts";

/** The VAE's architecture. */
export interface VaeConfig {
  /** Image channels in (3). */
  inChannels: number;
  /** Image channels out (3). */
  outChannels: number;
  /** Latent channels (4). */
  latentChannels: number;
  /** Channels per level (128, 256, 512, 512). */
  blockOutChannels: number[];
  /** ResNet layers per encoder block; decoder blocks have one more (2). */
  layersPerBlock: number;
  /** GroupNorm groups (32). */
  normNumGroups: number;
  /** Latents are multiplied by this after encoding and divided before decoding (0.18215). */
  scalingFactor: number;
}

/** SD 1.x's VAE. */
export const SD15_VAE_CONFIG: Readonly<VaeConfig> = Object.freeze({
  inChannels: 3,
  outChannels: 3,
  latentChannels: 4,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  normNumGroups: 32,
  scalingFactor: 0.18215,
} as VaeConfig);

/** A full VAE config from a partial one (missing fields take SD 1.x's values). */
export function vaeConfig(partial: Partial<VaeConfig> = {}): VaeConfig {
  const c: VaeConfig = {
    ...SD15_VAE_CONFIG,
    ...partial,
    blockOutChannels: [...(partial.blockOutChannels ?? SD15_VAE_CONFIG.blockOutChannels)],
  };
  for (const ch of c.blockOutChannels) {
    if (ch % c.normNumGroups !== 0) {
      throw new ArgumentError(
        `VAE channels ${ch} are not divisible by ${c.normNumGroups} norm groups; pick ` +
          "normNumGroups that divides every blockOutChannels entry",
      );
    }
  }
  return c;
}

/** Converts a diffusers `vae/config.json` object to a {@link VaeConfig}. */
export function vaeConfigFromDiffusers(json: Record<string, unknown>): VaeConfig {
  const p: Partial<VaeConfig> = {};
  const n = (k: string) => (typeof json[k] === "number" ? json[k] as number : undefined);
  const set = <K extends keyof VaeConfig>(key: K, v: VaeConfig[K] | undefined) => {
    if (v !== undefined) p[key] = v;
  };
  set("inChannels", n("in_channels"));
  set("outChannels", n("out_channels"));
  set("latentChannels", n("latent_channels"));
  set("layersPerBlock", n("layers_per_block"));
  set("normNumGroups", n("norm_num_groups"));
  set("scalingFactor", n("scaling_factor"));
  if (Array.isArray(json["block_out_channels"])) {
    p.blockOutChannels = json["block_out_channels"] as number[];
  }
  return vaeConfig(p);
}

/** The diffusers `config.json` form of a {@link VaeConfig}. */
export function vaeConfigToDiffusers(c: VaeConfig): Record<string, unknown> {
  const n = c.blockOutChannels.length;
  return {
    _class_name: "AutoencoderKL",
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    latent_channels: c.latentChannels,
    block_out_channels: c.blockOutChannels,
    layers_per_block: c.layersPerBlock,
    norm_num_groups: c.normNumGroups,
    scaling_factor: c.scalingFactor,
    down_block_types: new Array(n).fill("DownEncoderBlock2D"),
    up_block_types: new Array(n).fill("UpDecoderBlock2D"),
    act_fn: "silu",
  };
}

function blockOptions(c: VaeConfig, o: InitOptions): VaeBlockOptions {
  return { ...initOptions(o), groups: c.normNumGroups, eps: 1e-6 };
}

// x: [B, inC, H, W] -> moments: [B, 2 latentC, H / 2^(n-1), W / 2^(n-1)]
/**
 * The VAE encoder: `conv_in`, `down_blocks.N`, `mid_block`, `conv_norm_out`, SiLU, `conv_out`
 * (mean and log-variance channels).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { Encoder, vaeConfig } from "./vae.ts";
 * await getDevice();
 * const e = new Encoder(vaeConfig({ blockOutChannels: [16, 32], layersPerBlock: 1, normNumGroups: 8 }));
 * console.log(e.forward(randn([1, 3, 16, 16])).shape); // [1, 8, 8, 8]
 * ```
 */
export class Encoder extends Module {
  /** A new encoder with random weights. */
  constructor(config: VaeConfig, options: InitOptions = {}) {
    super();
    const c = config, ch = c.blockOutChannels, o = blockOptions(c, options);
    const init: InitOptions = initOptions(options);
    this.addModule("conv_in", new Conv2d(c.inChannels, ch[0]!, 3, { ...init, padding: 1 }));
    const down = new ModuleList<DownEncoderBlock2D>();
    for (let i = 0; i < ch.length; i++) {
      const last = i === ch.length - 1;
      down.push(
        new DownEncoderBlock2D(ch[Math.max(i - 1, 0)]!, ch[i]!, c.layersPerBlock, !last, o),
      );
    }
    this.addModule("down_blocks", down);
    this.addModule("mid_block", new UNetMidBlock2D(ch.at(-1)!, o));
    this.addModule("conv_norm_out", new GroupNorm(c.normNumGroups, ch.at(-1)!, 1e-6));
    this.addModule(
      "conv_out",
      new Conv2d(ch.at(-1)!, 2 * c.latentChannels, 3, { ...init, padding: 1 }),
    );
  }

  /** Encodes an image batch to moments. */
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.child<Conv2d>("conv_in").forward(x);
      for (const b of this.child<ModuleList<DownEncoderBlock2D>>("down_blocks")) h = b.forward(h);
      h = this.child<UNetMidBlock2D>("mid_block").forward(h);
      h = this.child<GroupNorm>("conv_norm_out").forwardSilu(h);
      return this.child<Conv2d>("conv_out").forward(h);
    });
  }
}

// z: [B, latentC, h, w] -> x: [B, outC, h 2^(n-1), w 2^(n-1)]
/**
 * The VAE decoder: `conv_in`, `mid_block`, `up_blocks.N` (reversed channels, one more layer
 * than the encoder), `conv_norm_out`, SiLU, `conv_out`.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { Decoder, vaeConfig } from "./vae.ts";
 * await getDevice();
 * const d = new Decoder(vaeConfig({ blockOutChannels: [16, 32], layersPerBlock: 1, normNumGroups: 8 }));
 * console.log(d.forward(randn([1, 4, 8, 8])).shape); // [1, 3, 16, 16]
 * ```
 */
export class Decoder extends Module {
  /** A new decoder with random weights. */
  constructor(config: VaeConfig, options: InitOptions = {}) {
    super();
    const c = config, o = blockOptions(c, options);
    const init: InitOptions = initOptions(options);
    const rev = [...c.blockOutChannels].reverse();
    this.addModule("conv_in", new Conv2d(c.latentChannels, rev[0]!, 3, { ...init, padding: 1 }));
    this.addModule("mid_block", new UNetMidBlock2D(rev[0]!, o));
    const up = new ModuleList<UpDecoderBlock2D>();
    for (let i = 0; i < rev.length; i++) {
      const last = i === rev.length - 1;
      up.push(
        new UpDecoderBlock2D(rev[Math.max(i - 1, 0)]!, rev[i]!, c.layersPerBlock + 1, !last, o),
      );
    }
    this.addModule("up_blocks", up);
    this.addModule("conv_norm_out", new GroupNorm(c.normNumGroups, rev.at(-1)!, 1e-6));
    this.addModule("conv_out", new Conv2d(rev.at(-1)!, c.outChannels, 3, { ...init, padding: 1 }));
  }

  /** Decodes latents (already divided by the scaling factor) to an image batch. */
  forward(z: Tensor): Tensor {
    return scope(() => {
      let h = this.child<Conv2d>("conv_in").forward(z);
      h = this.child<UNetMidBlock2D>("mid_block").forward(h);
      for (const b of this.child<ModuleList<UpDecoderBlock2D>>("up_blocks")) h = b.forward(h);
      h = this.child<GroupNorm>("conv_norm_out").forwardSilu(h);
      return this.child<Conv2d>("conv_out").forward(h);
    });
  }
}

/** The encoder's diagonal Gaussian over latents. */
export interface LatentDistribution {
  /** Mean [B, latentC, h, w]. */
  mean: Tensor;
  /** Log-variance, clamped to [-30, 20] as diffusers does. */
  logvar: Tensor;
}

/** Options of {@link AutoencoderKL.sample}. */
export interface LatentSampleOptions {
  /** Noise stream (default: the process-wide one). */
  generator?: Generator;
}

/** `lo + relu(x - lo) - relu(x - hi)`: x clamped to [lo, hi] (differentiable inside). */
function clamp(x: Tensor, lo: number, hi: number): Tensor {
  return scope(() =>
    affine(add(relu(affine(x, 1, -lo)), affine(relu(affine(x, 1, -hi)), -1, 0)), 1, lo)
  );
}

// encode: x [B, 3, H, W] in [-1, 1] -> mean, logvar [B, 4, H/8, W/8]; decode: z -> x
/**
 * diffusers' `AutoencoderKL`: `encoder`, `quant_conv` (1x1), `post_quant_conv` (1x1), `decoder`.
 * `encode` gives the latent distribution, `sample` draws from it, `decode` maps latents back.
 * Diffusion works on `latents * scalingFactor`; divide by it before `decode`.
 *
 * @example
 * ```ts
 * import { getDevice, randn, Generator } from "../ops/mod.ts";
 * import { AutoencoderKL } from "./vae.ts";
 * await getDevice();
 * const vae = new AutoencoderKL({ blockOutChannels: [16, 32], layersPerBlock: 1, normNumGroups: 8 });
 * const dist = vae.encode(randn([1, 3, 16, 16]));
 * const z = vae.sample(dist, { generator: new Generator(1) });
 * console.log(z.shape, vae.decode(z).shape); // [1, 4, 8, 8] [1, 3, 16, 16]
 * ```
 */
export class AutoencoderKL extends Module {
  /** The architecture. */
  readonly config: VaeConfig;

  /** A new VAE with random weights. */
  constructor(config: Partial<VaeConfig> = {}, options: InitOptions = {}) {
    super();
    const c = vaeConfig(config);
    this.config = c;
    const init: InitOptions = initOptions(options);
    const L = c.latentChannels;
    this.addModule("encoder", new Encoder(c, init));
    this.addModule("decoder", new Decoder(c, init));
    this.addModule("quant_conv", new Conv2d(2 * L, 2 * L, 1, init));
    this.addModule("post_quant_conv", new Conv2d(L, L, 1, init));
  }

  /** The latent scaling factor (0.18215 for SD 1.x). */
  get scalingFactor(): number {
    return this.config.scalingFactor;
  }

  /** Encodes images in [-1, 1] to the latent distribution. */
  encode(x: Tensor): LatentDistribution {
    const c = this.config;
    const factor = 2 ** (c.blockOutChannels.length - 1);
    if (
      x.shape.length !== 4 || x.shape[1] !== c.inChannels || x.shape[2]! % factor !== 0 ||
      x.shape[3]! % factor !== 0
    ) {
      throw new ShapeError(
        `The VAE encoder needs images [B, ${c.inChannels}, H, W] with H and W divisible by ` +
          `${factor}, got ${fmtShape(x.shape)}`,
      );
    }
    return scope(() => {
      const m = this.child<Conv2d>("quant_conv").forward(this.child<Encoder>("encoder").forward(x));
      const L = c.latentChannels;
      return { mean: slice(m, 1, 0, L), logvar: clamp(slice(m, 1, L, 2 * L), -30, 20) };
    });
  }

  /** Draws `mean + exp(logvar / 2) * noise` (unscaled latents). */
  sample(dist: LatentDistribution, options: LatentSampleOptions = {}): Tensor {
    return scope(() => {
      const noise = randn(
        dist.mean.shape,
        options.generator ? { generator: options.generator } : {},
      );
      return add(dist.mean, mul(exp(affine(dist.logvar, 0.5, 0)), noise));
    });
  }

  /** Decodes unscaled latents (divide diffusion latents by `scalingFactor` first). */
  decode(z: Tensor): Tensor {
    const L = this.config.latentChannels;
    if (z.shape.length !== 4 || z.shape[1] !== L) {
      throw new ShapeError(
        `The VAE decoder needs latents [B, ${L}, h, w], got ${fmtShape(z.shape)}`,
      );
    }
    return scope(() =>
      this.child<Decoder>("decoder").forward(this.child<Conv2d>("post_quant_conv").forward(z))
    );
  }
}
