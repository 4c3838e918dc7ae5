// Helpers shared by the U-Net's down, mid and up blocks.
import { initOptions } from "./_init.ts";
import type { UNetBlockOptions } from "./unet_down_blocks.ts";
import type { ResnetBlockOptions } from "./resnet.ts";
import { Transformer2DModel } from "./transformer_2d.ts";

export function resnetOptions(o: UNetBlockOptions): ResnetBlockOptions {
  return {
    ...initOptions(o),
    tembChannels: o.tembChannels,
    groups: o.groups,
    eps: o.eps ?? 1e-5,
    norm: o.norm ?? "group",
  };
}

export function transformer(channels: number, o: UNetBlockOptions): Transformer2DModel {
  return new Transformer2DModel(channels, {
    ...initOptions(o),
    heads: o.heads ?? 8,
    crossAttentionDim: o.crossAttentionDim ?? 768,
    normNumGroups: o.groups,
    layers: o.transformerLayers ?? 1,
  });
}
