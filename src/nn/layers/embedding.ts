/**
 * A lookup table layer.
 *
 * @module
 */
import { Module } from "../module.ts";
import { embedding } from "../../ops/embedding.ts";
import { randn } from "../../ops/rng.ts";
import type { DType, Tensor } from "../../ops/tensor.ts";
import type { InitOptions } from "./_init.ts";

// ids: [...idsShape] (CPU) -> y: [...idsShape, dim]
/**
 * PyTorch's `nn.Embedding(num, dim)`: `weight` [num, dim], initialized standard normal.
 *
 * @example
 * ```ts
 * import { getDevice } from "../../ops/mod.ts";
 * import { Embedding } from "./embedding.ts";
 * await getDevice();
 * console.log(new Embedding(10, 4).forward([1, 2, 3], [1, 3]).shape); // [1, 3, 4]
 * ```
 */
export class Embedding extends Module {
  /** Rows. */
  readonly num: number;
  /** Width. */
  readonly dim: number;

  /** A new table; `dtype` f16 halves the storage (e.g. CLIP's 49408 x 768 table). */
  constructor(num: number, dim: number, options: InitOptions & { dtype?: DType } = {}) {
    super();
    this.num = num;
    this.dim = dim;
    this.addParameter(
      "weight",
      randn([num, dim], {
        dtype: options.dtype ?? "f32",
        ...(options.generator ? { generator: options.generator } : {}),
      }),
    );
  }

  /** Looks up `ids` (shape `idsShape`, default `[ids.length]`). */
  forward(ids: Uint32Array | readonly number[], idsShape?: readonly number[]): Tensor {
    return embedding(this.param("weight").value, ids, idsShape ?? [ids.length]);
  }
}
