// Weight initialization shared by the layers (PyTorch's defaults).
import type { Generator } from "../../ops/rng.ts";
import { rand } from "../../ops/rng.ts";
import { ones, zeros } from "../../ops/creation.ts";
import { cast } from "../../ops/cast.ts";
import { noGrad } from "../../ops/autograd.ts";
import type { DType, Tensor } from "../../ops/tensor.ts";

/** Options every layer constructor takes for its initial weights. */
export interface InitOptions {
  /** Random stream of the initial weights (default: the process-wide one). */
  generator?: Generator;
  /**
   * Storage of weight matrices and kernels, the tensors of 2 or more dimensions (default f32).
   * f16 halves the memory of frozen base weights; it needs an adapter with `shader-f16`. Biases
   * and norm parameters stay f32.
   */
  weightDType?: DType;
}

/** The init fields of a layer's options, to pass on to its sublayers. */
export function initOptions(o: InitOptions): InitOptions {
  return {
    ...(o.generator ? { generator: o.generator } : {}),
    ...(o.weightDType ? { weightDType: o.weightDType } : {}),
  };
}

/** Uniform values in [-bound, bound) (PyTorch's kaiming-uniform default for Linear/Conv2d). */
export function uniformInit(shape: readonly number[], bound: number, o: InitOptions): Tensor {
  const t = rand(shape, {
    low: -bound,
    high: bound,
    ...(o.generator ? { generator: o.generator } : {}),
  });
  if (shape.length < 2 || (o.weightDType ?? "f32") === t.dtype) return t;
  const w = noGrad(() => cast(t, o.weightDType!));
  t.dispose();
  return w;
}

export { ones, zeros };
