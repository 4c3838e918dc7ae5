/**
 * The module tree of a model as plain data (path, kind and weight shape of every Linear, Conv2d
 * and norm), which is all the LoRA readers need to match file keys against a model. Built from
 * loaded modules with {@link modelShapes}, or written by hand in tests.
 *
 * @module
 */
import type { Module } from "../../nn/module.ts";
import { Linear } from "../../nn/layers/linear.ts";
import { Conv2d } from "../../nn/layers/conv2d.ts";
import { GroupNorm } from "../../nn/layers/group_norm.ts";
import { LayerNorm } from "../../nn/layers/layer_norm.ts";
import type { UNetConfig } from "../../nn/unet.ts";
import type { LoraComponent } from "../file_types.ts";

/** What kind of layer a module is, as far as adapters care. */
export type LoraModuleKind = "linear" | "conv" | "norm";

/** One adaptable module of a model. */
export interface LoraModuleShape {
  /** Which model the module lives in. */
  component: LoraComponent;
  /** Diffusers module path, e.g. `down_blocks.0.resnets.0.conv1`. */
  path: string;
  /** Layer kind. */
  kind: LoraModuleKind;
  /** Weight shape: `[out, in]`, `[out, in, k, k]` or `[channels]`. */
  weight: readonly number[];
  /** Whether the module has a bias. */
  hasBias: boolean;
}

/** A model's adaptable modules, and the U-Net config (for LDM-style names) when there is one. */
export interface LoraModelShapes {
  /** Every Linear, Conv2d, GroupNorm and LayerNorm of the U-Net and the text encoder. */
  modules: LoraModuleShape[];
  /** The U-Net's config; LDM-style (`input_blocks`) names are matched only when present. */
  unetConfig?: UNetConfig;
}

/** The loaded models to describe; either may be absent. */
export interface LoraModels {
  /** A U-Net (its `config` enables LDM-style names). */
  unet?: Module & { readonly config: UNetConfig };
  /** A CLIP text encoder. */
  textEncoder?: Module;
}

function modulesOf(root: Module, component: LoraComponent): LoraModuleShape[] {
  const out: LoraModuleShape[] = [];
  for (const [path, m] of root.namedModules()) {
    let kind: LoraModuleKind;
    if (m instanceof Linear) kind = "linear";
    else if (m instanceof Conv2d) kind = "conv";
    else if (m instanceof GroupNorm || m instanceof LayerNorm) kind = "norm";
    else continue;
    const hasBias = m instanceof Linear || m instanceof Conv2d ? m.hasBias : true;
    out.push({ component, path, kind, weight: [...m.param("weight").shape], hasBias });
  }
  return out;
}

/**
 * Describes loaded models for the LoRA readers (no weights are read).
 *
 * @example
 * ```ts
 * import { getDevice } from "../../ops/device.ts";
 * import { UNet2DConditionModel } from "../../nn/unet.ts";
 * import { modelShapes } from "./model_shapes.ts";
 * await getDevice();
 * using unet = new UNet2DConditionModel({ blockOutChannels: [32, 64], layersPerBlock: 1, attentionHeads: 2, crossAttentionDim: 32, normNumGroups: 8 });
 * console.log(modelShapes({ unet }).modules.length);
 * ```
 */
export function modelShapes(models: LoraModels): LoraModelShapes {
  const modules = [
    ...(models.unet ? modulesOf(models.unet, "unet") : []),
    ...(models.textEncoder ? modulesOf(models.textEncoder, "text_encoder") : []),
  ];
  return models.unet ? { modules, unetConfig: models.unet.config } : { modules };
}
