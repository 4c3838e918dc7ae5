// Finding the layer an adapter belongs to, and matching stored shapes to it (private to src/lora).
import { Linear } from "../nn/layers/linear.ts";
import { Conv2d } from "../nn/layers/conv2d.ts";
import { GroupNorm } from "../nn/layers/group_norm.ts";
import { LayerNorm } from "../nn/layers/layer_norm.ts";
import { ArgumentError } from "../ops/errors.ts";
import type { HostTensor, LoraComponent } from "./file_types.ts";
import type { LoraModels } from "./formats/model_shapes.ts";

/** Error for adapters that do not fit the model they are attached to. */
export class LoraMatchError extends ArgumentError {
  /** A new error with a message naming the module and what to do. */
  constructor(message: string) {
    super(message);
    this.name = "LoraMatchError";
  }
}

/** The Linear, Conv2d or norm at `path` of the given model, or an error naming it. */
export function layerAt(
  models: LoraModels,
  component: LoraComponent,
  path: string,
): Linear | Conv2d | GroupNorm | LayerNorm {
  const model = component === "unet" ? models.unet : models.textEncoder;
  if (!model) {
    throw new LoraMatchError(
      `"${path}" belongs to the ${component === "unet" ? "U-Net" : "text encoder"}, which was ` +
        "not given; pass that model too",
    );
  }
  const m = model.getChild(path);
  if (
    !(m instanceof Linear || m instanceof Conv2d || m instanceof GroupNorm ||
      m instanceof LayerNorm)
  ) {
    throw new LoraMatchError(
      `The ${component === "unet" ? "U-Net" : "text encoder"} has no Linear, Conv2d or norm ` +
        `at "${path}"; the LoRA was made for a different model`,
    );
  }
  return m;
}

/** A 2-D `[r, in]` stored for a 1x1 conv (or the reverse) takes the module's layout. */
export function flatTo(t: HostTensor, shape: readonly number[]): HostTensor {
  const trailing = (s: readonly number[]) => s.slice(2).every((d) => d === 1);
  if (
    t.shape.length !== shape.length && t.shape[0] === shape[0] && t.shape[1] === shape[1] &&
    trailing(t.shape) && trailing(shape)
  ) {
    return { shape: [...shape], data: t.data };
  }
  return t;
}
