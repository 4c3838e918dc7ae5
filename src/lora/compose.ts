/**
 * Composition of several LoRA-like files at inference: each with a multiplier, separate U-Net
 * and text-encoder multipliers, and per-block weights. The combined update of a module is the
 * sum of its entries' deltas, each times `multiplier * blockWeight`. Applied unmerged (adapters;
 * the base weights are never touched) or merged into the base weights.
 *
 * @module
 */
import { CLIPTextModel } from "../nn/clip.ts";
import { ArgumentError, fmtShape, ShapeError } from "../ops/errors.ts";
import { numel } from "../ops/tensor.ts";
import type { HostTensor, LoraComponent, LoraEntry } from "./file_types.ts";
import { blockWeightOf, type BlockWeights } from "./block_weights.ts";
import { entryDelta } from "./formats/delta.ts";
import { checkEntryFinite } from "./finite.ts";
import { type ModuleInfo, textEncoderTree, unetTree } from "./tree.ts";
import type { LoraModels } from "./formats/model_shapes.ts";
import { layerAt } from "./_layers.ts";

/** One file to compose, with its weights. */
export interface LoraSource {
  /** The file's entries. */
  entries: readonly LoraEntry[];
  /** Multiplier of every module (default 1). */
  multiplier?: number;
  /** Multiplier of the U-Net modules (default: `multiplier`). */
  unetMultiplier?: number;
  /** Multiplier of the text-encoder modules (default: `multiplier`). */
  textEncoderMultiplier?: number;
  /** Per-block weights (default: all 1). */
  blockWeights?: BlockWeights;
}

/** The summed update of one module. */
export interface ComposedDelta {
  /** Which model. */
  component: LoraComponent;
  /** The module's diffusers path. */
  path: string;
  /** Summed weight delta, or null. */
  weight: HostTensor | null;
  /** Summed bias delta, or null. */
  bias: HostTensor | null;
}

/** The layout of the given models (paths with block indices and weight shapes). */
export function modelTree(models: LoraModels): Map<string, ModuleInfo> {
  const out = new Map<string, ModuleInfo>();
  if (models.unet) {
    for (const m of unetTree(models.unet.config)) out.set(`unet:${m.path}`, m);
  }
  if (models.textEncoder instanceof CLIPTextModel) {
    for (const m of textEncoderTree(models.textEncoder.config)) {
      out.set(`text_encoder:${m.path}`, m);
    }
  }
  return out;
}

/** The weight of one source on one module: its component multiplier times its block weight. */
export function sourceWeight(source: LoraSource, module: ModuleInfo): number {
  const base = source.multiplier ?? 1;
  const m = module.component === "unet"
    ? source.unetMultiplier ?? base
    : source.textEncoderMultiplier ?? base;
  return source.blockWeights ? m * blockWeightOf(source.blockWeights, module) : m;
}

function accumulate(into: HostTensor | null, add: HostTensor): HostTensor {
  const out = into ?? { shape: [...add.shape], data: new Float32Array(add.data.length) };
  for (let i = 0; i < add.data.length; i++) out.data[i]! += add.data[i]!;
  return out;
}

/**
 * Sums the deltas of every source per module. Entries whose module the models lack are an error
 * that names them; DoRA entries read their module's base weight back from the GPU.
 *
 * @example
 * ```ts
 * import { getDevice } from "../ops/mod.ts";
 * import { UNet2DConditionModel } from "../nn/unet.ts";
 * import { composeDeltas } from "./compose.ts";
 * await getDevice();
 * const unet = new UNet2DConditionModel({ blockOutChannels: [32, 64], layersPerBlock: 1,
 *   attentionHeads: 2, crossAttentionDim: 32, normNumGroups: 8 });
 * const entry = { component: "unet" as const, path: "conv_in", kind: "full" as const,
 *   tensors: { diff: { shape: [32, 4, 3, 3], data: new Float32Array(1152).fill(0.1) } } };
 * const [d] = await composeDeltas({ unet }, [
 *   { entries: [entry], multiplier: 0.5 },
 *   { entries: [entry], multiplier: 1 },
 * ]);
 * console.log(d?.weight?.data[0]); // 0.15
 * ```
 */
export async function composeDeltas(
  models: LoraModels,
  sources: readonly LoraSource[],
): Promise<ComposedDelta[]> {
  const tree = modelTree(models);
  const out = new Map<string, ComposedDelta>();
  const unknown: string[] = [];
  for (const source of sources) {
    for (const e of source.entries) {
      const key = `${e.component}:${e.path}`;
      const info = tree.get(key);
      if (!info) {
        unknown.push(key);
        continue;
      }
      checkEntryFinite(e);
      const w = sourceWeight(source, info);
      const base = e.tensors["dora_scale"]
        ? {
          shape: info.shape,
          data: await layerAt(models, e.component, e.path).param("weight").value.toArray(),
        }
        : undefined;
      const d = entryDelta(e, base ? { multiplier: w, base } : { multiplier: w });
      if (d.weight && d.weight.data.length !== numel(info.shape)) {
        throw new ShapeError(
          `"${e.path}": the file's delta ${fmtShape(d.weight.shape)} does not fit the module's ` +
            `weight ${fmtShape(info.shape)}; the file was made for a different model`,
        );
      }
      const slot = out.get(key) ??
        { component: e.component, path: e.path, weight: null, bias: null };
      if (d.weight) slot.weight = accumulate(slot.weight, d.weight);
      if (d.bias) slot.bias = accumulate(slot.bias, d.bias);
      out.set(key, slot);
    }
  }
  if (unknown.length) {
    throw new ArgumentError(
      `${unknown.length} LoRA modules are not in the given models (${
        unknown.slice(0, 5).join(", ")
      }${unknown.length > 5 ? ", ..." : ""}); the file was made for a different model`,
    );
  }
  return [...out.values()];
}
