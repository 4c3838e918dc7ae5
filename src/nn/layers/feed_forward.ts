/**
 * The GEGLU feed-forward of diffusers' transformer blocks.
 *
 * @module
 */
import { Module, ModuleList } from "../module.ts";
import { geglu } from "../../ops/geglu.ts";
import { scope } from "../../ops/scope.ts";
import type { Tensor } from "../../ops/tensor.ts";
import { type InitOptions, initOptions } from "./_init.ts";
import { Linear } from "./linear.ts";

// x: [..., dim] -> y: [..., inner]
/**
 * GEGLU (Shazeer 2020): `proj` maps to `2 inner` features, split into `h` (first half) and `gate`
 * (second half); the output is `h * gelu(gate)` (exact GELU), as diffusers' `GEGLU`.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { GEGLU } from "./feed_forward.ts";
 * await getDevice();
 * console.log(new GEGLU(8, 32).forward(randn([2, 3, 8])).shape); // [2, 3, 32]
 * ```
 */
export class GEGLU extends Module {
  /** Output width. */
  readonly inner: number;

  /** `proj`: Linear(dim, 2 inner). */
  constructor(dim: number, inner: number, options: InitOptions = {}) {
    super();
    this.inner = inner;
    this.addModule("proj", new Linear(dim, 2 * inner, options));
  }

  /** Applies the gated projection. */
  forward(x: Tensor): Tensor {
    return scope(() => geglu(this.child<Linear>("proj").forward(x)));
  }
}

/** A parameter-free placeholder (diffusers' `Dropout` slot `net.1`, identity at inference). */
export class Identity extends Module {
  /** Returns `x`. */
  forward(x: Tensor): Tensor {
    return x;
  }
}

// x: [..., dim] -> y: [..., dim]
/**
 * diffusers' `FeedForward` with GEGLU: `net.0` (GEGLU, `net.0.proj` [2 inner, dim]), `net.1`
 * (dropout, no parameters), `net.2` (Linear(inner, dim)); `inner = mult * dim` (default 4).
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../../ops/mod.ts";
 * import { FeedForward } from "./feed_forward.ts";
 * await getDevice();
 * console.log(new FeedForward(8).forward(randn([2, 3, 8])).shape); // [2, 3, 8]
 * ```
 */
export class FeedForward extends Module {
  /** A new block; `mult` scales the hidden width (default 4). */
  constructor(dim: number, options: InitOptions & { mult?: number } = {}) {
    super();
    const inner = dim * (options.mult ?? 4);
    const init: InitOptions = initOptions(options);
    this.addModule(
      "net",
      new ModuleList<Module>([
        new GEGLU(dim, inner, init),
        new Identity(),
        new Linear(inner, dim, init),
      ]),
    );
  }

  /** Applies the feed-forward; `residual` (shaped like `x`) is added inside `net.2`'s product. */
  forward(x: Tensor, residual?: Tensor): Tensor {
    return scope(() =>
      this.child<Linear>("net.2").forward(this.child<GEGLU>("net.0").forward(x), residual)
    );
  }
}
