// A tiny random Stable Diffusion (U-Net, VAE, CLIP text encoder, tokenizer files) for the loader
// and CLI tests: same classes and code paths as SD 1.x, small enough for a software adapter.
import { Generator } from "../src/ops/mod.ts";
import {
  AutoencoderKL,
  type ClipTextConfig,
  CLIPTextModel,
  UNet2DConditionModel,
  type UNetConfig,
  type VaeConfig,
} from "../src/nn/mod.ts";
import type { SaveModels } from "../src/nn/loaders_fs.ts";

export const TINY_UNET: Partial<UNetConfig> = {
  blockOutChannels: [32, 64],
  layersPerBlock: 1,
  attentionHeads: 2,
  crossAttentionDim: 32,
  normNumGroups: 8,
};
export const TINY_VAE: Partial<VaeConfig> = {
  blockOutChannels: [16, 32],
  layersPerBlock: 1,
  normNumGroups: 8,
};
export const TINY_CLIP: Partial<ClipTextConfig> = {
  vocabSize: 64,
  hiddenSize: 32,
  intermediateSize: 64,
  heads: 2,
  layers: 2,
  maxPositions: 8,
};

/** A vocabulary of special tokens and a few words; unknown pieces map to `<|endoftext|>`. */
export const TINY_TOKENIZER = {
  vocab: JSON.stringify({
    "<|startoftext|>": 0,
    "<|endoftext|>": 1,
    "a</w>": 2,
    "cat</w>": 3,
    "dog</w>": 4,
    "blurry</w>": 5,
    "photo</w>": 6,
    "of</w>": 7,
  }),
  merges: "#version: 0.2\n",
};

/** Random tiny models (seeded), with tokenizer files. */
export function tinyModels(seed = 1, norm: "group" | "batch" = "group"): Required<SaveModels> {
  const g = new Generator(seed);
  return {
    unet: new UNet2DConditionModel({ ...TINY_UNET, norm }, { generator: g }),
    vae: new AutoencoderKL(TINY_VAE, { generator: g }),
    textEncoder: new CLIPTextModel(TINY_CLIP, { generator: g }),
    tokenizerFiles: TINY_TOKENIZER,
  };
}
