/**
 * Merging LoRA updates into base weights and taking them out again: `W += m * dW` per module,
 * computed in f32 on the CPU and written back in the weight's own dtype.
 *
 * @module
 */
import type { Parameter } from "../nn/module.ts";
import { tensor } from "../ops/creation.ts";
import { sync } from "../ops/runtime.ts";
import { fmtShape, ShapeError } from "../ops/errors.ts";
import type { HostTensor } from "./file_types.ts";
import { type ComposedDelta, composeDeltas, type LoraSource } from "./compose.ts";
import { layerAt } from "./_layers.ts";
import type { LoraModels } from "./formats/model_shapes.ts";

async function addInto(p: Parameter, d: HostTensor, sign: number, what: string): Promise<void> {
  if (d.data.length !== p.value.size) {
    throw new ShapeError(
      `${what}: a delta of shape ${fmtShape(d.shape)} does not fit a weight of shape ` +
        `${fmtShape(p.shape)}`,
    );
  }
  const w = await p.value.toArray();
  for (let i = 0; i < w.length; i++) w[i]! += sign * d.data[i]!;
  p.assign(tensor(w, p.shape, { dtype: p.value.dtype }));
}

/**
 * Adds (sign 1) or subtracts (sign -1) composed deltas to the models' weights and biases.
 * Every module is found and shape-checked before any weight changes.
 */
export async function applyDeltas(
  models: LoraModels,
  deltas: readonly ComposedDelta[],
  sign = 1,
): Promise<void> {
  const layers = deltas.map((d) => {
    const layer = layerAt(models, d.component, d.path);
    const w = layer.param("weight");
    if (d.weight && d.weight.data.length !== w.value.size) {
      throw new ShapeError(
        `"${d.path}": a delta of shape ${fmtShape(d.weight.shape)} does not fit its weight ` +
          `${fmtShape(w.shape)}`,
      );
    }
    return layer;
  });
  for (const [i, d] of deltas.entries()) {
    const layer = layers[i]!;
    if (d.weight) await addInto(layer.param("weight"), d.weight, sign, `"${d.path}" weight`);
    if (d.bias) await addInto(layer.param("bias"), d.bias, sign, `"${d.path}" bias`);
  }
  await sync();
}

/**
 * Merges the combined update of `sources` into the models' weights (returns the deltas, which
 * `unmergeLoras` takes out again; f32 weights come back within f32 rounding).
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/mod.ts";
 * import { UNet2DConditionModel } from "../nn/unet.ts";
 * import { mergeLoras, unmergeLoras } from "./merge.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel({ blockOutChannels: [32, 64], layersPerBlock: 1,
 *   attentionHeads: 2, crossAttentionDim: 32, normNumGroups: 8 });
 * const models = { unet };
 * const entry = { component: "unet" as const, path: "conv_in", kind: "full" as const,
 *   tensors: { diff: { shape: [32, 4, 3, 3], data: new Float32Array(1152).fill(0.1) } } };
 * const deltas = await mergeLoras(models, [{ entries: [entry] }]);
 * await unmergeLoras(models, deltas);
 * ```
 */
export async function mergeLoras(
  models: LoraModels,
  sources: readonly LoraSource[],
): Promise<ComposedDelta[]> {
  const deltas = await composeDeltas(models, sources);
  await applyDeltas(models, deltas, 1);
  return deltas;
}

/** Takes merged deltas out of the weights again. */
export async function unmergeLoras(
  models: LoraModels,
  deltas: readonly ComposedDelta[],
): Promise<void> {
  await applyDeltas(models, deltas, -1);
}
