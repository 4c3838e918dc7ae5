/**
 * Applies several LoRA-like files to loaded models unmerged, for sampling: plain LoRA / LoCon
 * entries of a module are stacked into one low-rank adapter (down rows concatenated, each up
 * scaled by its weight and alpha / rank), every other form becomes a fixed weight delta, and
 * norm entries a fixed norm delta. The base weights are never written.
 *
 * @module
 */
import { Linear } from "../nn/layers/linear.ts";
import { Conv2d } from "../nn/layers/conv2d.ts";
import { tensor } from "../ops/creation.ts";
import { fmtShape, ShapeError } from "../ops/errors.ts";
import type { LoraEntry } from "./file_types.ts";
import { checkEntryFinite } from "./finite.ts";
import { composeDeltas, type LoraSource, modelTree, sourceWeight } from "./compose.ts";
import { LoraNetwork } from "./network.ts";
import { flatTo, layerAt, LoraMatchError } from "./_layers.ts";
import type { LoraModels } from "./formats/model_shapes.ts";
import { LoraModule, loraShapes } from "./lora_module.ts";
import { NormAdapter } from "./norm_adapter.ts";
import { DeltaAdapter } from "./delta_adapter.ts";
import { WeightCopyAdapter } from "./weight_copy_adapter.ts";

/** Options of {@link applyLoras}. */
export interface ApplyLorasOptions {
  /**
   * How Linear and conv updates run: `lowrank` (default) keeps each module's low-rank factors
   * (stacked) or its delta beside the untouched base weight; `copy` holds a copy of the
   * effective weight `W0 + dW` per adapted layer (a merged model's speed, one weight's memory
   * more per layer; the base weights stay untouched either way).
   */
  mode?: "lowrank" | "copy";
}

type Weighted = { entry: LoraEntry; weight: number; source: LoraSource };

function stackable(items: Weighted[]): boolean {
  return items.every(({ entry: e }) =>
    e.kind === "lora" && !e.mid && e.down && e.up && !e.tensors["dora_scale"]
  );
}

function stacked(layer: Linear | Conv2d, items: Weighted[]): LoraModule {
  const ranks = items.map(({ entry }) => entry.down!.shape[0]!);
  const R = ranks.reduce((a, b) => a + b, 0);
  const [downShape, upShape] = loraShapes(layer, R);
  const per = downShape.slice(1).reduce((a, b) => a * b, 1);
  const out = upShape[0]!;
  const down = new Float32Array(R * per), up = new Float32Array(out * R);
  let at = 0;
  for (const [n, { entry, weight }] of items.entries()) {
    const r = ranks[n]!;
    const d = flatTo(entry.down!, [r, ...downShape.slice(1)]);
    const u = flatTo(entry.up!, [out, r, ...upShape.slice(2)]);
    if (
      d.shape.join() !== [r, ...downShape.slice(1)].join() ||
      u.shape.join() !== [out, r, ...upShape.slice(2)].join()
    ) {
      throw new ShapeError(
        `"${entry.path}": down ${fmtShape(entry.down!.shape)} / up ${fmtShape(entry.up!.shape)} ` +
          `do not fit a module whose weight is ${fmtShape(layer.param("weight").shape)}`,
      );
    }
    down.set(d.data, at * per);
    const s = weight * (entry.alpha === undefined ? 1 : entry.alpha / r);
    for (let o = 0; o < out; o++) {
      for (let q = 0; q < r; q++) up[o * R + at + q] = s * u.data[o * r + q]!;
    }
    at += r;
  }
  const m = new LoraModule(layer, R, R);
  m.param("lora_down").assign(tensor(down, downShape));
  m.param("lora_up").assign(tensor(up, upShape));
  m.freeze().eval();
  return m;
}

/**
 * Attaches the combined update of `sources` to the models without changing their weights;
 * `dispose()` (or `detach()`) of the result restores the plain models. Everything is checked
 * (unknown modules, shapes, NaN) before anything is attached.
 *
 * @example
 * ```ts
 * import { getDevice, randn } from "../ops/mod.ts";
 * import { UNet2DConditionModel } from "../nn/unet.ts";
 * import { applyLoras } from "./apply.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel({ blockOutChannels: [32, 64], layersPerBlock: 1,
 *   attentionHeads: 2, crossAttentionDim: 32, normNumGroups: 8 });
 * const down = { shape: [2, 32, 1, 1], data: new Float32Array(64).fill(0.1) };
 * const up = { shape: [32, 2, 1, 1], data: new Float32Array(64).fill(0.1) };
 * const lora = await applyLoras({ unet }, [{ multiplier: 0.8, entries: [{
 *   component: "unet", path: "down_blocks.0.attentions.0.proj_in", kind: "lora", down, up,
 *   alpha: 1, tensors: {} }] }]);
 * console.log(unet.forward(randn([1, 4, 8, 8]), 10, randn([1, 3, 32])).shape);
 * lora.dispose();
 * ```
 */
export async function applyLoras(
  models: LoraModels,
  sources: readonly LoraSource[],
  options: ApplyLorasOptions = {},
): Promise<LoraNetwork> {
  const copy = options.mode === "copy";
  const tree = modelTree(models);
  const groups = new Map<string, Weighted[]>();
  for (const source of sources) {
    for (const entry of source.entries) {
      const key = `${entry.component}:${entry.path}`;
      const info = tree.get(key);
      if (!info) {
        throw new LoraMatchError(
          `The LoRA module "${key}" is not in the given models; the file was made for a ` +
            "different model",
        );
      }
      checkEntryFinite(entry);
      const list = groups.get(key) ?? [];
      list.push({ entry, weight: sourceWeight(source, info), source });
      groups.set(key, list);
    }
  }
  const built: [string, string, LoraModule | NormAdapter | DeltaAdapter | WeightCopyAdapter][] = [];
  try {
    for (const items of groups.values()) {
      const { component, path } = items[0]!.entry;
      const layer = layerAt(models, component, path);
      if ((layer instanceof Linear || layer instanceof Conv2d) && !copy && stackable(items)) {
        built.push([component, path, stacked(layer, items)]);
        continue;
      }
      const [d] = await composeDeltas(
        models,
        items.map(({ entry, weight }) => ({ entries: [entry], multiplier: weight })),
      );
      if ((layer instanceof Linear || layer instanceof Conv2d) && copy) {
        built.push([
          component,
          path,
          new WeightCopyAdapter(layer, d?.weight ?? null, d?.bias ?? null),
        ]);
      } else if (layer instanceof Linear || layer instanceof Conv2d) {
        const w = layer.param("weight").shape;
        built.push([
          component,
          path,
          new DeltaAdapter(
            layer,
            d?.weight ?? { shape: [...w], data: new Float32Array(w.reduce((a, b) => a * b, 1)) },
            d?.bias ?? null,
          ),
        ]);
      } else {
        const a = new NormAdapter(layer);
        const c = layer.param("weight").shape;
        if (d?.weight) a.param("w_norm").assign(tensor(checkLen(d.weight.data, c, path), c));
        if (d?.bias) a.param("b_norm").assign(tensor(checkLen(d.bias.data, c, path), c));
        a.freeze().eval();
        built.push([component, path, a]);
      }
    }
  } catch (err) {
    for (const [, , a] of built) a.dispose();
    throw err;
  }
  const net = new LoraNetwork();
  for (const [component, path, a] of built) {
    net.add(component as LoraEntry["component"], path, a);
  }
  return net;
}

function checkLen(data: Float32Array, shape: readonly number[], path: string): Float32Array {
  if (data.length !== shape[0]) {
    throw new ShapeError(
      `"${path}": a norm delta of ${data.length} values does not fit ${shape[0]} channels`,
    );
  }
  return data;
}
