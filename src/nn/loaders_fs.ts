/**
 * Loading and saving Stable Diffusion models (Deno file system): a diffusers folder (`unet/`,
 * `vae/`, `text_encoder/`, `tokenizer/`) or a single-file original checkpoint
 * (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`).
 *
 * @module
 */
import { deviceInfo } from "../ops/device.ts";
import type { DType } from "../ops/tensor.ts";
import { StateDictError } from "./errors.ts";
import { quote } from "./_untrusted.ts";
import type { Module } from "./module.ts";
import type { InitOptions } from "./layers/_init.ts";
import { type SafetensorsInput, toSafetensorsInputs } from "./safetensors.ts";
import { SafetensorsFile, writeSafetensors } from "./safetensors_fs.ts";
import type { ClipTokenizer } from "./tokenizer.ts";
import { loadTokenizer } from "./tokenizer_fs.ts";
import type { SaveModels } from "./diffusers_save_fs.ts";
import {
  UNet2DConditionModel,
  type UNetConfig,
  unetConfig,
  unetConfigFromDiffusers,
} from "./unet.ts";
import { AutoencoderKL, type VaeConfig, vaeConfig, vaeConfigFromDiffusers } from "./vae.ts";
import {
  type ClipTextConfig,
  clipTextConfig,
  clipTextConfigFromDiffusers,
  CLIPTextModel,
} from "./clip.ts";
import {
  diffusersKeyMap,
  inferClipTextConfig,
  inferUNetConfig,
  inferVaeConfig,
  loadMapped,
  singleFileKeyMap,
  singleFileKeys,
} from "./checkpoint_keys.ts";

/** The models of a Stable Diffusion checkpoint. */
export interface StableDiffusionModels {
  /** The denoiser. */
  unet: UNet2DConditionModel;
  /** The image autoencoder. */
  vae: AutoencoderKL;
  /** The CLIP text encoder. */
  textEncoder: CLIPTextModel;
  /** The tokenizer (null when the checkpoint has none and no `tokenizer` option was given). */
  tokenizer: ClipTokenizer | null;
}

/** Options of the loaders. */
export interface LoadModelOptions {
  /** U-Net config fields overriding the file's config (or, for single files, the inference). */
  unet?: Partial<UNetConfig>;
  /** VAE config fields overriding the file's. */
  vae?: Partial<VaeConfig>;
  /** Text encoder config fields overriding the file's. */
  textEncoder?: Partial<ClipTextConfig>;
  /** A tokenizer folder (vocab.json, merges.txt); default the checkpoint's `tokenizer/`. */
  tokenizer?: string;
  /** Throw on missing or unexpected keys (default true). */
  strict?: boolean;
  /**
   * GPU storage of the weight matrices and kernels (the bulk of every model): `auto` (default)
   * keeps them f16 where the adapter has `shader-f16`, halving memory (products still accumulate
   * in f32 and activations stay f32), else f32.
   */
  weightDType?: "auto" | DType;
}

/** The init options that give every model its weight storage. */
function weightInit(options: LoadModelOptions): InitOptions {
  const d = options.weightDType ?? "auto";
  return { weightDType: d === "auto" ? (deviceInfo().f16 ? "f16" : "f32") : d };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a component's `config.json`: it must exist and hold a JSON object (missing fields take
 * the diffusers class defaults, as `from_pretrained` does).
 */
async function readConfig(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    // a FIFO or a device would block the read forever
    if (!(await Deno.stat(path)).isFile) throw new Error("not a regular file");
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new StateDictError(
      e instanceof Deno.errors.NotFound
        ? `The config ${quote(path, 200)} is missing; a diffusers folder has one config.json ` +
          "per component, so copy it from the model's source"
        : `Cannot read the config ${quote(path, 200)} (${quote((e as Error).message)})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new StateDictError(
      `The config ${quote(path, 200)} is not valid JSON (${quote((e as Error).message)}); ` +
        "fix it or copy it again from the model's source",
    );
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new StateDictError(
      `The config ${quote(path, 200)} is ${
        json === null ? "null" : Array.isArray(json) ? "an array" : `a ${typeof json}`
      }, not a JSON object of settings; fix it or copy it again from the model's source`,
    );
  }
  return json as Record<string, unknown>;
}

/** The VAE's latent scale must be a positive finite number (0 would decode to black). */
function checkScalingFactor(c: VaeConfig, where: string): void {
  if (!(c.scalingFactor > 0 && Number.isFinite(c.scalingFactor))) {
    throw new StateDictError(
      `The VAE scaling_factor in ${quote(where, 200)} is ${quote(c.scalingFactor)}, but it ` +
        "must be a positive number (0.18215 for SD 1.x); fix the config",
    );
  }
}

async function firstExisting(dir: string, names: string[], what: string): Promise<string> {
  for (const n of names) if (await exists(`${dir}/${n}`)) return `${dir}/${n}`;
  throw new StateDictError(
    `The ${what} weights are missing: none of ${names.map((n) => `"${dir}/${n}"`).join(", ")} ` +
      "exists; pass a diffusers folder with unet/, vae/ and text_encoder/",
  );
}

/** Storage of CLIP's token table: the weights', or f16 when f32 would exceed one binding. */
function tokenTableDType(c: ClipTextConfig, init: InitOptions): DType {
  const info = deviceInfo();
  const over = c.vocabSize * c.hiddenSize * 4 > info.limits.maxStorageBufferBindingSize;
  return init.weightDType === "f16" || (over && info.f16) ? "f16" : "f32";
}

/** Loads `module` from a file (opened here) or an open single-file checkpoint. */
async function loadInto(
  module: Module,
  source: string | SafetensorsFile,
  what: string,
  strict: boolean,
  part?: "unet" | "vae" | "text_encoder",
  config?: UNetConfig | VaeConfig | ClipTextConfig,
): Promise<void> {
  using opened = typeof source === "string" ? await SafetensorsFile.open(source) : undefined;
  const file = opened ?? (source as SafetensorsFile);
  const map = part && config
    ? singleFileKeyMap(module, file, part, config)
    : diffusersKeyMap(module, file);
  await loadMapped(module, file, map, { strict, what });
}

function disposeAll(ms: (Module | undefined)[]): void {
  for (const m of ms) m?.dispose();
}

/**
 * Loads a diffusers folder: `unet/diffusion_pytorch_model.safetensors` (or `.fp16.`),
 * `vae/...`, `text_encoder/model.safetensors`, each with its `config.json`, and `tokenizer/`.
 *
 * @example
 * ```ts ignore
 * import { loadDiffusersFolder } from "./loaders_fs.ts";
 * const { unet, vae, textEncoder, tokenizer } = await loadDiffusersFolder("sd15");
 * ```
 */
export async function loadDiffusersFolder(
  dir: string,
  options: LoadModelOptions = {},
): Promise<StableDiffusionModels> {
  const d = dir.replace(/[/\\]+$/, "");
  const strict = options.strict ?? true;
  const uc = {
    ...unetConfigFromDiffusers(await readConfig(`${d}/unet/config.json`)),
    ...options.unet,
  };
  const vc = {
    ...vaeConfigFromDiffusers(await readConfig(`${d}/vae/config.json`)),
    ...options.vae,
  };
  checkScalingFactor(vc, `${d}/vae/config.json`);
  const tc = clipTextConfig({
    ...clipTextConfigFromDiffusers(await readConfig(`${d}/text_encoder/config.json`)),
    ...options.textEncoder,
  });
  const w = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"];
  const unetPath = await firstExisting(`${d}/unet`, w, "U-Net");
  const vaePath = await firstExisting(`${d}/vae`, w, "VAE");
  const tePath = await firstExisting(
    `${d}/text_encoder`,
    ["model.safetensors", "model.fp16.safetensors"],
    "text encoder",
  );
  const init = weightInit(options);
  let unet: UNet2DConditionModel | undefined, vae: AutoencoderKL | undefined;
  let te: CLIPTextModel | undefined;
  try {
    unet = new UNet2DConditionModel(uc, init);
    await loadInto(unet, unetPath, "U-Net", strict);
    vae = new AutoencoderKL(vc, init);
    await loadInto(vae, vaePath, "VAE", strict);
    te = new CLIPTextModel(tc, { ...init, tokenEmbeddingDType: tokenTableDType(tc, init) });
    await loadInto(te, tePath, "text encoder", strict);
    const tokDir = options.tokenizer ?? `${d}/tokenizer`;
    const tokenizer = options.tokenizer || (await exists(`${tokDir}/vocab.json`))
      ? await loadTokenizer(tokDir)
      : null;
    return { unet, vae, textEncoder: te, tokenizer };
  } catch (e) {
    disposeAll([unet, vae, te]);
    throw e;
  }
}

/**
 * Loads a single-file original checkpoint (`.safetensors`). Configs are inferred from the
 * tensor shapes (heads and norm groups default to SD 1.x's; override them with options). The
 * tokenizer comes from `options.tokenizer` (single files carry none).
 *
 * @example
 * ```ts ignore
 * import { loadSingleFile } from "./loaders_fs.ts";
 * const sd = await loadSingleFile("v1-5-pruned-emaonly.safetensors", { tokenizer: "tokenizer" });
 * ```
 */
export async function loadSingleFile(
  path: string,
  options: LoadModelOptions = {},
): Promise<StableDiffusionModels> {
  const strict = options.strict ?? true;
  // one open, one header parse for the three models (a header can hold 300k+ tensors)
  using file = await SafetensorsFile.open(path);
  const uc = unetConfig(inferUNetConfig(file, options.unet));
  const vc = vaeConfig(inferVaeConfig(file, options.vae));
  checkScalingFactor(vc, "the VAE options");
  const tc = clipTextConfig(inferClipTextConfig(file, options.textEncoder));
  const init = weightInit(options);
  let unet: UNet2DConditionModel | undefined, vae: AutoencoderKL | undefined;
  let te: CLIPTextModel | undefined;
  try {
    unet = new UNet2DConditionModel(uc, init);
    await loadInto(unet, file, "U-Net", strict, "unet", uc);
    vae = new AutoencoderKL(vc, init);
    await loadInto(vae, file, "VAE", strict, "vae", vc);
    te = new CLIPTextModel(tc, { ...init, tokenEmbeddingDType: tokenTableDType(tc, init) });
    await loadInto(te, file, "text encoder", strict, "text_encoder", tc);
    const tokenizer = options.tokenizer ? await loadTokenizer(options.tokenizer) : null;
    return { unet, vae, textEncoder: te, tokenizer };
  } catch (e) {
    disposeAll([unet, vae, te]);
    throw e;
  }
}

/**
 * Loads a diffusers folder or a single-file checkpoint, whichever `path` is, with every model in
 * inference mode (`eval()`, as diffusers' `from_pretrained`); call `train()` on what you train.
 */
export async function loadStableDiffusion(
  path: string,
  options: LoadModelOptions = {},
): Promise<StableDiffusionModels> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new StateDictError(
      `Cannot open the model ${quote(path, 200)} (${quote((e as Error).message)}); pass a ` +
        "diffusers folder or a .safetensors checkpoint",
    );
  }
  if (!info.isDirectory && !info.isFile) {
    throw new StateDictError(
      `The model ${quote(path, 200)} is not a regular file or a folder (a pipe or a device ` +
        "cannot be read safely); pass a diffusers folder or a .safetensors checkpoint",
    );
  }
  const models = info.isDirectory
    ? await loadDiffusersFolder(path, options)
    : await loadSingleFile(path, options);
  // inference mode, as diffusers' from_pretrained: a batch-norm U-Net samples with its running
  // statistics and leaves them alone; a trainer switches what it trains back to training mode
  for (const m of [models.unet, models.vae, models.textEncoder]) m.eval();
  return models;
}

/** Writes one single-file original checkpoint holding the three models. */
export async function saveSingleFile(path: string, models: SaveModels): Promise<void> {
  const out: Record<string, SafetensorsInput> = {};
  const parts: [
    Module,
    "unet" | "vae" | "text_encoder",
    UNetConfig | VaeConfig | ClipTextConfig,
  ][] = [
    [models.unet, "unet", models.unet.config],
    [models.vae, "vae", models.vae.config],
    [models.textEncoder, "text_encoder", models.textEncoder.config],
  ];
  for (const [m, part, config] of parts) {
    const names = singleFileKeys(m, part, config);
    const inputs = await toSafetensorsInputs(m.stateDict());
    for (const [k, t] of Object.entries(inputs)) {
      const o = names.get(k)!;
      // the original VAE attention uses 1x1 convolutions
      const conv = part === "vae" && /mid\.attn_1\.(q|k|v|proj_out)\.weight$/.test(o);
      out[o] = conv ? { ...t, shape: [...t.shape, 1, 1] } : t;
    }
  }
  await writeSafetensors(path, out);
}

export { saveDiffusersFolder, type SaveModels } from "./diffusers_save_fs.ts";
