// Weight initialization shared by the layers (PyTorch's defaults).
import type { Generator } from "../../ops/rng.ts";
import { rand } from "../../ops/rng.ts";
import { ones, zeros } from "../../ops/creation.ts";
import type { Tensor } from "../../ops/tensor.ts";

/** Options every layer constructor takes for its initial weights. */
export interface InitOptions {
  /** Random stream of the initial weights (default: the process-wide one). */
  generator?: Generator;
}

/** Uniform values in [-bound, bound) (PyTorch's kaiming-uniform default for Linear/Conv2d). */
export function uniformInit(shape: readonly number[], bound: number, o: InitOptions): Tensor {
  return rand(shape, {
    low: -bound,
    high: bound,
    ...(o.generator ? { generator: o.generator } : {}),
  });
}

export { ones, zeros };
