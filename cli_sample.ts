/**
 * `mod.ts sample`: text-to-image with a diffusers folder or a single-file checkpoint, written as
 * a JPEG. Also exports the pipeline (`textToImage`) and the image helpers it uses.
 *
 * @module
 */
import { parseArgs } from "node:util";
import jpeg from "jpeg-js";
import { getDevice } from "./src/ops/device.ts";
import { noGrad } from "./src/ops/autograd.ts";
import { scale } from "./src/ops/unary.ts";
import { scope } from "./src/ops/scope.ts";
import { ArgumentError } from "./src/ops/errors.ts";
import type { Tensor } from "./src/ops/tensor.ts";
import { SAMPLER_NAMES } from "./src/schedule/sampler.ts";
import { sample } from "./src/schedule/sample.ts";
import { loadStableDiffusion, type StableDiffusionModels } from "./src/nn/loaders_fs.ts";
import type { ClipTokenizer } from "./src/nn/tokenizer.ts";

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
  /** Sampler name (default dpmpp_2m_karras). */
  sampler?: string;
  /** Noise seed (default 0). */
  seed?: number;
  /** Image width in pixels (default 512). */
  width?: number;
  /** Image height in pixels (default 512). */
  height?: number;
  /** Called after each step. */
  onStep?: (step: number, steps: number) => void;
}

function encodePrompt(
  models: StableDiffusionModels,
  tokenizer: ClipTokenizer,
  text: string,
): Tensor {
  const T = models.textEncoder.config.maxPositions;
  const { ids } = tokenizer.encode(text, { maxLength: T });
  return models.textEncoder.forward(ids, [1, T]);
}

/**
 * Generates one image: CLIP-encodes the prompt and the negative prompt, samples latents with
 * classifier-free guidance (one batched U-Net call per step), and decodes them with the VAE
 * (latents divided by the scaling factor). Returns RGB bytes, row-major, `height x width x 3`.
 */
export async function textToImage(
  models: StableDiffusionModels,
  options: TextToImageOptions,
): Promise<{ width: number; height: number; rgb: Uint8Array }> {
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
  const cfg = options.cfg ?? 7;
  // every model call runs under noGrad itself: an async noGrad would end at the first await
  const [cond, uncond] = noGrad(() => [
    encodePrompt(models, tokenizer, options.prompt),
    encodePrompt(models, tokenizer, options.negative ?? ""),
  ]);
  {
    const latents = await sample(
      (x, t, ctx) => noGrad(() => models.unet.forward(x, t, ctx!)),
      {
        shape: [1, models.unet.config.inChannels, height / vaeFactor, width / vaeFactor],
        sampler: options.sampler ?? "dpmpp_2m_karras",
        steps: options.steps ?? 25,
        seed: options.seed ?? 0,
        context: cond,
        negativeContext: uncond,
        guidanceScale: cfg,
        onStep: (info) => options.onStep?.(info.step + 1, info.steps),
      },
    );
    const img = scope(() =>
      noGrad(() => models.vae.decode(scale(latents, 1 / models.vae.scalingFactor)))
    );
    const px = await img.toArray();
    for (const t of [cond, uncond, latents, img]) t.dispose();
    const C = img.shape[1]!;
    const rgb = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < 3; c++) {
          const v = px[(Math.min(c, C - 1) * height + y) * width + x]!;
          rgb[(y * width + x) * 3 + c] = Math.round(Math.min(Math.max((v + 1) * 127.5, 0), 255));
        }
      }
    }
    return { width, height, rgb };
  }
}

/** Encodes RGB bytes as a baseline JPEG (jpeg-js). */
export function encodeJpeg(
  image: { width: number; height: number; rgb: Uint8Array },
  quality = 92,
): Uint8Array {
  const { width, height, rgb } = image;
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[4 * i] = rgb[3 * i]!;
    rgba[4 * i + 1] = rgb[3 * i + 1]!;
    rgba[4 * i + 2] = rgb[3 * i + 2]!;
    rgba[4 * i + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, quality).data);
}

/** Help text of `sample`. */
export const SAMPLE_HELP: string =
  `Usage: deno run -A mod.ts sample --model <folder|file> --prompt <text> [options]

Generates an image from a prompt with a Stable Diffusion 1.x checkpoint.

Options:
  --model <path>       diffusers folder (unet/, vae/, text_encoder/, tokenizer/) or a
                       single-file .safetensors checkpoint (required)
  --prompt <text>      what to draw (required)
  --negative <text>    negative prompt (default "")
  --steps <n>          sampling steps (default 25)
  --cfg <scale>        classifier-free guidance scale (default 7)
  --sampler <name>     ${SAMPLER_NAMES.join(", ")} (default dpmpp_2m_karras)
  --seed <n>           noise seed (default 0)
  --width <px>         image width (default 512)
  --height <px>        image height (default 512)
  --out <file>         output JPEG (default out.jpg)
  --tokenizer <dir>    tokenizer folder (needed for single-file checkpoints)
  -h, --help           show this help`;

function int(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new ArgumentError(`--${name} must be a whole number >= ${min}, got "${v}"`);
  }
  return n;
}

/** Runs `sample` with its arguments (after the command name); returns the exit code. */
export async function sampleCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        negative: { type: "string" },
        steps: { type: "string" },
        cfg: { type: "string" },
        sampler: { type: "string" },
        seed: { type: "string" },
        width: { type: "string" },
        height: { type: "string" },
        out: { type: "string" },
        tokenizer: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${SAMPLE_HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(SAMPLE_HELP);
    return 0;
  }
  if (!values.model || values.prompt === undefined) {
    console.error(`sample needs --model and --prompt\n\n${SAMPLE_HELP}`);
    return 2;
  }
  try {
    const steps = int("steps", values.steps, 25, 1);
    const seed = int("seed", values.seed, 0, 0);
    const width = int("width", values.width, 512, 1);
    const height = int("height", values.height, 512, 1);
    const cfg = values.cfg === undefined ? 7 : Number(values.cfg);
    if (!Number.isFinite(cfg)) {
      throw new ArgumentError(`--cfg must be a number, got "${values.cfg}"`);
    }
    const sampler = values.sampler ?? "dpmpp_2m_karras";
    if (!(SAMPLER_NAMES as readonly string[]).includes(sampler)) {
      throw new ArgumentError(
        `Unknown sampler "${sampler}"; valid samplers are ${SAMPLER_NAMES.join(", ")}`,
      );
    }
    const out = values.out ?? "out.jpg";
    await getDevice();
    const models = await loadStableDiffusion(
      values.model,
      values.tokenizer ? { tokenizer: values.tokenizer } : {},
    );
    const t0 = performance.now();
    let last = t0;
    const image = await textToImage(models, {
      prompt: values.prompt,
      negative: values.negative ?? "",
      steps,
      cfg,
      sampler,
      seed,
      width,
      height,
      onStep: (step, total) => {
        const now = performance.now();
        const rate = step / ((now - t0) / 1000);
        const w = 30, done = Math.round((step / total) * w);
        const bar = "#".repeat(done) + "-".repeat(w - done);
        if (now - last > 100 || step === total) {
          last = now;
          const line = `\r[${bar}] ${step}/${total} ${rate.toFixed(2)} it/s`;
          Deno.stderr.writeSync(new TextEncoder().encode(line));
        }
      },
    });
    Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    await Deno.writeFile(out, encodeJpeg(image));
    for (const m of [models.unet, models.vae, models.textEncoder]) m.dispose();
    console.log(`wrote ${out} (${width}x${height}, seed ${seed})`);
    return 0;
  } catch (e) {
    console.error(`sample failed: ${(e as Error).message}`);
    return 1;
  }
}
