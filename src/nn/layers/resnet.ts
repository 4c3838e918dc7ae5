/**
 * diffusers' `ResnetBlock2D`.
 *
 * @module
 */
import { Module } from "../module.ts";
import { silu } from "../../ops/unary.ts";
import { scope } from "../../ops/scope.ts";
import { fmtShape, ShapeError } from "../../ops/errors.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { makeNorm, type NormKind, type NormLayer } from "./_norm.ts";
import { Conv2d } from "./conv2d.ts";
import { Linear } from "./linear.ts";

export type { NormKind } from "./_norm.ts";

/** Options of {@link ResnetBlock2D}. */
export interface ResnetBlockOptions extends InitOptions {
  /** Width of the time embedding, or null for none (the VAE). Default 1280. */
  tembChannels?: number | null;
  /** GroupNorm groups (default 32). */
  groups?: number;
  /** GroupNorm epsilon (default 1e-5; the VAE uses 1e-6). */
  eps?: number;
  /** GroupNorm (default) or BatchNorm2d. */
  norm?: NormKind;
}

// x: [B, Cin, H, W], temb: [B, T] -> y: [B, Cout, H, W]
/**
 * `h = conv1(silu(norm1(x))); h += time_emb_proj(silu(temb)); h = conv2(silu(norm2(h)));
 * y = shortcut(x) + h`, with `conv_shortcut` a 1x1 conv when the channels change.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { ResnetBlock2D } from "./resnet.ts";
 * await getDevice();
 * const r = new ResnetBlock2D(16, 32, { tembChannels: 64, groups: 8 });
 * console.log(r.forward(randn([2, 16, 8, 8]), randn([2, 64])).shape); // [2, 32, 8, 8]
 * ```
 */
export class ResnetBlock2D extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;

  /** A new block with random weights. */
  constructor(inChannels: number, outChannels: number, options: ResnetBlockOptions = {}) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    const init: InitOptions = initOptions(options);
    const groups = options.groups ?? 32, eps = options.eps ?? 1e-5;
    const norm = options.norm ?? "group";
    const temb = options.tembChannels === undefined ? 1280 : options.tembChannels;
    this.addModule("norm1", makeNorm(norm, groups, inChannels, eps));
    this.addModule("conv1", new Conv2d(inChannels, outChannels, 3, { ...init, padding: 1 }));
    if (temb !== null) this.addModule("time_emb_proj", new Linear(temb, outChannels, init));
    this.addModule("norm2", makeNorm(norm, groups, outChannels, eps));
    this.addModule("conv2", new Conv2d(outChannels, outChannels, 3, { ...init, padding: 1 }));
    if (inChannels !== outChannels) {
      this.addModule("conv_shortcut", new Conv2d(inChannels, outChannels, 1, init));
    }
  }

  /** Runs the block; `temb` is required when the block has a time projection. */
  forward(x: Tensor, temb?: Tensor): Tensor {
    if (x.shape.length !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(
        `ResnetBlock2D(${this.inChannels}, ${this.outChannels}) needs x [B, ${this.inChannels}, ` +
          `H, W], got ${fmtShape(x.shape)}`,
      );
    }
    return scope(() => {
      const proj = this.getChild("time_emb_proj") as Linear | undefined;
      if (proj && !temb) {
        throw new ShapeError("ResnetBlock2D with a time projection needs a time embedding");
      }
      // the time projection [B, out] is added to conv1's bias, in its product
      const t = proj && temb ? proj.forward(silu(temb)) : undefined;
      const n1 = this.child<NormLayer>("norm1").forwardSilu(x);
      const h = this.child<Conv2d>("conv1").forward(n1, undefined, t);
      // the shortcut is added inside conv2's product
      const sc = this.getChild("conv_shortcut") as Conv2d | undefined;
      const skip = sc ? sc.forward(x) : x;
      return this.child<Conv2d>("conv2").forward(
        this.child<NormLayer>("norm2").forwardSilu(h),
        skip,
      );
    });
  }
}
