/**
 * Text-to-image with loaded Stable Diffusion models: CLIP-encode the prompts, sample latents
 * with classifier-free guidance, VAE-decode them, and check the pixels are finite.
 *
 * @module
 */
import { noGrad } from "../ops/autograd.ts";
import { scale } from "../ops/unary.ts";
import { scope } from "../ops/scope.ts";
import { ArgumentError } from "../ops/errors.ts";
import type { Tensor } from "../ops/tensor.ts";
import { concat } from "../ops/concat.ts";
import { Generator, RowGenerators } from "../ops/rng.ts";
import { NonFiniteError, type SamplerOptions } from "../schedule/sampler.ts";
import { sample } from "../schedule/sample.ts";
import type { StableDiffusionModels } from "../nn/loaders_fs.ts";
import { encodePromptsSharingNegative } from "../nn/prompt_encode.ts";
import { encodeImage, latentMask } from "./_img2img.ts";
import type { RgbImage } from "./_image.ts";

/** Options of {@link textToImage}. */
export interface TextToImageOptions {
  /** The prompt. */
  prompt: string;
  /** The negative prompt (default ""). */
  negative?: string;
  /** Sampling steps (default 25). */
  steps?: number;
  /** Classifier-free guidance scale (default 7). */
  cfg?: number;
  /** Sampler name (default dpmpp_2m_karras): diffusers-style, ComfyUI's or an A1111 label. */
  sampler?: string;
  /** A sigma schedule by ComfyUI's name (runs the sampler in k-diffusion form). */
  sigmaSchedule?: string;
  /** Noise seed (default 0). */
  seed?: number;
  /** Image width in pixels (default 512). */
  width?: number;
  /** Image height in pixels (default 512). */
  height?: number;
  /** The model's noise schedule and prediction type (default SD 1.x: epsilon). */
  scheduler?: SamplerOptions;
  /** Called after each step. */
  onStep?: (step: number, steps: number) => void;
  /** Called with each prompt-syntax warning (unbalanced brackets, read leniently). */
  onWarning?: (message: string) => void;
  /** Use the text encoder's hidden state this many layers from the end (default 1, the last). */
  clipSkip?: number;
  /** img2img: the starting image, `width x height`. */
  initImage?: RgbImage;
  /** img2img strength in [0, 1] (default 0.75 with an init image). */
  strength?: number;
  /** Inpainting: white = repaint, the init image's size. */
  mask?: RgbImage;
}

/** Maps decoded pixels `[1, C, H, W]` in [-1, 1] to RGB bytes; throws on NaN or infinity. */
function toRgb(px: Float32Array, C: number, width: number, height: number): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const v = px[(Math.min(c, C - 1) * height + y) * width + x]!;
        if (!Number.isFinite(v)) {
          throw new NonFiniteError(
            `The VAE decode gave ${v} at pixel (${x}, ${y}); check the VAE weights and its ` +
              "config's scaling_factor, or load the VAE with f32 weights",
          );
        }
        rgb[(y * width + x) * 3 + c] = Math.round(Math.min(Math.max((v + 1) * 127.5, 0), 255));
      }
    }
  }
  return { width, height, rgb };
}

/** One image of a {@link textToImages} batch: its prompt and noise seed. */
export interface ImageRequest {
  /** The prompt. */
  prompt: string;
  /** Noise seed of this image (initial and ancestral noise). */
  seed: number;
  /** img2img: this image's starting image (default: the options' `initImage`). */
  initImage?: RgbImage;
}

/** The settings every image of a {@link textToImages} batch shares. */
export type BatchImageOptions = Omit<TextToImageOptions, "prompt" | "seed">;

/**
 * Generates one image: CLIP-encodes the prompt and the negative prompt, samples latents with
 * classifier-free guidance (one batched U-Net call per step), and decodes them with the VAE
 * (latents divided by the scaling factor). Throws `NonFiniteError` when the U-Net or the VAE
 * gives NaN or infinity. Returns RGB bytes, row-major, `height x width x 3`.
 *
 * @example
 * ```ts ignore
 * import { loadStableDiffusion } from "../nn/loaders_fs.ts";
 * import { textToImage } from "./text_to_image.ts";
 * const models = await loadStableDiffusion("sd15");
 * const { rgb } = await textToImage(models, { prompt: "a cat", steps: 20, seed: 1 });
 * ```
 */
export async function textToImage(
  models: StableDiffusionModels,
  options: TextToImageOptions,
): Promise<RgbImage> {
  const [image] = await textToImages(models, [{
    prompt: options.prompt,
    seed: options.seed ?? 0,
  }], options);
  return image!;
}

/**
 * Generates a batch of images, each from its own prompt and seed, in one sampling loop: each
 * image equals the one {@link textToImage} makes from the same prompt and seed (every row of a
 * batch draws its noise from its own seed's stream), at a fraction of the cost on small models.
 * Prompts whose encodings differ in length (over 75 tokens) run as separate batches. The
 * options apply to every image; the options' init image is shared by all, unless a request
 * brings its own (then every request must).
 *
 * @example
 * ```ts ignore
 * import { loadStableDiffusion } from "../nn/loaders_fs.ts";
 * import { textToImages } from "./text_to_image.ts";
 * const models = await loadStableDiffusion("models/mini_sd");
 * const images = await textToImages(models, [
 *   { prompt: "a red circle on a blue background", seed: 0 },
 *   { prompt: "two green squares on a white background", seed: 1 },
 * ], { steps: 10, width: 32, height: 32 });
 * ```
 */
export async function textToImages(
  models: StableDiffusionModels,
  requests: readonly ImageRequest[],
  options: BatchImageOptions,
): Promise<RgbImage[]> {
  const tokenizer = models.tokenizer;
  if (!tokenizer) {
    throw new ArgumentError(
      "This checkpoint has no tokenizer; pass --tokenizer <folder with vocab.json and merges.txt>",
    );
  }
  const width = options.width ?? 512, height = options.height ?? 512;
  const vaeFactor = 2 ** (models.vae.config.blockOutChannels.length - 1);
  const unetFactor = 2 ** (models.unet.config.blockOutChannels.length - 1);
  const f = vaeFactor * unetFactor;
  if (
    !Number.isInteger(width) || !Number.isInteger(height) || width % f || height % f || width < f ||
    height < f
  ) {
    throw new ArgumentError(
      `The image size ${width}x${height} must be a positive multiple of ${f} for this model`,
    );
  }
  const own = requests.filter((r) => r.initImage).length;
  if (own > 0 && own < requests.length) {
    throw new ArgumentError(
      `${own} of the ${requests.length} images of this batch have an init image; give every ` +
        "image its own init image, or none and share the options' initImage",
    );
  }
  const inits = requests.map((r) => r.initImage ?? options.initImage);
  for (const init of inits) {
    if (init && (init.width !== width || init.height !== height)) {
      throw new ArgumentError(
        `The init image is ${init.width}x${init.height} but the output is ${width}x${height}; ` +
          "resize the image or drop --width and --height",
      );
    }
  }
  const init = inits[0], m = options.mask;
  if (m && (!init || m.width !== init.width || m.height !== init.height)) {
    throw new ArgumentError(
      `The mask is ${m.width}x${m.height}${
        init ? ` but the init image is ${init.width}x${init.height}` : " without an init image"
      }; give a mask of the init image's size`,
    );
  }
  // every model call runs under noGrad itself: an async noGrad would end at the first await;
  // A1111's prompt syntax, chunks of the encoder's positions - 2 tokens; the negative prompt
  // encoded once per chunk count, its tensor shared by the requests of that count
  const pairs = await encodePromptsSharingNegative(
    (ids, shape) =>
      noGrad(() => models.textEncoder.forward(ids, shape, { clipSkip: options.clipSkip ?? 1 })),
    tokenizer,
    requests.map((r) => r.prompt),
    options.negative ?? "",
    models.textEncoder.config.maxPositions - 2,
  );
  const encoded: PromptEncoding[] = pairs.map((p, i) => {
    p.warnings.forEach((w) => options.onWarning?.(w));
    return { cond: p.cond, uncond: p.uncond, seed: requests[i]!.seed, init: inits[i] };
  });
  try {
    const images: RgbImage[] = new Array(requests.length);
    for (const rows of sameLengthGroups(encoded)) {
      const out = await sampleRows(models, rows.map((i) => encoded[i]!), options, vaeFactor);
      rows.forEach((i, j) => images[i] = out[j]!);
    }
    return images;
  } finally {
    for (const t of new Set(encoded.flatMap((e) => [e.cond, e.uncond]))) t.dispose();
  }
}

/** A request's encoded prompt pair, each `[1, L, D]`, its seed and init image. */
interface PromptEncoding {
  cond: Tensor;
  uncond: Tensor;
  seed: number;
  init?: RgbImage | undefined;
}

/** Indices of the encodings grouped by their shapes (a batch needs one context length). */
function sameLengthGroups(encoded: readonly PromptEncoding[]): number[][] {
  const groups = new Map<string, number[]>();
  encoded.forEach((e, i) => {
    const key = `${e.cond.shape} ${e.uncond.shape}`;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  return [...groups.values()];
}

// rows: B prompt pairs -> B images (latents [B, C, h, w], one noise stream per row)
async function sampleRows(
  models: StableDiffusionModels,
  rows: readonly PromptEncoding[],
  options: BatchImageOptions,
  vaeFactor: number,
): Promise<RgbImage[]> {
  const width = options.width ?? 512, height = options.height ?? 512;
  const B = rows.length;
  let cond: Tensor | undefined, uncond: Tensor | undefined;
  let latents: Tensor | undefined, img: Tensor | undefined;
  let initLatent: Tensor | undefined, mask: Tensor | undefined;
  try {
    cond = B === 1 ? rows[0]!.cond : concat(rows.map((r) => r.cond), 0);
    uncond = B === 1 ? rows[0]!.uncond : concat(rows.map((r) => r.uncond), 0);
    if (rows[0]!.init) {
      // each distinct image encoded once (the options' init image is shared by every row)
      const latents = new Map<RgbImage, Tensor>();
      for (const r of rows) {
        if (!latents.has(r.init!)) latents.set(r.init!, encodeImage(models.vae, r.init!));
      }
      initLatent = concat(rows.map((r) => latents.get(r.init!)!), 0);
      latents.forEach((t) => t.dispose());
    }
    if (options.mask) mask = latentMask(options.mask, vaeFactor);
    latents = await sample(
      (x, t, ctx) => noGrad(() => models.unet.forward(x, t, ctx!)),
      {
        ...options.scheduler,
        shape: [B, models.unet.config.inChannels, height / vaeFactor, width / vaeFactor],
        sampler: options.sampler ?? "dpmpp_2m_karras",
        ...(options.sigmaSchedule ? { sigmaSchedule: options.sigmaSchedule } : {}),
        steps: options.steps ?? 25,
        generator: new RowGenerators(rows.map((r) => new Generator(r.seed))),
        context: cond,
        negativeContext: uncond,
        guidanceScale: options.cfg ?? 7,
        onStep: (info) => options.onStep?.(info.step + 1, info.steps),
        ...(initLatent ? { initLatent, strength: options.strength ?? 0.75 } : {}),
        ...(mask ? { mask } : {}),
      },
    );
    const z = latents;
    img = scope(() => noGrad(() => models.vae.decode(scale(z, 1 / models.vae.scalingFactor))));
    const px = await img.toArray(), per = px.length / B;
    return rows.map((_, b) =>
      toRgb(px.subarray(b * per, (b + 1) * per), img!.shape[1]!, width, height)
    );
  } finally {
    if (B > 1) cond?.dispose(), uncond?.dispose();
    for (const t of [latents, img, initLatent, mask]) t?.dispose();
  }
}
